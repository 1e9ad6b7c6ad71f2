#include "algorithms/label_smoothing/label_smoothing.h"

namespace oodt {

void smooth_targets(Batch& batch, double smoothing, int64_t num_classes) {
  at::Tensor t = batch.soft_targets.defined()
                     ? batch.soft_targets
                     : at::one_hot(batch.labels, num_classes).to(at::kFloat);
  batch.soft_targets = t.mul(1.0 - smoothing).add_(smoothing / static_cast<double>(num_classes));
}

void LabelSmoothing::run(Phase, State& state) { smooth_targets(state.batch, smoothing_, state.num_classes); }

}  // namespace oodt
