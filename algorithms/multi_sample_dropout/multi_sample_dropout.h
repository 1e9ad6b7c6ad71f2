#pragma once
// Multi-sample dropout (Inoue 2019, arXiv 1905.09788). The trunk runs once; its features are
// repeated M times along the batch, each copy gets its own dropout mask, the shared head runs
// once on all copies, and the loss is the mean of the M per-copy losses:
//   L = (1/M) sum_m loss(head(drop_m(h)), y)
// (averaging the M logits before the loss would be a different method). The plugin swaps the
// model's Head for a MultiSampleHead (module surgery: same names, same parameters) whose
// training output is [M*N, K], mask-major; the trainer's loss scores such outputs against the
// N targets (core/state.h, classification_loss), and so does every second pass of another
// plugin. Eval: one head call, dropout off.
#include <cstdint>

#include "core/algorithm.h"
#include "core/models/layers.h"

namespace oodt {

class ConfigReader;

// The head's inputs for M dropout masks: `masks` [M, N, D] already scaled by 1/(1-p); returns
// [M*N, D], mask-major (rows m*N .. m*N+N-1 use mask m).
at::Tensor multi_sample_inputs(const at::Tensor& h, const at::Tensor& masks);
// The logits of a linear head on them, [M*N, K] (the functional core the golden test checks).
at::Tensor multi_sample_logits(const at::Tensor& h, const at::Tensor& masks, const at::Tensor& weight,
                               const at::Tensor& bias);

// A Head that, in training, runs its classifier on M dropout masks of the features at once.
class MultiSampleHeadImpl final : public HeadImpl {
 public:
  // Takes over `base`'s classifier and dropout rate.
  MultiSampleHeadImpl(const HeadImpl& base, int64_t samples);
  at::Tensor forward(const at::Tensor& h) override;
  int64_t samples;  // M
};

struct MultiSampleDropoutOptions {
  int64_t samples = 8;  // M
  static MultiSampleDropoutOptions from_config(ConfigReader& cfg);
};

class MultiSampleDropout final : public Algorithm {
 public:
  static constexpr const char* kName = "multi_sample_dropout";
  static constexpr const char* kSummary = "model: M dropout masks over the trunk output, mean of M losses (Inoue 2019)";
  using Options = MultiSampleDropoutOptions;

  explicit MultiSampleDropout(Options o) : o_(o) {}
  // Swaps every Head for a MultiSampleHead; refuses a model whose head has no dropout.
  void prepare_model(State& state) override;
  void hooks(HookTable&) override {}
  std::vector<Claim> claims() const override { return {Claim::HeadSamples}; }
  Capabilities capabilities() const override { return Capabilities::swapping_layers(); }

 private:
  Options o_;
};

}  // namespace oodt
