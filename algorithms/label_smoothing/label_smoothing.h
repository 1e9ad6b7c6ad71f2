#pragma once
// Label smoothing (Szegedy et al. 2016): the loss becomes
//   (1 - s) * NLL(y) + s * mean_k(-log p_k),
// i.e. cross-entropy against the target distribution (1 - s) * onehot(y) + s / K.
// Composes with mixup: it smooths whatever target distribution the batch already has.
#include "core/algorithm.h"

namespace oodt {

// Replaces the batch's targets with (1 - s) * t + s / K, where t is the batch's soft targets
// or the one-hot labels.
void smooth_targets(Batch& batch, double smoothing, int64_t num_classes);

class LabelSmoothing final : public Algorithm {
 public:
  explicit LabelSmoothing(double smoothing) : smoothing_(smoothing) {}
  PhaseSet hooks() const override { return phases({Phase::BeforeLoss}); }
  void run(Phase phase, State& state) override;

 private:
  double smoothing_;
};

}  // namespace oodt
