#include "core/optim.h"

#include <cmath>

#include "core/error.h"

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
  cfg.finish();
  return o;
}

Optimizer::Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimOptions options)
    : options_(std::move(options)) {
  for (auto& [name, p] : params) {
    if (p.requires_grad()) slots_.push_back(Slot{name, p, {}, {}});
  }
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
    if (o.name == "sgd") {
      if (o.weight_decay != 0) g = g.add(p, o.weight_decay);
      if (o.momentum != 0) {
        if (!s.buf1.defined()) {
          s.buf1 = g.clone();
        } else {
          s.buf1.mul_(o.momentum).add_(g, 1 - o.dampening);
        }
        g = o.nesterov ? g.add(s.buf1, o.momentum) : s.buf1;
      }
      p.add_(g, -lr);
      continue;
    }
    // adam / adamw
    if (o.name == "adamw") {
      p.mul_(1 - lr * o.weight_decay);
    } else if (o.weight_decay != 0) {
      g = g.add(p, o.weight_decay);
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
    p.addcdiv_(s.buf1, denom, -lr / bc1);
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
