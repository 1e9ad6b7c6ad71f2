#include "data/text_dataset.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/seed.h"

namespace oodt {

TextDataset::TextDataset(const DataOptions& options, uint64_t seed, int rank, int world)
    : options_(options), seed_(seed), rank_(rank), world_(world), eval_rank_(rank), eval_world_(world) {
  std::ifstream in(options.path, std::ios::binary);
  if (!in) throw DataError(concat(options.path, ": file not found (data.type is text)"));
  bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const int64_t window = options.seq_len + 1;
  const int64_t count = static_cast<int64_t>(bytes_.size()) / window;
  if (count < 2)
    throw DataError(concat(options.path, ": ", bytes_.size(), " bytes make fewer than 2 windows of data.seq_len + 1 = ",
                           window, " bytes"));
  if (!options.test_domains.empty())
    throw ConfigError("data.test_domains", "a text file is a single domain; leave test_domains empty");
  const auto out_pos = holdout_positions(count, options.holdout_fraction, mix_seed(options.split_seed, 0));
  size_t k = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (k < out_pos.size() && out_pos[k] == i) out_.push_back(i), ++k;
    else in_.push_back(i);
  }
  if (in_.empty()) throw DataError(concat(options.path, ": no windows left for training after the holdout"));
  domains_.push_back(DomainInfo{std::filesystem::path(options.path).stem().string(), false});
  shard_len_ = (static_cast<int64_t>(in_.size()) + world - 1) / world;
}

Batch TextDataset::read(const std::vector<int64_t>& windows) const {
  const int64_t n = static_cast<int64_t>(windows.size()), L = options_.seq_len;
  Batch b;
  const auto index = at::TensorOptions(at::kLong).pinned_memory(options_.pin_memory);  // core/device_feed.h
  b.inputs = at::empty({n, L}, index);
  b.labels = at::empty({n * L}, index);
  b.domains = at::zeros({n * L}, index);
  int64_t* x = b.inputs.data_ptr<int64_t>();
  int64_t* y = b.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* w = bytes_.data() + windows[static_cast<size_t>(i)] * (L + 1);
    for (int64_t t = 0; t < L; ++t) {
      x[i * L + t] = w[t];
      y[i * L + t] = w[t + 1];
    }
  }
  return b;
}

Batch TextDataset::train_batch(int64_t step) {
  std::vector<int64_t> rows;
  for (int64_t k = step * options_.batch_size; k < (step + 1) * options_.batch_size; ++k) {
    const int64_t epoch = k / shard_len_;
    if (epoch != cached_epoch_) {
      shard_ = epoch_shard(static_cast<int64_t>(in_.size()), mix_seed(seed_, static_cast<uint64_t>(options_.split_seed)),
                           epoch, rank_, world_);
      cached_epoch_ = epoch;
    }
    rows.push_back(in_[static_cast<size_t>(shard_[static_cast<size_t>(k % shard_len_)])]);
  }
  return read(rows);
}

void TextDataset::reshard(uint64_t seed, int rank, int world) {
  OODT_CHECK(world >= 1 && rank >= 0 && rank < world, "reshard: rank ", rank, " of ", world);
  seed_ = seed, rank_ = rank, world_ = world;
  eval_rank_ = rank, eval_world_ = world;
  shard_len_ = (static_cast<int64_t>(in_.size()) + world - 1) / world;
  cached_epoch_ = -1;
}

int64_t TextDataset::epoch_of(int64_t step) const { return step * options_.batch_size / shard_len_; }

std::vector<EvalSplit> TextDataset::eval_splits() const { return {EvalSplit{0, "in"}, EvalSplit{0, "out"}}; }

void TextDataset::for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                                      const std::function<void(const Batch&)>& fn) {
  const auto& all = windows(split.part);
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(eval_rank_); i < all.size(); i += static_cast<size_t>(eval_world_)) mine.push_back(all[i]);
  // Eval batches count windows; a window holds seq_len predictions.
  const size_t per = static_cast<size_t>(std::max<int64_t>(1, batch_size / options_.seq_len));
  for (size_t i = 0; i < mine.size(); i += per)
    fn(read(std::vector<int64_t>(mine.begin() + static_cast<std::ptrdiff_t>(i),
                                 mine.begin() + static_cast<std::ptrdiff_t>(std::min(mine.size(), i + per)))));
}

}  // namespace oodt
