#pragma once
// Mixup (Zhang et al. 2018): x~ = lam * x + (1 - lam) * x[perm], with lam ~ Beta(a, a) and
// perm a random pairing within the rank's batch; the loss is
//   lam * CE(f(x~), y) + (1 - lam) * CE(f(x~), y[perm]),
// i.e. cross-entropy against the mixed target distribution lam * t + (1 - lam) * t[perm].
// Each rank and step draws its own lam and perm (from the step's seeded generator).
#include "core/algorithm.h"

namespace oodt {

// Mixes inputs and target distributions of `batch` in place.
void mix_batch(Batch& batch, double lam, const at::Tensor& perm, int64_t num_classes);

class Mixup final : public Algorithm {
 public:
  explicit Mixup(double alpha) : alpha_(alpha) {}
  PhaseSet hooks() const override { return phases({Phase::BeforeForward}); }
  void run(Phase phase, State& state) override;
  // The last lam drawn (reported in the metrics).
  double last_lambda() const { return last_lambda_; }

 private:
  double alpha_;
  double last_lambda_ = 1.0;
};

}  // namespace oodt
