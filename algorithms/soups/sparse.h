#pragma once
// Sparse model soups (Zimmer et al., ICLR 2024; ZIB-IOL/SMS): iterative magnitude pruning in
// T phases from a dense trained model. Each phase
//   1. prunes p = 1 - (1 - s)^(1/T) of the remaining conv/linear weights by global magnitude
//      (rank 0 computes the mask, every rank receives it),
//   2. retrains m candidates that share the mask (one per group of ranks, each with its own
//      data order), with a fresh optimizer and a linear warm-up to the base lr followed by a
//      linear decay to 0, pruned weights held at exactly zero and given no gradient,
//   3. merges them (uniform or greedy soup) and recalibrates BatchNorm statistics;
// the next phase starts from the soup. After T phases the model has sparsity s.
// With one candidate (group_size = number of ranks) it is plain IMP with retraining.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/soups/candidates.h"
#include "core/algorithm.h"

namespace oodt {

// The weights pruning applies to: the weights of conv and linear layers (weight_layers in
// core/models/layers.h, registration order). Biases, normalisation parameters and embeddings
// are never pruned.
std::vector<std::pair<std::string, at::Tensor>> prunable_weights(torch::nn::Module& module);

// The fraction of the remaining weights each of `phases` phases removes to reach `sparsity`.
double phase_prune_amount(double sparsity, int64_t phases);

// Global magnitude pruning, as torch.nn.utils.prune.global_unstructured with L1Unstructured:
// among the entries of `weights` whose mask is 1, the round(amount * count) of smallest
// magnitude (round half to even) get mask 0. `masks` (same shapes and dtypes as the weights,
// values 0/1) are updated in place. Returns how many entries were pruned.
int64_t global_magnitude_prune(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& masks,
                               double amount);

// The retraining schedule within a phase of `phase_steps` steps: linear warm-up over the
// first round(warmup * phase_steps) steps to `max_lr`, then linear decay reaching 0 after the
// phase's last step.
double phase_learning_rate(double max_lr, int64_t step_in_phase, int64_t phase_steps, double warmup);

struct SparseSoupOptions {
  double sparsity = 0.9;   // s, reached after the last phase
  int64_t phases = 3;      // T; train.steps is split into T equal retraining phases
  double warmup = 0.1;     // fraction of each phase
  int64_t group_size = 1;  // ranks per candidate: m = ranks / group_size candidates
  CandidateMerge merge;    // uniform | greedy, with BN recalibration on 20% of an epoch
  static SparseSoupOptions from_config(ConfigReader& cfg);
};

class SparseSoup final : public Algorithm, public AveragingOwner {
 public:
  static constexpr const char* kName = "sparse_soup";
  static constexpr const char* kSummary =
      "averaging+step: IMP phases to sparsity s, m candidates per phase merged into a soup (Zimmer et al. 2024)";
  using Options = SparseSoupOptions;

  explicit SparseSoup(Options o);
  void hooks(HookTable& table) override;
  std::shared_ptr<AveragingStrategy> averaging() override { return groups_; }
  std::vector<Claim> claims() const override { return {Claim::LearningRate}; }
  // The gradients of pruned weights are zeroed after backward.
  Capabilities capabilities() const override { return Capabilities::rewriting_gradients(); }
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override;

 private:
  void fit_start(State& state);
  void start_phase(State& state, int64_t phase);
  void merge(State& state, int64_t phase);
  void apply_mask() const;
  void report(State& state, int64_t phase, int64_t pruned, const CandidateMergeReport* merge) const;

  Options o_;
  std::shared_ptr<CandidateGroups> groups_;  // shared with the trainer
  int64_t phase_steps_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> weights_;
  std::vector<at::Tensor> masks_;  // [weights_], same dtype as the weight
  TensorMap loaded_;
};

}  // namespace oodt
