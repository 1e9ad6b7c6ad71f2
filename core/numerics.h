#pragma once
// Non-finite losses and gradients (train.nonfinite). Each rank checks its own loss and its
// gradients after averaging (so every gradient seen is the one the optimizer would apply) and
// raises a flag in the step agreement (core/agreement.h); once the ranks agree (the lowest
// rank that found one):
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

class StepAgreement;

enum class NonFinitePolicy { Abort, Skip };

class NonFiniteCheck {
 public:
  // Registers its flag in `agreement`, which must outlive it.
  NonFiniteCheck(NonFinitePolicy policy, StepAgreement& agreement);
  // Before the agreement, on this rank: checks `loss` (this rank's loss of the step) and the
  // gradients, and raises the flag if anything is not finite.
  void check(const State& s, double loss);
  // After the agreement: whether the update may be applied. Throws NumericalError under
  // `abort` when any rank found something.
  bool allows_update(const State& s);
  // Steps skipped since the last call.
  int64_t take_skipped();

 private:
  NonFinitePolicy policy_;
  StepAgreement& agreement_;
  int flag_;
  std::string mine_;  // what this rank found at the last check
  int64_t skipped_ = 0;
};

// What is not finite on this rank: "" when the loss and every gradient are finite.
std::string first_non_finite(const State& s, double loss);

}  // namespace oodt
