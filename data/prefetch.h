#pragma once
// Reads training batches ahead on a background thread, so a training step never waits on
// HDF5. A decorator over any DataSource: batches are pure functions of the step, so reading
// step s + 1 while step s trains changes nothing in what the trainer sees (a step that was
// not read ahead, e.g. the first after a resume, is read on the spot). Every call into the
// wrapped source is serialised by one mutex; reshard() drops what was read ahead. It offers
// the optional interfaces the wrapped source offers.
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/data_source.h"

namespace oodt {

class PrefetchingSource final : public DataSource, public ReshardableSource, public PooledSource {
 public:
  PrefetchingSource(std::unique_ptr<DataSource> inner, int64_t depth);
  ~PrefetchingSource() override;
  PrefetchingSource(const PrefetchingSource&) = delete;
  PrefetchingSource& operator=(const PrefetchingSource&) = delete;

  int64_t num_classes() const override { return inner_->num_classes(); }
  std::vector<int64_t> input_shape() const override { return inner_->input_shape(); }
  const std::vector<DomainInfo>& domains() const override { return inner_->domains(); }
  int64_t batch_size() const override { return inner_->batch_size(); }
  Batch train_batch(int64_t step) override;
  int64_t epoch_of(int64_t step) const override { return inner_->epoch_of(step); }
  int64_t steps_per_epoch() const override { return inner_->steps_per_epoch(); }
  void reshard(uint64_t seed, int rank, int world) override;
  void share_evaluation(int rank, int world) override;
  const TrainPool& train_pool() override;
  Batch read_pool(const std::vector<int64_t>& positions) override;
  std::vector<EvalSplit> eval_splits() const override { return inner_->eval_splits(); }
  void for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                           const std::function<void(const Batch&)>& fn) override;

  // Batches handed over already read / read on the spot, since construction.
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 protected:
  void* find_interface(const std::type_info& t) override;

 private:
  struct Slot {
    bool ready = false;
    Batch batch;
    std::exception_ptr error;
  };
  void loop();
  void drop_pending(std::unique_lock<std::mutex>& lock);

  std::unique_ptr<DataSource> inner_;
  int64_t depth_;
  std::mutex source_mu_;  // every call into inner_
  std::mutex mu_;         // the fields below
  std::condition_variable wake_, filled_;
  std::map<int64_t, Slot> slots_;  // steps requested ahead (ready or not)
  int64_t reading_ = -1;           // the step the worker is reading now
  uint64_t generation_ = 0;        // bumped by reshard: a read in flight is discarded
  bool stop_ = false;
  int64_t hits_ = 0, misses_ = 0;
  std::thread worker_;
};

}  // namespace oodt
