#pragma once
// Label smoothing (Szegedy et al. 2016): the loss becomes
//   (1 - s) * NLL(y) + s * mean_k(-log p_k),
// i.e. cross-entropy against the target distribution (1 - s) * onehot(y) + s / K.
// Composes with mixup: it smooths whatever target distribution the batch already has.
#include "core/algorithm.h"

namespace oodt {

class ConfigReader;

// Replaces the batch's targets with (1 - s) * t + s / K, where t is the batch's soft targets
// or the one-hot labels.
void smooth_targets(Batch& batch, double smoothing, int64_t num_classes);

struct LabelSmoothingOptions {
  double smoothing = 0.1;  // s
  static LabelSmoothingOptions from_config(ConfigReader& cfg);
};

class LabelSmoothing final : public Algorithm {
 public:
  static constexpr const char* kName = "label_smoothing";
  static constexpr const char* kSummary = "loss: cross-entropy against (1-s)*onehot + s/K (Szegedy et al. 2016)";
  using Options = LabelSmoothingOptions;

  explicit LabelSmoothing(Options o) : o_(o) {}
  void hooks(HookTable& table) override;

 private:
  Options o_;
};

}  // namespace oodt
