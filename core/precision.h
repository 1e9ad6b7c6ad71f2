#pragma once
// Mixed precision (train.precision): the arithmetic of the training forward pass and loss,
// and, for float16, dynamic loss scaling. One component the trainer calls at fixed points of
// its loop (as it calls the averaging strategy), never a branch in it:
//   fp32  nothing changes (the default).
//   bf16  the forward pass and the loss of every training pass (the trainer's, and plugins'
//         extra passes through extra_backward) run under LibTorch's autocast: conv, linear and
//         matmul in bfloat16, with fp32 islands the layers keep themselves (float32() below:
//         normalisation statistics, softmax, the loss). Backward runs outside autocast, on
//         the dtypes the forward chose. Parameters, gradients and optimizer state stay fp32
//         (master weights): autocast casts per op. CPU and CUDA.
//   fp16  the same in float16 (CUDA only: LibTorch's CPU autocast runs bfloat16 only in 1.13),
//         and every backward is seeded with a loss scale S so small gradients survive float16
//         (torch.cuda.amp.GradScaler's policy, train.loss_scale.*). Gradients are averaged
//         scaled (the mean is linear; compressed buckets in transit see the scaled values, which
//         is what scaling is for; dist.compress: fp16 turns a scaled value beyond 65504 into Inf,
//         which is then an overflow like any other) and divided by S after averaging, before the
//         step agreement, in one pass that also looks for a non-finite value. A non-finite
//         gradient on any rank is an overflow: the step agreement tells every rank, every rank
//         drops the update and multiplies S by backoff_factor together. After growth_interval
//         steps in a row without one, S is multiplied by growth_factor. Overflow skips are the
//         normal working of the scaler: they do not count towards
//         train.max_consecutive_skips/max_skipped_fraction; metrics.jsonl reports them
//         (`precision.overflow_skips`, with `precision.loss_scale`). A non-finite loss is not an
//         overflow (S cannot cure a forward pass): train.nonfinite decides.
//         At S = loss_scale.min an overflow is a non-finite gradient in its own right, and
//         train.nonfinite decides. The scale and its growth tracker are in checkpoints.
// Evaluation runs in fp32 (the master weights as they are).
#include <cstdint>
#include <functional>
#include <string>

#include "core/torch_fwd.h"

namespace oodt {

class ConfigReader;
class Engine;
class StepAgreement;
struct State;

enum class PrecisionMode { Fp32, Bf16, Fp16 };
const char* precision_name(PrecisionMode mode);

// train.loss_scale.*: fp16's dynamic loss scaling (torch.cuda.amp.GradScaler's defaults).
struct LossScaleOptions {
  double init = 65536.0;          // 2^16
  double growth_factor = 2.0;     // after growth_interval steps without an overflow
  double backoff_factor = 0.5;    // after an overflow
  int64_t growth_interval = 2000;
  double min = 1.0;               // the scale never backs off below this
};

struct PrecisionOptions {
  PrecisionMode mode = PrecisionMode::Fp32;  // train.precision
  LossScaleOptions loss_scale;               // train.loss_scale
  // Not config keys; tests.
  // fp16's loss scaling with fp32 arithmetic (no autocast), so that a CPU, whose autocast has no
  // float16, can test the scaling (launch/train.cpp: OODT_SIMULATE_FP16=1).
  bool simulate_fp16 = false;
  // Runs on this rank's averaged gradients right before they are checked (launch/train.cpp:
  // OODT_INJECT_OVERFLOW=<rank>:<step> writes an Inf there).
  std::function<void(State&)> before_overflow_check;

  // train.precision and train.loss_scale from the train section.
  static PrecisionOptions from_config(ConfigReader& train);
};

// Autocast for one device type for as long as it lives; what was set before comes back at the
// end (as Python's `with torch.autocast(...)`). Default-constructed: nothing.
class Autocast {
 public:
  Autocast() = default;
  Autocast(at::DeviceType device, at::ScalarType dtype);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool active_ = false;
  at::DeviceType device_ = at::kCPU;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

// Whether autocast is on for `device` on this thread (for tests).
bool autocast_enabled(at::DeviceType device);

// x in float32: x itself when it is already, or not floating point. The fp32 islands of the
// layers (a no-op outside autocast, where everything is float32 already).
at::Tensor float32(const at::Tensor& x);
// x's dtype, float32 in place of bfloat16 and float16.
at::ScalarType float32_dtype(const at::Tensor& x);

// fp16's scale as torch.cuda.amp.GradScaler keeps it: the state machine alone.
class LossScaler {
 public:
  explicit LossScaler(LossScaleOptions o);
  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  // Whether an overflow can still back the scale off (above the minimum).
  bool can_back_off() const { return scale_ > o_.min; }
  // After a step: an overflow (on any rank) multiplies the scale by backoff_factor (not below
  // min); otherwise growth_interval finite steps in a row multiply it by growth_factor (while
  // the product is finite). Either restarts the count.
  void update(bool overflow);
  // [scale, growth tracker] as a float64 tensor, and back.
  at::Tensor state() const;
  void load(const at::Tensor& state);

 private:
  LossScaleOptions o_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

class Precision {
 public:
  // Registers fp16's overflow flag in `agreement`, which must outlive this object.
  Precision(PrecisionOptions o, StepAgreement& agreement);

  // Set-up: refuses what cannot run, as a ConfigError: fp16 on a CPU; a plugin whose
  // capabilities say it cannot train in reduced precision (Engine::check_precision).
  void validate(const Engine& engine, at::Device device);
  PrecisionMode mode() const { return o_.mode; }

  // Autocast for a training forward pass and loss on the run's device (nothing under fp32 or
  // simulated fp16).
  Autocast autocast() const;
  // The factor every backward of a step is seeded with: the loss scale under fp16, else 1.
  double loss_scale() const;

  // After averaging, before the step agreement (fp16): divides the gradients by the loss scale,
  // or, when one of them is not finite, raises the overflow flag instead.
  void unscale(State& s);
  // Whether unscale() answers for the gradients' finiteness this step (fp16 above the minimum
  // scale): the non-finite check then looks at the loss and buffers only.
  bool checks_gradients() const;
  // After the agreement: false when some rank's gradient overflowed (every rank then drops the
  // update); the scale backs off or grows.
  bool allows_update();

  // At each evaluation (fp16): precision.loss_scale and precision.overflow_skips (since the last
  // evaluation) into s.metrics, the scalars of the metrics.jsonl row.
  void report(State& s);
  // Checkpoints (fp16): the scale, its growth tracker and the window's overflow count under
  // /trainer/loss_scaler; load() keeps the configured start when the entry is absent.
  void save(TensorMap& trainer) const;
  void load(const TensorMap& trainer);

 private:
  PrecisionOptions o_;
  StepAgreement& agreement_;
  int flag_ = -1;  // the overflow flag (fp16)
  LossScaler scaler_;
  at::DeviceType device_ = at::kCPU;
  bool overflowed_ = false;     // this rank, this step
  int64_t overflow_skips_ = 0;  // since the last report
};

// The loss scale of the run's current step: what a plugin's extra backward is seeded with
// (1 unless fp16; 1 for a State without a Precision).
double loss_scale(const State& s);

// A plugin's extra forward/backward pass over the step's batch, as the trainer's own: the
// model's output on s.batch.inputs scored by classification_loss, under the run's autocast,
// and backward seeded with the loss scale. Gradients add to those already there. Returns the
// (unscaled) loss.
at::Tensor extra_backward(State& s);

}  // namespace oodt
