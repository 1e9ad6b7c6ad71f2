#pragma once
// Multi-sample dropout (Inoue 2019, arXiv 1905.09788). The trunk runs once; its features are
// repeated M times along the batch, each copy gets its own dropout mask, the shared head runs
// once on all copies, and the loss is the mean of the M per-copy losses:
//   L = (1/M) sum_m loss(head(drop_m(h)), y)
// (averaging the M logits before the loss would be a different method). Eval: one head call,
// dropout off.
#include <cstdint>

#include "core/algorithm.h"

namespace oodt {

// Repeats the batch's targets (labels, soft targets, domains) M times, mask-major, to match
// the head's [M*N, K] training output.
void repeat_targets(Batch& batch, int64_t samples);

class MultiSampleDropout final : public Algorithm {
 public:
  explicit MultiSampleDropout(int64_t samples) : samples_(samples) {}
  PhaseSet hooks() const override {
    return phases({Phase::FitStart, Phase::BeforeLoss, Phase::AfterLoss, Phase::FitEnd});
  }
  void run(Phase phase, State& state) override;

 private:
  int64_t samples_;
  Batch saved_;  // the step's targets, restored after the loss
};

}  // namespace oodt
