#pragma once
// What the trainer needs from a dataset. Implemented in data/ (HDF5 domain datasets); the
// trainer sees only this interface.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/state.h"

namespace oodt {

struct DomainInfo {
  std::string name;
  bool held_out = false;  // a test domain: never trained on
};

// One evaluation split: a domain's `in` (training) or `out` (validation) part.
struct EvalSplit {
  int64_t domain = 0;
  std::string part;  // "in" | "out"
};

// Every training sample (the training domains' `in` splits) in a fixed order, by label and
// domain: what a plugin that deals the training data itself (federated clients) partitions.
struct TrainPool {
  std::vector<int64_t> labels, domains;
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t num_classes() const = 0;
  virtual std::vector<int64_t> input_shape() const = 0;  // [C, H, W]
  virtual const std::vector<DomainInfo>& domains() const = 0;
  // Training samples per rank per step.
  virtual int64_t batch_size() const = 0;

  // This rank's training batch for global step `step`. A pure function of (seed, step, rank,
  // world size): resuming at any step replays exactly the same samples.
  virtual Batch train_batch(int64_t step) = 0;
  // The epoch that step `step` belongs to, and the steps an epoch takes.
  virtual int64_t epoch_of(int64_t step) const = 0;
  virtual int64_t steps_per_epoch() const = 0;
  // Re-deals the training stream and the evaluation shares: this process becomes `rank` of
  // `world` with sample order `seed`. Plugins that train several models at once (one soup
  // candidate per group of ranks) give each group the whole dataset this way.
  virtual void reshard(uint64_t seed, int rank, int world) = 0;
  // Re-deals only the evaluation shares (for_each_eval_batch): the training stream stays.
  // After a soup's candidates are merged, all ranks evaluate one model together while each
  // keeps its place in its own training stream (and epoch count).
  virtual void share_evaluation(int rank, int world) = 0;

  // The training pool and a reader for positions in it (any order, repeats allowed). Sources
  // that cannot offer one say so.
  virtual const TrainPool& train_pool();
  virtual Batch read_pool(const std::vector<int64_t>& positions);

  virtual std::vector<EvalSplit> eval_splits() const = 0;
  // Calls `fn` on this rank's share of a split, in batches of at most `batch_size`. Shares of
  // all ranks together cover the split exactly once.
  virtual void for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                                   const std::function<void(const Batch&)>& fn) = 0;
};

}  // namespace oodt
