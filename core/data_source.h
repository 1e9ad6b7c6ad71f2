#pragma once
// What the trainer needs from a dataset. Implemented in data/ (HDF5 domain datasets, text);
// the trainer sees only this interface. Sources may offer optional interfaces (below) that some
// plugins need; a plugin asks with as<T>() and refuses the run when the source lacks one.
#include <cstdint>
#include <functional>
#include <string>
#include <typeinfo>
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

  virtual std::vector<EvalSplit> eval_splits() const = 0;
  // Calls `fn` on this rank's share of a split, in batches of at most `batch_size`. Shares of
  // all ranks together cover the split exactly once.
  virtual void for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                                   const std::function<void(const Batch&)>& fn) = 0;

  // The optional interface T if this source offers it, else nullptr.
  template <class T>
  T* as() {
    return static_cast<T*>(find_interface(typeid(T)));
  }

 protected:
  // A source offering optional interfaces returns itself cast to the one asked for; a
  // decorator offers what the source it wraps offers.
  virtual void* find_interface(const std::type_info&) { return nullptr; }
};

// A source that can deal its data anew. Plugins that train several models at once (one per
// group of ranks) give each group the whole dataset this way.
class ReshardableSource {
 public:
  virtual ~ReshardableSource() = default;
  // Re-deals the training stream and the evaluation shares: this process becomes `rank` of
  // `world` with sample order `seed`.
  virtual void reshard(uint64_t seed, int rank, int world) = 0;
  // Re-deals only the evaluation shares (for_each_eval_batch); the training stream stays.
  virtual void share_evaluation(int rank, int world) = 0;
};

// Every training sample (the training domains' `in` splits) in a fixed order, by label and
// domain.
struct TrainPool {
  std::vector<int64_t> labels, domains;
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// A source with a training pool that plugins dealing the training data themselves (federated
// clients) partition, and a reader for positions in it (any order, repeats allowed).
class PooledSource {
 public:
  virtual ~PooledSource() = default;
  virtual const TrainPool& train_pool() = 0;
  virtual Batch read_pool(const std::vector<int64_t>& positions) = 0;
};

}  // namespace oodt
