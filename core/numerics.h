#pragma once
// Non-finite losses, gradients and buffers (train.nonfinite). Each rank checks its own loss,
// its gradients after averaging (so every gradient seen is the one the optimizer would apply)
// and its float buffers (BatchNorm's running statistics), and raises a flag in the step
// agreement (core/agreement.h); once the ranks agree (the lowest rank that found one):
//   abort: the run stops with the step, the rank and what was not finite (the loss, or the
//          first parameter or buffer, in registration order, with a NaN or Inf);
//   skip:  every rank drops this step's update and restores the buffers the step's forward
//          passes changed (the data is consumed, the step counter moves on); rank 0 says so on
//          stderr, and the count is in metrics.jsonl as `skipped_steps` per window. A run
//          whose updates keep failing is stopped: more than train.max_consecutive_skips in a
//          row, or more than train.max_skipped_fraction of train.steps in all.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/state.h"

namespace oodt {

class NumericalError : public Error {
 public:
  using Error::Error;
};

class StepAgreement;

enum class NonFinitePolicy { Abort, Skip };

struct NonFiniteOptions {
  NonFinitePolicy policy = NonFinitePolicy::Abort;
  int64_t max_consecutive_skips = 10;  // skip: more in a row stop the run
  double max_skipped_fraction = 0.1;   // skip: more than this share of train.steps stops the run
};

class NonFiniteCheck {
 public:
  // Registers its flag in `agreement`, which must outlive it.
  NonFiniteCheck(NonFiniteOptions options, StepAgreement& agreement);
  // At the start of a step: under `skip`, keeps the model's float buffers to restore if the
  // step is dropped.
  void begin_step(const State& s);
  // Before the agreement, on this rank: checks `loss` (this rank's loss of the step), the
  // gradients (unless `gradients` is false: fp16's loss scaler answers for them, core/precision.h)
  // and the float buffers, and raises the flag if anything is not finite.
  void check(const State& s, double loss, bool gradients = true);
  // After the agreement: whether the update may be applied. Throws NumericalError under
  // `abort` when any rank found something, and under `skip` past the limits.
  bool allows_update(State& s);
  // Steps skipped since the last call.
  int64_t take_skipped();

 private:
  NonFiniteOptions o_;
  StepAgreement& agreement_;
  int flag_;
  std::string mine_;  // what this rank found at the last check
  std::vector<at::Tensor> buffers_, saved_;  // skip: the float buffers and their values at the step's start
  int64_t skipped_ = 0, consecutive_ = 0, total_ = 0;
};

// What is not finite on this rank: "" when the loss, every gradient (when `gradients`) and every
// float buffer are finite.
std::string first_non_finite(const State& s, double loss, bool gradients = true);

// Whether any of `tensors` (undefined and non-float ones ignored) holds a NaN or Inf.
bool any_non_finite(const std::vector<at::Tensor>& tensors);

}  // namespace oodt
