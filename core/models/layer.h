#pragma once
// How the model zoo is put together so that algorithm plugins can swap its layers for their own
// (module surgery) while the core knows nothing of them:
//
//   Layer    a module with one tensor in and one out (virtual forward): Linear, Conv2d,
//            BatchNorm, LayerNorm, Head, a whole trunk, a model.
//   Slot<T>  a Block's handle on one child module of (at least) type T. The Block's forward
//            calls through the slot, so whatever surgery puts there is what runs.
//   Block    a Layer whose children live in slots (bind()).
//   Stack    a Block that runs its Layer slots in order (the zoo's Sequential).
//   replace_layers<T>(root, make)
//            module surgery: every module of dynamic type T that sits in a slot is replaced by
//            make(old, path) under the same name, so parameter and buffer names, and with them
//            checkpoints, optimizer state and weight-space merges, do not change.
//
// A replacement usually adopts the old layer's tensors (the `Adopt` constructors of the core
// layers register the same tensor objects) and overrides one virtual method.
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <c10/util/Type.h>

#include "core/torch_fwd.h"

namespace oodt {

// A module with one input and one output tensor.
class Layer : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

// Tag of the constructors that take over another layer's tensors and children.
struct Adopt {};

class SlotBase {
 public:
  virtual ~SlotBase() = default;
  const std::string& name() const { return name_; }
  // Points the slot at `m`; false (and no change) when `m` does not offer the interface.
  virtual bool reset(const std::shared_ptr<torch::nn::Module>& m) = 0;
  // The name of the interface, for errors.
  virtual std::string interface_name() const = 0;

 private:
  friend class Block;
  std::string name_;
};

template <class T>
class Slot final : public SlotBase {
  static_assert(std::is_base_of_v<torch::nn::Module, T>, "a slot holds a module");

 public:
  T* operator->() const { return ptr_.get(); }
  T& operator*() const { return *ptr_; }
  const std::shared_ptr<T>& get() const { return ptr_; }
  explicit operator bool() const { return ptr_ != nullptr; }

  bool reset(const std::shared_ptr<torch::nn::Module>& m) override {
    auto typed = std::dynamic_pointer_cast<T>(m);
    if (!typed) return false;
    ptr_ = std::move(typed);
    return true;
  }
  std::string interface_name() const override { return c10::demangle_type<T>(); }

 private:
  std::shared_ptr<T> ptr_;
};

class Block : public Layer {
 public:
  Block() = default;
  // Slots point into the object: a Block is never copied.
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  // The slot holding the child `name`, or nullptr.
  SlotBase* slot(const std::string& name) const;

 protected:
  // Registers `m` as the child `name` and points `slot` at it.
  template <class T, class M>
  void bind(Slot<T>& slot, const std::string& name, std::shared_ptr<M> m) {
    bind_any(slot, name, std::shared_ptr<torch::nn::Module>(std::move(m)));
  }
  // For subclasses' Adopt constructors: binds `slot` to whatever `other` holds under the same
  // name (nothing when `other` is empty).
  template <class T>
  void adopt(Slot<T>& slot, const Slot<T>& other) {
    if (other) bind(slot, other.name(), other.get());
  }

 private:
  void bind_any(SlotBase& slot, const std::string& name, std::shared_ptr<torch::nn::Module> m);
  std::vector<SlotBase*> slots_;
};

// Runs its layers in the order they were added (the zoo's Sequential).
class StackImpl final : public Block {
 public:
  StackImpl() = default;
  // Appends `layer` as the child `name`.
  void push_back(const std::string& name, std::shared_ptr<Layer> layer);
  at::Tensor forward(const at::Tensor& x) override;

 private:
  std::vector<std::unique_ptr<Slot<Layer>>> layers_;
};
using Stack = std::shared_ptr<StackImpl>;
inline Stack make_stack() { return std::make_shared<StackImpl>(); }

// The untyped core of replace_layers: `matches` selects modules, `make` builds the replacement
// of one (nullptr keeps it). Returns how many were replaced.
int64_t replace_modules(torch::nn::Module& root, const std::function<bool(const torch::nn::Module&)>& matches,
                        const std::function<std::shared_ptr<torch::nn::Module>(torch::nn::Module&, const std::string&)>& make);

// Module surgery: replaces every module below `root` whose dynamic type is T (subclasses
// included) by make(old, path); `make` returns nullptr to keep a layer. Matched modules are
// replaced whole: the walk does not descend into them or into their replacements. A match
// whose parent does not hold it in a slot is an error naming its path (the surgery could not
// take effect there), as is a replacement that does not offer the slot's interface.
template <class T>
int64_t replace_layers(torch::nn::Module& root,
                       const std::function<std::shared_ptr<torch::nn::Module>(T&, const std::string&)>& make) {
  return replace_modules(
      root, [](const torch::nn::Module& m) { return dynamic_cast<const T*>(&m) != nullptr; },
      [&](torch::nn::Module& m, const std::string& path) { return make(dynamic_cast<T&>(m), path); });
}

// Calls fn(T&) on every module of type T in `module` (itself included), in registration order;
// returns how many there were.
template <typename T, typename Fn>
int64_t for_each_layer(torch::nn::Module& module, Fn&& fn) {
  int64_t n = 0;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* layer = dynamic_cast<T*>(m.get())) {
      fn(*layer);
      ++n;
    }
  }
  return n;
}

}  // namespace oodt
