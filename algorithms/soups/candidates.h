#pragma once
// Soup candidates trained in parallel: the ranks are split into G = world / group_size groups
// of consecutive ranks, and group g trains candidate g from the same starting weights with its
// own data order and random stream (and optionally its own learning-rate scale). Gradients are
// averaged within a group only; at the end the candidates are merged, a uniform soup being one
// all-reduce mean over all ranks (Wortsman et al. 2022; algorithms.md section 4).
//
// CandidateGroups is the averaging strategy that does this; the soup_ingredients plugin
// (below) and the sparse_soup plugin (algorithms/soups/sparse.h) own it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/soups/merge.h"
#include "core/algorithm.h"
#include "core/averaging.h"
#include "core/gradient_sync.h"

namespace oodt {

class ConfigReader;

class CandidateGroups final : public AveragingStrategy {
 public:
  // `key` names the config key (`algorithms.<plugin>.group_size`) in errors.
  CandidateGroups(int64_t group_size, std::string key);
  std::string name() const override { return "candidate_groups"; }

  // Splits the ranks into groups and gives each group the whole dataset in its own order (the
  // data source must be a ReshardableSource); a fresh run broadcasts rank 0's weights to every
  // rank (one shared start), a resumed one restores each group's candidate from the checkpoint.
  // Then plans the group's gradient averaging (core/gradient_sync.h).
  void setup(State& state) override;
  // Mean of gradients within the group: the run's gradient sync engine over the group, so
  // dist.* (buckets, overlap, compression) applies as it does to one model over all ranks.
  void begin_backward(State&) override { sync_->begin_backward(); }
  double backward_scale() const override { return sync_ ? sync_->backward_scale() : 1.0; }
  void average(State& state) override;
  // Within the group (over every rank once merged).
  void sync_buffers(State& state) override;
  Communicator& evaluation_comm(State& state) override { return active(state); }
  // Copies candidates 1..G-1 (weights and optimizer state) to rank 0 for the checkpoint.
  void prepare_save(State& state) override;
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override;

  int64_t candidates() const { return candidates_; }
  int64_t candidate() const { return candidate_; }
  bool merged() const { return merged_; }
  Communicator& group() { return *group_; }

  // Collective: every candidate's weights and buffers on every rank, index = candidate.
  std::vector<TensorMap> all_models(State& state);
  // Collective: every rank now holds one model (after a merge); evaluation and buffers go
  // over all ranks (each rank keeps its group's training stream).
  void set_merged(State& state);
  // Collective: groups train their own candidates again (from whatever weights they hold).
  void set_split(State& state);

 private:
  Communicator& active(State& state) { return merged_ ? *state.comm : *group_; }
  void reshard(State& state);

  int64_t group_size_;
  std::string key_;
  int64_t bucket_bytes_ = 0;             // dist.bucket_mb, for the broadcasts
  std::unique_ptr<Communicator> group_;  // declared before sync_, which uses it
  std::unique_ptr<GradientSync> sync_;
  int64_t candidates_ = 1, candidate_ = 0;
  bool merged_ = false;
  bool dealt_ = false;  // the training stream has been dealt to the group
  mutable TensorMap gathered_;  // rank 0, after prepare_save: candidate_<g>.{model,optimizer}.<name>
  TensorMap pending_;   // from load(), applied by setup()
};

struct CandidateMerge {
  enum class Method { None, Uniform, Greedy } method = Method::Uniform;
  bool strict = false;               // greedy: accept only strict improvements
  double recalibrate_fraction = 0.2; // of an epoch of training data; 0: average BN statistics
};

// What a merge did, for reports.
struct CandidateMergeReport {
  std::vector<double> individual;  // [candidate] validation accuracy (greedy only)
  std::vector<size_t> kept;        // candidates in the soup
  GreedySoup greedy;               // the greedy trace (greedy only)
};

// Collective: merges the groups' candidates into one model on every rank and recalibrates
// BatchNorm statistics on `recalibrate_fraction` of the training data. Greedy scores every
// soup on the validation splits (the training domains' out splits, never a held-out domain),
// as the run's evaluations score (state.predict).
CandidateMergeReport merge_candidates(State& state, CandidateGroups& groups, const CandidateMerge& options);

// Training batches per rank that make up `fraction` of an epoch (at least 1; 0 for 0).
int64_t recalibration_batches(const State& state, double fraction);

// The merge keys soup_ingredients and sparse_soup share; `none` is allowed when `allow_none`.
CandidateMerge read_merge(ConfigReader& cfg, bool allow_none);

struct SoupIngredientsOptions {
  int64_t group_size = 1;          // ranks per candidate
  std::vector<double> lr_scale;    // per candidate (empty: 1 for all)
  CandidateMerge merge;
  static SoupIngredientsOptions from_config(ConfigReader& cfg);
};

// The plugin: trains one candidate per group; at the last step evaluates every candidate,
// writes each as run_dir/candidate_<g>.h5 (inputs for `oodtrain soup`) and merges them, so the
// run's final evaluation and checkpoint are the soup's.
class SoupIngredients final : public Algorithm, public AveragingOwner {
 public:
  static constexpr const char* kName = "soup_ingredients";
  static constexpr const char* kSummary =
      "averaging: one soup candidate per group of ranks, merged into a soup at the end (Wortsman et al. 2022)";
  using Options = SoupIngredientsOptions;

  explicit SoupIngredients(Options o);
  void hooks(HookTable& table) override;
  std::shared_ptr<AveragingStrategy> averaging() override { return groups_; }
  std::vector<Claim> claims() const override { return {Claim::LearningRate}; }

 private:
  void finish(State& state);
  Options o_;
  std::shared_ptr<CandidateGroups> groups_;  // shared with the trainer
};

// Evaluates each group's candidate on its group, writes run_dir/candidate_<g>.h5 (recording
// `step` and `origin`) from each group's first rank and returns [candidate] (validation,
// held-out) accuracy on every rank.
std::vector<std::pair<double, double>> export_candidates(State& state, CandidateGroups& groups,
                                                         const std::string& origin, int64_t step);

}  // namespace oodt
