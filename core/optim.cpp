#include "core/optim.h"

#include <cmath>

#include "core/error.h"
#include "core/weights.h"

namespace oodt {

OptimOptions OptimOptions::from_config(ConfigReader& cfg) {
  OptimOptions o;
  o.name = cfg.one_of("name", o.name, {"sgd", "adam", "adamw"});
  o.lr = cfg.get("lr", o.lr);
  cfg.check(o.lr > 0 && std::isfinite(o.lr), "lr", "must be a positive number");
  o.weight_decay = cfg.get("weight_decay", o.name == "adamw" ? 0.01 : 0.0);
  cfg.check(o.weight_decay >= 0, "weight_decay", "must be >= 0");
  if (o.name == "sgd") {
    o.momentum = cfg.get("momentum", o.momentum);
    o.dampening = cfg.get("dampening", o.dampening);
    o.nesterov = cfg.get("nesterov", o.nesterov);
    cfg.check(o.momentum >= 0 && o.momentum < 1, "momentum", "must be in [0, 1)");
    cfg.check(o.dampening >= 0 && o.dampening <= 1, "dampening", "must be in [0, 1]");
    cfg.check(!o.nesterov || (o.momentum > 0 && o.dampening == 0), "nesterov",
              "needs momentum > 0 and dampening 0");
  } else {
    o.beta1 = cfg.get("beta1", o.beta1);
    o.beta2 = cfg.get("beta2", o.beta2);
    o.eps = cfg.get("eps", o.eps);
    cfg.check(o.beta1 >= 0 && o.beta1 < 1, "beta1", "must be in [0, 1)");
    cfg.check(o.beta2 >= 0 && o.beta2 < 1, "beta2", "must be in [0, 1)");
    cfg.check(o.eps > 0, "eps", "must be > 0");
  }
  o.freeze = cfg.get("freeze", o.freeze);
  for (ConfigReader& g : cfg.children("groups")) {
    ParamGroup group;
    group.params = g.require<std::vector<std::string>>("params");
    g.check(!group.params.empty(), "params", "needs at least one name pattern");
    g.check(!(g.has("lr") && g.has("lr_scale")), "lr", "give lr or lr_scale, not both");
    if (g.has("lr")) {
      const double lr = g.get("lr", o.lr);
      g.check(lr >= 0 && std::isfinite(lr), "lr", "must be >= 0");
      group.lr_scale = lr / o.lr;
    }
    group.lr_scale = g.get("lr_scale", group.lr_scale);
    g.check(group.lr_scale >= 0 && std::isfinite(group.lr_scale), "lr_scale", "must be >= 0");
    group.weight_decay = g.get("weight_decay", o.weight_decay);
    g.check(group.weight_decay >= 0, "weight_decay", "must be >= 0");
    g.finish();
    o.groups.push_back(group);
  }
  cfg.finish();
  return o;
}

Optimizer::Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimOptions options)
    : options_(std::move(options)) {
  std::vector<int64_t> matched(options_.groups.size(), 0);
  for (auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    Slot s{name, p, 1.0, options_.weight_decay, {}, {}};
    for (size_t g = 0; g < options_.groups.size(); ++g) {
      if (!glob_any(options_.groups[g].params, name)) continue;
      s.lr_scale = options_.groups[g].lr_scale;
      if (options_.groups[g].weight_decay >= 0) s.weight_decay = options_.groups[g].weight_decay;
      ++matched[g];
      break;
    }
    slots_.push_back(s);
  }
  for (size_t g = 0; g < matched.size(); ++g)
    if (matched[g] == 0)
      throw ConfigError(concat("optim.groups.", g, ".params"),
                        "matches no trained parameter (names as in docs/models.md; frozen ones are not trained)");
}

std::vector<std::string> freeze_parameters(torch::nn::Module& model, const OptimOptions& options) {
  std::vector<std::string> frozen;
  std::vector<bool> used(options.freeze.size(), false);
  for (auto& kv : model.named_parameters()) {
    bool hit = false;
    for (size_t i = 0; i < options.freeze.size(); ++i)
      if (glob_match(options.freeze[i], kv.key())) used[i] = hit = true;
    if (!hit) continue;
    kv.value().set_requires_grad(false);
    frozen.push_back(kv.key());
  }
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i]) throw ConfigError("optim.freeze", concat("'", options.freeze[i], "' matches no parameter"));
  return frozen;
}

void Optimizer::zero_grad() {
  for (auto& s : slots_) {
    if (s.param.grad().defined()) s.param.mutable_grad().reset();
  }
}

