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

  static OptimOptions from_config(ConfigReader& cfg);
};

class Optimizer {
 public:
  Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimOptions options);

  // Drops gradients (as torch's zero_grad(set_to_none=True)).
  void zero_grad();
  // One update of every parameter that has a gradient, with learning rate `lr`.
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

// The learning rate for optimizer step `step` (0-based) of a run of `total_steps`.
double learning_rate(const ScheduleOptions& s, double base_lr, int64_t step, int64_t total_steps);

}  // namespace oodt
