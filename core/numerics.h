#pragma once
// Non-finite losses and gradients (train.nonfinite). Checked every step after averaging, so
// every gradient seen is the one the optimizer would apply; agreed by all ranks with one
// small all-reduce (the lowest rank that found one), then:
//   abort: the run stops with the step, the rank and what was not finite (the loss, or the
//          first parameter, in registration order, whose gradient has a NaN or Inf);
//   skip:  every rank drops this step's update (the data is consumed, the step counter moves
//          on); the count is written to metrics.jsonl as `skipped_steps` per window.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/state.h"

namespace oodt {

class NumericalError : public Error {
 public:
  using Error::Error;
};

class NonFiniteGuard {
 public:
  explicit NonFiniteGuard(std::string policy = "abort");
  // True when the step's update may be applied. `loss` is this rank's loss for the step.
  // A collective. Throws NumericalError under `abort`. With `stop_signal`, the same
  // all-reduce also agrees on stopping (one collective per step instead of two): on entry
  // this rank's signal (0 for none), on return the highest any rank passed.
  bool allows_update(const State& s, double loss, int* stop_signal = nullptr);
  // Steps skipped since the last call.
  int64_t take_skipped();

 private:
  std::string policy_;
  int64_t skipped_ = 0;
};

// What is not finite on this rank: "" when the loss and every gradient are finite.
std::string first_non_finite(const State& s, double loss);

}  // namespace oodt
