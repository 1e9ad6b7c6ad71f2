#include "core/models/layer.h"

#include "core/error.h"

namespace oodt {

SlotBase* Block::slot(const std::string& name) const {
  for (SlotBase* s : slots_)
    if (s->name() == name) return s;
  return nullptr;
}

void Block::bind_any(SlotBase& slot, const std::string& name, std::shared_ptr<torch::nn::Module> m) {
  OODT_CHECK(m != nullptr, "binding an empty module to slot '", name, "'");
  OODT_CHECK(this->slot(name) == nullptr, "slot '", name, "' bound twice");
  OODT_CHECK(slot.reset(m), "module ", m->name(), " does not offer the interface of slot '", name, "' (",
             slot.interface_name(), ")");
  slot.name_ = name;
  register_module(name, std::move(m));
  slots_.push_back(&slot);
}

void StackImpl::push_back(const std::string& name, std::shared_ptr<Layer> layer) {
  layers_.push_back(std::make_unique<Slot<Layer>>());
  bind(*layers_.back(), name, std::move(layer));
}

at::Tensor StackImpl::forward(const at::Tensor& x) {
  at::Tensor y = x;
  for (const auto& s : layers_) y = (*s)->forward(y);
  return y;
}

namespace {

void walk(torch::nn::Module& parent, const std::string& prefix,
          const std::function<bool(const torch::nn::Module&)>& matches,
          const std::function<std::shared_ptr<torch::nn::Module>(torch::nn::Module&, const std::string&)>& make,
          int64_t& replaced) {
  const auto* block = dynamic_cast<const Block*>(&parent);
  for (const auto& item : parent.named_children()) {
    torch::nn::Module& child = *item.value();
    const std::string path = prefix.empty() ? item.key() : prefix + "." + item.key();
    if (!matches(child)) {
      walk(child, path, matches, make, replaced);
      continue;
    }
    SlotBase* slot = block ? block->slot(item.key()) : nullptr;
    if (slot == nullptr)
      throw Error(concat("module surgery: '", path, "' (", child.name(), ") is held by ", parent.name(),
                         " outside a slot, so it cannot be replaced; build that module as a Block (core/models/layer.h)"));
    std::shared_ptr<torch::nn::Module> repl = make(child, path);
    if (!repl) {
      walk(child, path, matches, make, replaced);
      continue;
    }
    if (!slot->reset(repl))
      throw Error(concat("module surgery: the replacement of '", path, "' (", repl->name(),
                         ") does not offer the slot's interface (", slot->interface_name(), ")"));
    repl->train(child.is_training());
    parent.replace_module(item.key(), std::move(repl));
    ++replaced;
  }
}

}  // namespace

int64_t replace_modules(torch::nn::Module& root, const std::function<bool(const torch::nn::Module&)>& matches,
                        const std::function<std::shared_ptr<torch::nn::Module>(torch::nn::Module&, const std::string&)>& make) {
  int64_t replaced = 0;
  walk(root, "", matches, make, replaced);
  return replaced;
}

}  // namespace oodt
