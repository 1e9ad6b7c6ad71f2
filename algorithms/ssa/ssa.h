#pragma once
// SSA, stochastically subsampled self-attention (Hussain et al. KDD 2023, arXiv 2306.01705):
// every attention layer keeps about N / r key/value positions per step in training (uniform
// or locally biased; see core/models/attention.h), then the last `finetune_fraction` of the
// steps train dense. Evaluation is dense, or a self-ensemble averaging the probabilities of E
// subsampled passes.
#include "core/algorithm.h"
#include "core/models/attention.h"

namespace oodt {

struct SsaPluginOptions {
  SsaOptions attention;          // ratio, pattern, block (train/eval flags are set per phase)
  double finetune_fraction = 0.1;
  bool ensemble = false;         // eval: self-ensemble instead of dense
  int64_t eval_passes = 8;       // E
};

// Sets `options` on every attention layer of `module`; returns how many.
int64_t apply_ssa(torch::nn::Module& module, const SsaOptions& options);

// The first step that trains dense (the same on every rank: a function of the step count).
int64_t ssa_dense_from(int64_t total_steps, double finetune_fraction);

class StochasticSubsampledAttention final : public Algorithm {
 public:
  explicit StochasticSubsampledAttention(SsaPluginOptions o) : o_(o) {}
  PhaseSet hooks() const override { return phases({Phase::FitStart, Phase::BeforeForward, Phase::FitEnd}); }
  void run(Phase phase, State& state) override;
  std::vector<std::string> claims() const override { return {"attention"}; }

 private:
  SsaPluginOptions o_;
  bool subsampling_ = false;
};

}  // namespace oodt
