#pragma once
// The HDF5 domain dataset reader (the DataSource the trainer uses).
//
// - Streams: images are read a block at a time (one HDF5 chunk, decoded once) into an LRU of
//   decoded blocks bounded by `data.cache_mb`; a batch copies its rows out of the blocks.
//   Per sample only its label, domain and split/shard positions stay in memory (about 40 bytes).
// - Splits each domain into `in` (train) and `out` (validation) parts by a seeded rule.
// - Training batches are balanced over the training (not held-out) domains, in shuffled order.
// - Shards deterministically: each domain's `in` part is shuffled per epoch from
//   (split_seed, seed, domain, epoch) and dealt round-robin to ranks, so every sample is used
//   once per epoch across ranks. A batch is a pure function of the step.
#include <cstdint>
#include <memory>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.h"
#include "core/data_source.h"
#include "core/h5.h"
#include "data/augment.h"

namespace oodt {

struct DataOptions {
  std::string type = "domains";           // domains (HDF5 images) | text (bytes of a text file)
  std::string path = "datasets/rotated_fmnist.h5";
  std::vector<std::string> test_domains;  // held-out domain names
  double holdout_fraction = 0.2;          // share of each domain in its `out` split
  int64_t split_seed = 0;                 // seeds the in/out split (fixed across a sweep)
  int64_t batch_size = 64;                // per rank, spread evenly over training domains
  int64_t cache_mb = 256;                 // decoded image blocks kept in memory (LRU)
  int64_t seq_len = 128;                  // text: bytes per input sequence
  bool eval_train_in = true;              // evaluate the training domains' in splits too
  int64_t prefetch = 2;                   // training batches read ahead on a thread (0: none)
  AugmentOptions augment;                 // data.augment: decoding size, augmentation, normalisation
  // Not a config key: set by the launcher when the run trains on CUDA. Batches are assembled
  // in pinned (page-locked) host memory, so their copies to the GPU are asynchronous
  // (core/device_feed.h). Needs a CUDA LibTorch and a GPU.
  bool pin_memory = false;

  static DataOptions from_config(ConfigReader& cfg);
};

// The data source the options describe (DomainDataset or TextDataset).
std::unique_ptr<DataSource> make_data_source(const DataOptions& options, uint64_t seed, int rank, int world);

// The shuffled, padded, dealt share of one epoch: positions into a list of `n` items for
// `rank` of `world`. Padding repeats the epoch's first items so every rank gets the same count,
// ceil(n / world).
std::vector<int64_t> epoch_shard(int64_t n, uint64_t seed, int64_t epoch, int rank, int world);

// The `out` positions (sorted) of a domain with `n` samples.
std::vector<int64_t> holdout_positions(int64_t n, double fraction, uint64_t seed);

class DomainDataset final : public DataSource, public ReshardableSource, public PooledSource {
 public:
  // Opens and validates the file; `seed` is the run seed (sample order), `rank`/`world` the
  // shard. Errors name the file and the problem.
  DomainDataset(const DataOptions& options, uint64_t seed, int rank, int world);

  int64_t num_classes() const override { return num_classes_; }
  std::vector<int64_t> input_shape() const override { return input_shape_; }
  const std::vector<DomainInfo>& domains() const override { return domains_; }
  int64_t batch_size() const override { return options_.batch_size; }
  Batch train_batch(int64_t step) override;
  int64_t epoch_of(int64_t step) const override;
  int64_t steps_per_epoch() const override { return steps_per_epoch_; }
  void reshard(uint64_t seed, int rank, int world) override;
  void share_evaluation(int rank, int world) override { eval_rank_ = rank, eval_world_ = world; }
  const TrainPool& train_pool() override;
  Batch read_pool(const std::vector<int64_t>& positions) override;
  std::vector<EvalSplit> eval_splits() const override;
  void for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                           const std::function<void(const Batch&)>& fn) override;

  // Rows of the file in a domain's split.
  const std::vector<int64_t>& split_rows(int64_t domain, const std::string& part) const;
  // How many samples of training domain `d` (index into train_domains()) step `step` takes.
  int64_t samples_of(size_t d, int64_t step) const;
  const std::vector<int64_t>& train_domains() const { return train_domains_; }
  // Reads rows (any order, repeats allowed) into a batch. `train_step` >= 0: a training batch
  // of that step (random augmentation drawn from (seed, step, rank, sample)); else evaluation.
  Batch read(const std::vector<int64_t>& rows, int64_t train_step = -1);

 protected:
  void* find_interface(const std::type_info& t) override;

 private:
  int64_t position_of(size_t d, int64_t step) const;  // samples of domain d taken before `step`
  const std::vector<int64_t>& shard(size_t d, int64_t epoch);
  void plan_shards();

  DataOptions options_;
  uint64_t seed_;
  int rank_, world_;
  int eval_rank_, eval_world_;
  h5::File file_;
  h5::Handle images_;
  // Decoded blocks of `block_rows_` image rows, most recently used first, at most
  // `max_blocks_` of them.
  const uint8_t* block(int64_t index);
  int64_t block_rows_ = 256, row_bytes_ = 0, max_blocks_ = 1;
  std::list<std::pair<int64_t, at::Tensor>> blocks_;
  std::unordered_map<int64_t, std::list<std::pair<int64_t, at::Tensor>>::iterator> block_index_;
  // Encoded images (JPEG/PNG bytes in /images_encoded, row r at [offsets_[r], offsets_[r+1])),
  // decoded and augmented per batch on the rank's intra-op threads.
  bool encoded_ = false;
  std::vector<int64_t> offsets_;
  std::unique_ptr<AugmentPipeline> pipeline_;  // null: stored pixels / 255, as they are
  Batch read_decoded(const std::vector<int64_t>& rows, int64_t train_step);
  std::string image_name(int64_t row);
  std::vector<int64_t> input_shape_, stored_shape_;  // what batches hold; /images rows as stored
  int64_t num_classes_ = 0;
  std::vector<DomainInfo> domains_;
  std::vector<int64_t> labels_, domain_of_;
  std::vector<std::vector<int64_t>> in_rows_, out_rows_;  // [domain] -> sorted rows
  std::vector<int64_t> train_domains_;
  std::vector<int64_t> shard_len_;                      // [train domain] per-rank items per epoch
  std::vector<std::pair<int64_t, std::vector<int64_t>>> shard_cache_;  // [train domain] (epoch, shard)
  int64_t steps_per_epoch_ = 1;
  TrainPool pool_;                 // built on first use
  std::vector<int64_t> pool_rows_; // [pool position] -> file row
};

}  // namespace oodt