void Optimizer::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  const OptimOptions& o = options_;
  for (Slot& s : slots_) {
    if (!s.param.grad().defined()) continue;
    at::Tensor p = s.param;
    at::Tensor g = s.param.grad();
    const double lr_s = lr * s.lr_scale, wd = s.weight_decay;
    if (o.name == "sgd") {
      if (wd != 0) g = g.add(p, wd);
      if (o.momentum != 0) {
        if (!s.buf1.defined()) {
          s.buf1 = g.clone();
        } else {
          s.buf1.mul_(o.momentum).add_(g, 1 - o.dampening);
        }
        g = o.nesterov ? g.add(s.buf1, o.momentum) : s.buf1;
      }
      p.add_(g, -lr_s);
      continue;
    }
    // adam / adamw
    if (o.name == "adamw") {
      p.mul_(1 - lr_s * wd);
    } else if (wd != 0) {
      g = g.add(p, wd);
    }
    if (!s.buf1.defined()) {
      s.buf1 = at::zeros_like(p);
      s.buf2 = at::zeros_like(p);
    }
    s.buf1.mul_(o.beta1).add_(g, 1 - o.beta1);
    s.buf2.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
    const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(steps_));
    const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(steps_));
    at::Tensor denom = (s.buf2.sqrt() / std::sqrt(bc2)).add_(o.eps);
    p.addcdiv_(s.buf1, denom, -lr_s / bc1);
  }
}

void Optimizer::reset_state() {
  steps_ = 0;
  for (Slot& s : slots_) s.buf1 = s.buf2 = at::Tensor();
}

TensorMap Optimizer::state_dict() const {
  TensorMap out;
  out["step"] = at::full({1}, steps_, at::kLong);
  const bool sgd = options_.name == "sgd";
  for (const Slot& s : slots_) {
    if (s.buf1.defined()) out[s.name + (sgd ? ".momentum_buffer" : ".exp_avg")] = s.buf1;
    if (s.buf2.defined()) out[s.name + ".exp_avg_sq"] = s.buf2;
  }
  return out;
}

void Optimizer::load_state_dict(const TensorMap& state) {
  auto it = state.find("step");
  if (it == state.end()) throw DataError("optimizer state has no 'step'");
  steps_ = it->second.item<int64_t>();
  const bool sgd = options_.name == "sgd";
  at::NoGradGuard no_grad;
  auto take = [&](const std::string& key, const at::Tensor& like) -> at::Tensor {
    auto f = state.find(key);
    if (f == state.end()) return {};
    if (f->second.sizes() != like.sizes())
      throw DataError(concat("optimizer state '", key, "' has shape ", f->second.sizes(), ", expected ", like.sizes()));
    return f->second.to(like.options()).clone();
  };
  for (Slot& s : slots_) {
    s.buf1 = take(s.name + (sgd ? ".momentum_buffer" : ".exp_avg"), s.param);
    s.buf2 = take(s.name + ".exp_avg_sq", s.param);
  }
}

ScheduleOptions ScheduleOptions::from_config(ConfigReader& cfg) {
  ScheduleOptions s;
  s.name = cfg.one_of("name", s.name, {"constant", "step", "cosine"});
  s.warmup_steps = cfg.get("warmup_steps", s.warmup_steps);
  cfg.check(s.warmup_steps >= 0, "warmup_steps", "must be >= 0");
  if (s.name == "step") {
    s.step_size = cfg.get("step_size", s.step_size);
    s.gamma = cfg.get("gamma", s.gamma);
    cfg.check(s.step_size > 0, "step_size", "must be > 0");
    cfg.check(s.gamma > 0, "gamma", "must be > 0");
  } else if (s.name == "cosine") {
    s.min_lr = cfg.get("min_lr", s.min_lr);
    cfg.check(s.min_lr >= 0, "min_lr", "must be >= 0");
  }
  cfg.finish();
  return s;
}

double learning_rate(const ScheduleOptions& s, double base_lr, int64_t step, int64_t total_steps) {
  if (step < s.warmup_steps) return base_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const int64_t t = step - s.warmup_steps;
  if (s.name == "step") return base_lr * std::pow(s.gamma, static_cast<double>(t / s.step_size));
  if (s.name == "cosine") {
    const int64_t span = std::max<int64_t>(1, total_steps - s.warmup_steps);
    const double frac = std::min(1.0, static_cast<double>(t) / static_cast<double>(span));
    return s.min_lr + (base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * frac));
  }
  return base_lr;
}

}  // namespace oodt
