#pragma once
// SSA, stochastically subsampled self-attention (Hussain et al. KDD 2023, arXiv 2306.01705):
// in training, each attention layer and step keeps a subset of key/value positions, every
// query attends only to its kept set (softmax renormalised over it), and K and V are gathered
// at the kept positions, so the cost is N x |S| instead of N x N. The last `finetune_fraction`
// of the steps train dense. Evaluation is dense, or a self-ensemble averaging the
// probabilities of E subsampled passes (the plugin predicts at evaluation).
//
// The plugin swaps every attention kernel of the model (core/models/attention.h) for a
// subsampling one: any model whose attention layers hold a kernel gets SSA.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/algorithm.h"
#include "core/models/attention.h"

namespace oodt {

class ConfigReader;

enum class KeyPattern { Uniform, Local };

// How keys are sampled.
struct SsaSampling {
  int64_t ratio = 4;  // r: keep about N / r keys
  KeyPattern pattern = KeyPattern::Uniform;
  int64_t block = 16;  // Local: tokens per block
};

// Queries [begin, end) attend to the sorted key positions `keys` (int64).
struct KeepSet {
  int64_t begin = 0, end = 0;
  at::Tensor keys;
};

// Draws the kept keys for one layer and step from the current generator.
//  Uniform: one set of ceil(N / r) positions shared by all queries.
//  Local:   per query block b, blocks b-1..b+1 always, and farther blocks at distance d with
//           probability min(1, c / d), c chosen so that on average about N / r keys are kept.
//           With a causal mask only blocks up to b are candidates.
std::vector<KeepSet> sample_keep_sets(int64_t n, const SsaSampling& o, bool causal);

// Attention of each query over its kept set only, gathering K and V at the kept positions.
// With `causal`, kept keys after the query are masked and the query's own position is always
// attended (so no query has an empty set). Equal to dense_attention with -inf on every dropped
// key (see allowed_mask).
at::Tensor subsampled_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const std::vector<KeepSet>& sets, bool causal);

// The [N, N] mask subsampled_attention is equivalent to (the test oracle).
at::Tensor allowed_mask(int64_t n, const std::vector<KeepSet>& sets, bool causal);

// An attention kernel that subsamples keys in training (`train`) and/or in eval (`eval`), and
// attends densely otherwise.
class SubsampledKernelImpl final : public AttentionKernelImpl {
 public:
  SubsampledKernelImpl(bool causal, SsaSampling sampling);
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) override;
  SsaSampling sampling;
  bool train = true, eval = false;
};

struct SsaOptions {
  SsaSampling sampling;
  double finetune_fraction = 0.1;
  bool ensemble = false;    // eval: self-ensemble instead of dense
  int64_t eval_passes = 8;  // E
  static SsaOptions from_config(ConfigReader& cfg);
};

// The first step that trains dense (the same on every rank: a function of the step count).
int64_t ssa_dense_from(int64_t total_steps, double finetune_fraction);

class StochasticSubsampledAttention final : public Algorithm, public EvaluationPredictor {
 public:
  static constexpr const char* kName = "ssa";
  static constexpr const char* kSummary =
      "model+eval: stochastically subsampled self-attention, dense fine-tune (Hussain et al. 2023)";
  using Options = SsaOptions;

  explicit StochasticSubsampledAttention(Options o) : o_(o) {}
  // Swaps every attention kernel for a subsampling one.
  void prepare_model(State& state) override;
  // fit_start and before_forward: subsample until ssa_dense_from, then dense.
  void hooks(HookTable& table) override;
  std::vector<Claim> claims() const override { return {Claim::Attention}; }
  Capabilities capabilities() const override { return Capabilities::swapping_layers(); }
  // Dense, or the log of the mean probability of E subsampled passes, so accuracy, loss and
  // calibration score the ensemble.
  at::Tensor predict(Model& model, const at::Tensor& inputs) override;

 private:
  void set_training_mode(const State& state);
  Options o_;
  std::vector<std::shared_ptr<SubsampledKernelImpl>> kernels_;
};

}  // namespace oodt
