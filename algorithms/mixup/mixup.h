#pragma once
// Mixup (Zhang et al. 2018): x~ = lam * x + (1 - lam) * x[perm], with lam ~ Beta(a, a) and
// perm a random pairing within the rank's batch; the loss is
//   lam * CE(f(x~), y) + (1 - lam) * CE(f(x~), y[perm]),
// i.e. cross-entropy against the mixed target distribution lam * t + (1 - lam) * t[perm].
// Each rank and step draws its own lam and perm (from the step's seeded generator).
#include "core/algorithm.h"

namespace oodt {

class ConfigReader;

// Mixes inputs and target distributions of `batch` in place.
void mix_batch(Batch& batch, double lam, const at::Tensor& perm, int64_t num_classes);

struct MixupOptions {
  double alpha = 0.4;  // Beta(alpha, alpha)
  static MixupOptions from_config(ConfigReader& cfg);
};

class Mixup final : public Algorithm {
 public:
  static constexpr const char* kName = "mixup";
  static constexpr const char* kSummary = "forward+loss: convex combinations of input pairs and their targets (Zhang et al. 2018)";
  using Options = MixupOptions;

  explicit Mixup(Options o) : o_(o) {}
  void hooks(HookTable& table) override;
  // The last lam drawn.
  double last_lambda() const { return last_lambda_; }

 private:
  void mix(State& state);
  Options o_;
  double last_lambda_ = 1.0;
};

}  // namespace oodt
