#pragma once
// Byte sequences from a text file, for the causal `transformer_lm` (data.type: text).
// The file is cut into non-overlapping windows of seq_len + 1 bytes; a window's first seq_len
// bytes are the input and its last seq_len bytes the targets (next-byte prediction). Windows
// are split into in/out parts and sharded per epoch exactly like domain samples; the whole file
// is one domain named after it. Labels are flattened to [B * seq_len], matching the model's
// [B * seq_len, 256] output, so accuracy and loss are per byte.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/data_source.h"
#include "data/domain_dataset.h"

namespace oodt {

class TextDataset final : public DataSource, public ReshardableSource {
 public:
  TextDataset(const DataOptions& options, uint64_t seed, int rank, int world);

  int64_t num_classes() const override { return 256; }
  std::vector<int64_t> input_shape() const override { return {options_.seq_len}; }
  const std::vector<DomainInfo>& domains() const override { return domains_; }
  int64_t batch_size() const override { return options_.batch_size; }
  Batch train_batch(int64_t step) override;
  int64_t epoch_of(int64_t step) const override;
  int64_t steps_per_epoch() const override {
    return std::max<int64_t>(1, (shard_len_ + options_.batch_size - 1) / options_.batch_size);
  }
  void reshard(uint64_t seed, int rank, int world) override;
  void share_evaluation(int rank, int world) override { eval_rank_ = rank, eval_world_ = world; }
  std::vector<EvalSplit> eval_splits() const override;
  void for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                           const std::function<void(const Batch&)>& fn) override;

  // Window indices in each part.
  const std::vector<int64_t>& windows(const std::string& part) const { return part == "in" ? in_ : out_; }
  Batch read(const std::vector<int64_t>& windows) const;

 protected:
  void* find_interface(const std::type_info& t) override {
    return t == typeid(ReshardableSource) ? static_cast<ReshardableSource*>(this) : nullptr;
  }

 private:
  DataOptions options_;
  uint64_t seed_;
  int rank_, world_;
  int eval_rank_, eval_world_;
  std::vector<uint8_t> bytes_;
  std::vector<int64_t> in_, out_;
  std::vector<DomainInfo> domains_;
  int64_t shard_len_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> shard_;
};

}  // namespace oodt
