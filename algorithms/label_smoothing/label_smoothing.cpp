#include "algorithms/label_smoothing/label_smoothing.h"

#include "core/config.h"

namespace oodt {

void smooth_targets(Batch& batch, double smoothing, int64_t num_classes) {
  at::Tensor t = batch.soft_targets.defined()
                     ? batch.soft_targets
                     : at::one_hot(batch.labels, num_classes).to(at::kFloat);
  batch.soft_targets = t.mul(1.0 - smoothing).add_(smoothing / static_cast<double>(num_classes));
}

LabelSmoothingOptions LabelSmoothingOptions::from_config(ConfigReader& cfg) {
  LabelSmoothingOptions o;
  o.smoothing = cfg.get("smoothing", o.smoothing);
  cfg.check(o.smoothing >= 0 && o.smoothing < 1, "smoothing", "must be in [0, 1)");
  return o;
}

void LabelSmoothing::hooks(HookTable& table) {
  table.on(Phase::BeforeLoss, [this](State& s) { smooth_targets(s.batch, o_.smoothing, s.num_classes); });
}

}  // namespace oodt
