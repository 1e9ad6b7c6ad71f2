#include "core/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cmath>
#include <limits>

#include "core/agreement.h"
#include "core/config.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/numerics.h"
#include "core/state.h"

// LibTorch 2.4 made the autocast state per device type (set_autocast_enabled(device, on)) and
// deprecated the per-backend names 1.13 has (set_cpu_enabled, set_autocast_gpu_dtype, ...).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define OODT_AUTOCAST_PER_DEVICE 1
#else
#define OODT_AUTOCAST_PER_DEVICE 0
#endif

namespace oodt {
namespace {

#if OODT_AUTOCAST_PER_DEVICE
bool enabled_on(at::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void enable_on(at::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
at::ScalarType dtype_on(at::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void set_dtype_on(at::DeviceType d, at::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
bool enabled_on(at::DeviceType d) { return d == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void enable_on(at::DeviceType d, bool on) {
  if (d == at::kCUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
}
at::ScalarType dtype_on(at::DeviceType d) {
  return d == at::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_dtype_on(at::DeviceType d, at::ScalarType t) {
  if (d == at::kCUDA) at::autocast::set_autocast_gpu_dtype(t);
  else at::autocast::set_autocast_cpu_dtype(t);
}
#endif

// GradScaler keeps its scale in a float32 tensor: the same rounding, and the same overflow to
// Inf when growing.
double as_float(double v) { return static_cast<double>(static_cast<float>(v)); }

Autocast autocast_of(const State& s) {
  if (s.precision != nullptr) return s.precision->autocast();
  return Autocast();
}

}  // namespace

const char* precision_name(PrecisionMode mode) {
  switch (mode) {
    case PrecisionMode::Fp32: return "fp32";
    case PrecisionMode::Bf16: return "bf16";
    case PrecisionMode::Fp16: return "fp16";
  }
  return "?";
}

PrecisionOptions PrecisionOptions::from_config(ConfigReader& train) {
  PrecisionOptions o;
  o.mode = train.one_of<PrecisionMode>(
      "precision", o.mode, {{"fp32", PrecisionMode::Fp32}, {"bf16", PrecisionMode::Bf16}, {"fp16", PrecisionMode::Fp16}});
  ConfigReader ls = train.child("loss_scale");
  LossScaleOptions& s = o.loss_scale;
  s.init = ls.get("init", s.init);
  s.growth_factor = ls.get("growth_factor", s.growth_factor);
  s.backoff_factor = ls.get("backoff_factor", s.backoff_factor);
  s.growth_interval = ls.get("growth_interval", s.growth_interval);
  s.min = ls.get("min", s.min);
  const double fmax = std::numeric_limits<float>::max();
  ls.check(std::isfinite(s.init) && s.init > 0 && s.init <= fmax, "init", "must be > 0 and a finite float32");
  ls.check(std::isfinite(s.growth_factor) && s.growth_factor > 1, "growth_factor", "must be > 1");
  ls.check(s.backoff_factor > 0 && s.backoff_factor < 1, "backoff_factor", "must be in (0, 1)");
  ls.check(s.growth_interval >= 1, "growth_interval", "must be >= 1 (steps without an overflow before the scale grows)");
  ls.check(std::isfinite(s.min) && s.min > 0 && s.min <= s.init, "min", "must be > 0 and at most loss_scale.init");
  ls.finish();
  return o;
}

Autocast::Autocast(at::DeviceType device, at::ScalarType dtype) : device_(device) {
  OODT_CHECK(device == at::kCPU || device == at::kCUDA, "autocast on ", device, ": only CPU and CUDA");
  was_enabled_ = enabled_on(device);
  was_dtype_ = dtype_on(device);
  set_dtype_on(device, dtype);
  enable_on(device, true);
  at::autocast::increment_nesting();
  active_ = true;
}

Autocast::~Autocast() {
  if (!active_) return;
  // The weights' casts are cached while autocast is on; the outermost scope drops them (the
  // weights change before the next pass).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  enable_on(device_, was_enabled_);
  set_dtype_on(device_, was_dtype_);
}

bool autocast_enabled(at::DeviceType device) { return enabled_on(device); }

at::ScalarType float32_dtype(const at::Tensor& x) {
  const at::ScalarType t = x.scalar_type();
  return t == at::kBFloat16 || t == at::kHalf ? at::kFloat : t;
}

at::Tensor float32(const at::Tensor& x) {
  if (!x.defined() || float32_dtype(x) == x.scalar_type()) return x;
  return x.to(at::kFloat);
}

LossScaler::LossScaler(LossScaleOptions o) : o_(o), scale_(as_float(o.init)) {}

void LossScaler::update(bool overflow) {
  if (overflow) {
    scale_ = std::max(as_float(scale_ * o_.backoff_factor), as_float(o_.min));
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ < o_.growth_interval) return;
  const double grown = as_float(scale_ * o_.growth_factor);
  if (std::isfinite(grown)) scale_ = grown;
  growth_tracker_ = 0;
}

at::Tensor LossScaler::state() const { return at::tensor({scale_, static_cast<double>(growth_tracker_)}, at::kDouble); }

void LossScaler::load(const at::Tensor& state) {
  OODT_CHECK(state.numel() >= 2, "loss scaler state: expected [scale, growth tracker], got ", state.sizes());
  const at::Tensor v = state.to(at::kDouble);
  scale_ = v[0].item<double>();
  growth_tracker_ = static_cast<int64_t>(v[1].item<double>());
}

Precision::Precision(PrecisionOptions o, StepAgreement& agreement)
    : o_(std::move(o)), agreement_(agreement), scaler_(o_.loss_scale) {
  if (o_.mode == PrecisionMode::Fp16) flag_ = agreement_.add("grad_overflow");
}

void Precision::validate(const Engine& engine, at::Device device) {
  device_ = device.type();
  if (o_.mode == PrecisionMode::Fp32) return;
  if (!device.is_cpu() && !device.is_cuda())
    throw ConfigError("train.precision", concat(precision_name(o_.mode), " runs on CPU or CUDA devices, not ", device));
  if (o_.mode == PrecisionMode::Fp16 && device.is_cpu() && !o_.simulate_fp16)
    throw ConfigError("train.precision", "fp16 needs a CUDA device (LibTorch 1.13's CPU autocast has no float16); "
                                         "use bf16 on CPUs");
  engine.check_precision(precision_name(o_.mode));
}

Autocast Precision::autocast() const {
  if (o_.mode == PrecisionMode::Fp32 || (o_.mode == PrecisionMode::Fp16 && o_.simulate_fp16)) return Autocast();
  return Autocast(device_, o_.mode == PrecisionMode::Bf16 ? at::kBFloat16 : at::kHalf);
}

double Precision::loss_scale() const { return o_.mode == PrecisionMode::Fp16 ? scaler_.scale() : 1.0; }

void Precision::unscale(State& s) {
  overflowed_ = false;
  if (o_.mode != PrecisionMode::Fp16) return;
  if (o_.before_overflow_check) o_.before_overflow_check(s);
  std::vector<at::Tensor> grads;
  for (const auto& p : s.model->parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  at::NoGradGuard no_grad;
  if (grads.front().is_cuda()) {
    // GradScaler's own kernel: every element checked, and divided, in one pass (one sync).
    at::Tensor found = at::zeros({1}, grads.front().options());
    const at::Tensor inv = at::full({1}, 1.0 / scaler_.scale(), grads.front().options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv);
    overflowed_ = found.item<float>() != 0.0f;
  } else {
    overflowed_ = any_non_finite(grads);
    // 1/S of a power of two is exact: the gradients are then those fp32 arithmetic gives.
    if (!overflowed_) at::_foreach_mul_(grads, 1.0 / scaler_.scale());
  }
  // An overflow leaves the gradients as they are: the update is dropped (or, at the minimum
  // scale, train.nonfinite decides).
  if (overflowed_) agreement_.raise(flag_);
}

bool Precision::checks_gradients() const { return o_.mode == PrecisionMode::Fp16 && scaler_.can_back_off(); }

bool Precision::allows_update() {
  if (o_.mode != PrecisionMode::Fp16) return true;
  const bool overflow = agreement_.raised(flag_);
  // At the minimum scale the non-finite check has seen the gradient too, and decides.
  const bool skip = overflow && scaler_.can_back_off();
  scaler_.update(overflow);
  if (skip) ++overflow_skips_;
  return !skip;
}

void Precision::report(State& s) {
  if (o_.mode != PrecisionMode::Fp16) return;
  s.metrics["precision.loss_scale"] = scaler_.scale();
  s.metrics["precision.overflow_skips"] = static_cast<double>(overflow_skips_);
  overflow_skips_ = 0;
}

void Precision::save(TensorMap& trainer) const {
  if (o_.mode != PrecisionMode::Fp16) return;
  trainer["loss_scaler"] = at::cat({scaler_.state(), at::tensor({static_cast<double>(overflow_skips_)}, at::kDouble)});
}

void Precision::load(const TensorMap& trainer) {
  if (o_.mode != PrecisionMode::Fp16) return;
  auto it = trainer.find("loss_scaler");
  if (it == trainer.end()) return;  // a checkpoint of a run in another precision: start afresh
  OODT_CHECK(it->second.numel() == 3, "checkpoint: /trainer/loss_scaler has ", it->second.numel(),
             " values, expected 3 (scale, growth tracker, overflow skips)");
  scaler_.load(it->second);
  overflow_skips_ = static_cast<int64_t>(it->second.to(at::kDouble)[2].item<double>());
}

double loss_scale(const State& s) { return s.precision != nullptr ? s.precision->loss_scale() : 1.0; }

at::Tensor extra_backward(State& s) {
  at::Tensor loss;
  {
    const Autocast cast = autocast_of(s);
    loss = classification_loss(s.model->forward(s.batch.inputs), s.batch);
  }
  const double scale = loss_scale(s);
  (scale == 1.0 ? loss : loss * scale).backward();
  return loss;
}

}  // namespace oodt
