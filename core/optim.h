#pragma once
// Optimizers and learning-rate schedules. Written here rather than taken from torch::optim so
// that their state has stable names in checkpoints, behaves the same on LibTorch 1.13 and 2.x,
// and can be driven by plugins that own the step. The update rules follow torch.optim exactly
// (tests/core/optim_test.cpp checks them against torch.optim golden values).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/state.h"

namespace oodt {

// Parameters (by name pattern) trained with their own learning rate and weight decay: e.g. a
// freshly reset head at 10x the backbone's rate.
struct ParamGroup {
  std::vector<std::string> params;  // glob patterns on parameter names (`head.*`, `trunk.layer4.*`)
  double lr_scale = 1.0;            // of the scheduled learning rate (`lr` in the config: lr / optim.lr)
  double weight_decay = -1;         // < 0: optim.weight_decay
};

struct OptimOptions {
  std::string name = "sgd";  // sgd | adam | adamw
  double lr = 0.05;
  double weight_decay = 0.0;
  // sgd
  double momentum = 0.9;
  double dampening = 0.0;
  bool nesterov = false;
  // adam, adamw
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // Parameters not trained at all (requires_grad off before the optimizer and the gradient
  // averaging see the model: no gradient computed, sent or applied, no weight decay).
  std::vector<std::string> freeze;
  std::vector<ParamGroup> groups;  // first match wins; the rest use lr and weight_decay

  static OptimOptions from_config(ConfigReader& cfg);
};

class Optimizer {
 public:
  Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimOptions options);

  // Drops gradients (as torch's zero_grad(set_to_none=True)).
  void zero_grad();
  // One update of every parameter that has a gradient, with learning rate `lr` (times its
  // group's scale).
  void step(double lr);

  // Forgets momentum and moment estimates and the step count (a fresh start on the same
  // parameters, e.g. after pruning).
  void reset_state();

  const OptimOptions& options() const { return options_; }
  int64_t steps() const { return steps_; }
  // State as named tensors: `<param>.momentum_buffer`, `<param>.exp_avg`, `<param>.exp_avg_sq`,
  // and `step`.
  TensorMap state_dict() const;
  void load_state_dict(const TensorMap& state);

 private:
  struct Slot {
    std::string name;
    at::Tensor param;
    double lr_scale = 1, weight_decay = 0;
    at::Tensor buf1, buf2;  // momentum buffer, or Adam's first and second moments
  };
  OptimOptions options_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

struct ScheduleOptions {
  std::string name = "cosine";  // constant | step | cosine
  int64_t warmup_steps = 0;     // linear warm-up: lr * (step + 1) / warmup_steps
  int64_t step_size = 1000;     // step: multiply by gamma every step_size steps
  double gamma = 0.1;
  double min_lr = 0.0;          // cosine: floor reached at the last step

  static ScheduleOptions from_config(ConfigReader& cfg);
};

// Turns requires_grad off for the parameters matching `options.freeze`; ConfigError
// (optim.freeze) for a pattern that matches none. Returns the names frozen.
std::vector<std::string> freeze_parameters(torch::nn::Module& model, const OptimOptions& options);

// The learning rate for optimizer step `step` (0-based) of a run of `total_steps`.
double learning_rate(const ScheduleOptions& s, double base_lr, int64_t step, int64_t total_steps);

}  // namespace oodt
