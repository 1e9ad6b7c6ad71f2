#include "data/domain_dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ATen/Parallel.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/isolated.h"
#include "core/seed.h"
#include "core/random.h"
#include "data/image_codec.h"
#include "data/prefetch.h"
#include "data/text_dataset.h"

namespace oodt {
namespace {

// Positions of `rows` sorted by row: reading in file order touches each block or chunk once.
std::vector<int64_t> in_row_order(const std::vector<int64_t>& rows) {
  std::vector<int64_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return rows[static_cast<size_t>(a)] < rows[static_cast<size_t>(b)]; });
  return order;
}

}  // namespace

DataOptions DataOptions::from_config(ConfigReader& cfg) {
  DataOptions o;
  o.type = cfg.one_of("type", o.type, {"domains", "text"});
  o.path = cfg.get("path", o.path);
  o.test_domains = cfg.get("test_domains", o.test_domains);
  o.holdout_fraction = cfg.get("holdout_fraction", o.holdout_fraction);
  o.split_seed = cfg.get("split_seed", o.split_seed);
  o.batch_size = cfg.get("batch_size", o.batch_size);
  if (o.type == "domains") {
    o.cache_mb = cfg.get("cache_mb", o.cache_mb);
    o.eval_train_in = cfg.get("eval_train_in", o.eval_train_in);
    cfg.check(o.cache_mb > 0, "cache_mb", "must be > 0");
  } else {
    o.seq_len = cfg.get("seq_len", o.seq_len);
    cfg.check(o.seq_len > 0, "seq_len", "must be > 0");
  }
  if (o.type == "domains") {
    ConfigReader aug = cfg.child("augment");
    o.augment = AugmentOptions::from_config(aug);
  }
  o.prefetch = cfg.get("prefetch", o.prefetch);
  cfg.check(o.prefetch >= 0 && o.prefetch <= 64, "prefetch", "must be in [0, 64] (0: read batches on the training thread)");
  cfg.check(!o.path.empty(), "path", "must name the data file (make an HDF5 one with `oodtrain data prepare`)");
  cfg.check(o.holdout_fraction > 0 && o.holdout_fraction < 1, "holdout_fraction", "must be in (0, 1)");
  cfg.check(o.split_seed >= 0, "split_seed", "must be >= 0");
  cfg.check(o.batch_size > 0, "batch_size", "must be > 0");
  cfg.finish();
  return o;
}

std::unique_ptr<DataSource> make_data_source(const DataOptions& options, uint64_t seed, int rank, int world) {
  // A damaged data file can crash or hang libhdf5 while its layout is read (docs/errors.md
  // #fuzzing): that part is read in a child process first. Configuration errors are left to
  // the real read below, which reports them with their key.
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(options.path, ec);
  run_isolated(
      options.path,
      [&] {
        try {
          if (options.type == "text") TextDataset(options, seed, rank, world);
          else DomainDataset(options, seed, rank, world);
        } catch (const ConfigError&) {
        }
      },
      60.0 + (ec ? 0.0 : static_cast<double>(bytes) / 1e9));
  std::unique_ptr<DataSource> source;
  if (options.type == "text") source = std::make_unique<TextDataset>(options, seed, rank, world);
  else source = std::make_unique<DomainDataset>(options, seed, rank, world);
  if (options.prefetch > 0) source = std::make_unique<PrefetchingSource>(std::move(source), options.prefetch);
  return source;
}

std::vector<int64_t> epoch_shard(int64_t n, uint64_t seed, int64_t epoch, int rank, int world) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  SeededRng rng(mix_seed(seed, 0xe90c, static_cast<uint64_t>(epoch)));
  rng.shuffle(perm);
  const int64_t per_rank = (n + world - 1) / world;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(per_rank));
  for (int64_t k = 0; k < per_rank; ++k) out.push_back(perm[static_cast<size_t>((k * world + rank) % n)]);
  return out;
}

std::vector<int64_t> holdout_positions(int64_t n, double fraction, uint64_t seed) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  SeededRng rng(mix_seed(seed, 0x0d7));
  rng.shuffle(perm);
  const auto k = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  std::vector<int64_t> out(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(std::min(k, perm.size())));
  std::sort(out.begin(), out.end());
  return out;
}

DomainDataset::DomainDataset(const DataOptions& options, uint64_t seed, int rank, int world)
    : options_(options), seed_(seed), rank_(rank), world_(world), eval_rank_(rank), eval_world_(world), file_(h5::File::open(options.path)) {
  const std::string& p = options.path;
  encoded_ = file_.exists("/images_encoded");
  const char* images = encoded_ ? "/image_offsets" : "/images";
  for (const char* name : {images, "/labels", "/domains"})
    if (!file_.exists(name)) throw DataError(concat(p, ": dataset ", name, " is missing (not an oodtrain data file?)"));
  const AugmentOptions& aug = options.augment;
  int64_t n = 0;
  if (encoded_) {
    // JPEG/PNG bytes, decoded per batch to data.augment.size.
    const auto oshape = file_.shape("/image_offsets"), bshape = file_.shape("/images_encoded");
    if (oshape.size() != 1 || oshape[0] < 2 || bshape.size() != 1)
      throw DataError(concat(p, ": /image_offsets must be [N + 1] and /images_encoded a byte array"));
    n = oshape[0] - 1;
    const at::Tensor off = file_.read("/image_offsets").to(at::kLong).contiguous();
    offsets_.assign(off.data_ptr<int64_t>(), off.data_ptr<int64_t>() + n + 1);
    for (int64_t i = 0; i < n; ++i)
      if (offsets_[i] < 0 || offsets_[i + 1] <= offsets_[i] || offsets_[i + 1] > bshape[0])
        throw DataError(concat(p, ": /image_offsets[", i, "..", i + 1, "] = ", offsets_[i], "..", offsets_[i + 1],
                               " is not a non-empty range of /images_encoded (", bshape[0], " bytes)"));
    if (aug.size <= 0)
      throw ConfigError("data.augment.size", concat(p, " stores encoded images (JPEG/PNG): give the size to decode them to "
                                                    "(e.g. 224), or a preset that sets one (domainbed)"));
    input_shape_ = {3, aug.size, aug.size};
  } else {
    const auto ishape = file_.shape("/images");
    if (ishape.size() != 4) throw DataError(concat(p, ": /images must be [N, C, H, W], has ", ishape.size(), " dimensions"));
    // Pixels are read as uint8 and scaled by 1/255; HDF5 would convert other types silently
    // (floats in [0, 1] to 0 or 1, larger integers clamped), so they are refused.
    if (const at::ScalarType t = file_.dtype("/images"); t != at::kByte)
      throw DataError(concat(p, ": /images holds ", h5::dtype_name(t), " values; oodtrain reads 8-bit images (uint8, 0-255): "
                             "convert them to uint8"));
    n = ishape[0];
    input_shape_ = stored_shape_ = {ishape[1], ishape[2], ishape[3]};
    if (aug.active() && ishape[1] != 3)
      throw ConfigError("data.augment", concat(p, " has ", ishape[1], "-channel images; augmentation works on RGB images"));
    if (aug.active() && aug.size > 0) input_shape_ = {3, aug.size, aug.size};
  }
  if (encoded_ || aug.active()) pipeline_ = std::make_unique<AugmentPipeline>(aug);
  if (file_.shape("/labels") != std::vector<int64_t>{n})
    throw DataError(concat(p, ": /labels must have shape [", n, "] to match ", images));
  if (file_.shape("/domains") != std::vector<int64_t>{n})
    throw DataError(concat(p, ": /domains must have shape [", n, "] to match ", images));
  const at::Tensor labels = file_.read("/labels").to(at::kLong);
  const at::Tensor doms = file_.read("/domains").to(at::kLong);
  labels_.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + n);
  domain_of_.assign(doms.data_ptr<int64_t>(), doms.data_ptr<int64_t>() + n);
  const auto names = file_.attr_strings("/", "domain_names");
  num_classes_ = file_.attr_int("/", "num_classes");
  if (num_classes_ < 2) throw DataError(concat(p, ": num_classes attribute must be >= 2"));
  for (int64_t i = 0; i < n; ++i) {
    if (labels_[i] < 0 || labels_[i] >= num_classes_)
      throw DataError(concat(p, ": /labels[", i, "] = ", labels_[i], " is outside [0, ", num_classes_, ")"));
    if (domain_of_[i] < 0 || domain_of_[i] >= static_cast<int64_t>(names.size()))
      throw DataError(concat(p, ": /domains[", i, "] = ", domain_of_[i], " has no entry in domain_names"));
  }
  for (const auto& t : options.test_domains) {
    if (std::find(names.begin(), names.end(), t) == names.end()) {
      const std::string hint = nearest(t, names);
      std::string list;
      for (const auto& nm : names) list += (list.empty() ? "" : ", ") + nm;
      throw ConfigError("data.test_domains", concat("'", t, "' is not a domain of ", p, " (", list, ")",
                                                 hint.empty() ? "" : concat("; did you mean '", hint, "'?")));
    }
  }
  std::vector<std::vector<int64_t>> rows(names.size());
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(domain_of_[i])].push_back(i);
  // A file with its own splits (a manifest's split column): `train` rows are each domain's in
  // split, every other split its out split; holdout_fraction does not apply.
  std::vector<uint8_t> file_split;
  int64_t train_split = -1;
  if (file_.exists("/splits")) {
    const auto split_names = file_.attr_strings("/", "split_names");
    for (size_t k = 0; k < split_names.size(); ++k)
      if (split_names[k] == "train") train_split = static_cast<int64_t>(k);
    if (train_split < 0)
      throw DataError(concat(p, ": /splits has no split named 'train' (split_names: ",
                             [&] { std::string l; for (const auto& x : split_names) l += (l.empty() ? "" : ", ") + x; return l; }(), ")"));
    if (file_.shape("/splits") != std::vector<int64_t>{n}) throw DataError(concat(p, ": /splits must have shape [", n, "]"));
    const at::Tensor sp = file_.read("/splits").to(at::kByte).contiguous();
    file_split.assign(sp.data_ptr<uint8_t>(), sp.data_ptr<uint8_t>() + n);
  }
  for (size_t d = 0; d < names.size(); ++d) {
    const bool held = std::find(options.test_domains.begin(), options.test_domains.end(), names[d]) !=
                      options.test_domains.end();
    domains_.push_back(DomainInfo{names[d], held});
    std::vector<int64_t> in, out;
    if (!file_split.empty()) {
      for (int64_t r : rows[d]) (file_split[static_cast<size_t>(r)] == train_split ? in : out).push_back(r);
    } else {
      const auto out_pos = holdout_positions(static_cast<int64_t>(rows[d].size()), options.holdout_fraction,
                                             mix_seed(static_cast<uint64_t>(options.split_seed), d));
      size_t k = 0;
      for (size_t j = 0; j < rows[d].size(); ++j) {
        if (k < out_pos.size() && out_pos[k] == static_cast<int64_t>(j)) out.push_back(rows[d][j]), ++k;
        else in.push_back(rows[d][j]);
      }
    }
    in_rows_.push_back(std::move(in));
    out_rows_.push_back(std::move(out));
    if (!held) train_domains_.push_back(static_cast<int64_t>(d));
  }
  if (train_domains_.empty()) throw ConfigError("data.test_domains", "every domain is held out; nothing to train on");
  if (options.batch_size < static_cast<int64_t>(train_domains_.size()))
    throw ConfigError("data.batch_size", concat("must be at least the number of training domains (",
                                             train_domains_.size(), ") for balanced batches"));
  for (int64_t d : train_domains_)
    if (in_rows_[static_cast<size_t>(d)].empty())
      throw DataError(concat(p, ": training domain '", names[d], "' has no samples in its in split"));
  plan_shards();
  if (encoded_) {
    // Encoded bytes: HDF5's chunk cache (data.cache_mb) holds the recently read chunks.
    images_ = file_.open_dataset("/images_encoded", static_cast<size_t>(options.cache_mb) << 20);
    return;
  }
  // HDF5's own chunk cache holds one chunk: decoded blocks are cached here instead.
  images_ = file_.open_dataset("/images", size_t{4} << 20);
  const int64_t chunk = file_.chunk_rows(images_.id());
  row_bytes_ = stored_shape_[0] * stored_shape_[1] * stored_shape_[2];
  block_rows_ = chunk > 0 ? chunk : std::max<int64_t>(1, (int64_t{256} << 10) / std::max<int64_t>(1, row_bytes_));
  max_blocks_ = std::max<int64_t>(1, (options.cache_mb << 20) / std::max<int64_t>(1, block_rows_ * row_bytes_));
}

int64_t DomainDataset::samples_of(size_t d, int64_t step) const {
  const auto D = static_cast<int64_t>(train_domains_.size());
  const int64_t base = options_.batch_size / D, rem = options_.batch_size % D;
  // The remainder rotates over domains so that, on average, batches stay balanced.
  return base + (((step + static_cast<int64_t>(d)) % D) < rem ? 1 : 0);
}

int64_t DomainDataset::position_of(size_t d, int64_t step) const {
  const auto D = static_cast<int64_t>(train_domains_.size());
  const int64_t base = options_.batch_size / D, rem = options_.batch_size % D;
  int64_t pos = step * base + (step / D) * rem;
  for (int64_t t = (step / D) * D; t < step; ++t) pos += ((t + static_cast<int64_t>(d)) % D) < rem ? 1 : 0;
  return pos;
}

void DomainDataset::plan_shards() {
  shard_len_.clear();
  int64_t per_epoch = 0;
  for (int64_t d : train_domains_) {
    const auto len = static_cast<int64_t>(in_rows_[static_cast<size_t>(d)].size());
    shard_len_.push_back((len + world_ - 1) / world_);
    per_epoch += shard_len_.back();
  }
  steps_per_epoch_ = std::max<int64_t>(1, (per_epoch + options_.batch_size - 1) / options_.batch_size);
  shard_cache_.assign(train_domains_.size(), {-1, {}});
}

void DomainDataset::reshard(uint64_t seed, int rank, int world) {
  OODT_CHECK(world >= 1 && rank >= 0 && rank < world, "reshard: rank ", rank, " of ", world);
  seed_ = seed, rank_ = rank, world_ = world;
  eval_rank_ = rank, eval_world_ = world;
  plan_shards();
}

const std::vector<int64_t>& DomainDataset::shard(size_t d, int64_t epoch) {
  auto& [cached_epoch, rows] = shard_cache_[d];
  if (cached_epoch != epoch) {
    const int64_t domain = train_domains_[d];
    const auto& in = in_rows_[static_cast<size_t>(domain)];
    const auto pos = epoch_shard(static_cast<int64_t>(in.size()), mix_seed(seed_, static_cast<uint64_t>(options_.split_seed), domain),
                                 epoch, rank_, world_);
    rows.clear();
    for (int64_t q : pos) rows.push_back(in[static_cast<size_t>(q)]);
    cached_epoch = epoch;
  }
  return rows;
}

Batch DomainDataset::train_batch(int64_t step) {
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(options_.batch_size));
  for (size_t d = 0; d < train_domains_.size(); ++d) {
    const int64_t start = position_of(d, step), count = samples_of(d, step);
    for (int64_t k = start; k < start + count; ++k) {
      const auto& s = shard(d, k / shard_len_[d]);
      rows.push_back(s[static_cast<size_t>(k % shard_len_[d])]);
    }
  }
  // Interleave the domains: anything that looks at a slice of the batch (ghost batch norm's
  // chunks, a mixup pairing) must not see one domain at a time.
  SeededRng(mix_seed(seed_, 0xba7c, static_cast<uint64_t>(step), static_cast<uint64_t>(rank_))).shuffle(rows);
  return read(rows, step);
}

int64_t DomainDataset::epoch_of(int64_t step) const { return step / steps_per_epoch_; }

std::vector<EvalSplit> DomainDataset::eval_splits() const {
  std::vector<EvalSplit> out;
  for (size_t d = 0; d < domains_.size(); ++d) {
    // The training domains' in splits give training accuracy only; no model selection reads it.
    if (options_.eval_train_in || domains_[d].held_out) out.push_back(EvalSplit{static_cast<int64_t>(d), "in"});
    out.push_back(EvalSplit{static_cast<int64_t>(d), "out"});
  }
  return out;
}

const std::vector<int64_t>& DomainDataset::split_rows(int64_t domain, const std::string& part) const {
  OODT_CHECK(domain >= 0 && domain < static_cast<int64_t>(domains_.size()), "no domain ", domain);
  return part == "in" ? in_rows_[static_cast<size_t>(domain)] : out_rows_[static_cast<size_t>(domain)];
}

void DomainDataset::for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                                        const std::function<void(const Batch&)>& fn) {
  const auto& all = split_rows(split.domain, split.part);
  std::vector<int64_t> mine;
  for (size_t i = static_cast<size_t>(eval_rank_); i < all.size(); i += static_cast<size_t>(eval_world_)) mine.push_back(all[i]);
  for (size_t i = 0; i < mine.size(); i += static_cast<size_t>(batch_size)) {
    const size_t j = std::min(mine.size(), i + static_cast<size_t>(batch_size));
    fn(read(std::vector<int64_t>(mine.begin() + static_cast<std::ptrdiff_t>(i), mine.begin() + static_cast<std::ptrdiff_t>(j))));
  }
}

void* DomainDataset::find_interface(const std::type_info& t) {
  if (t == typeid(ReshardableSource)) return static_cast<ReshardableSource*>(this);
  if (t == typeid(PooledSource)) return static_cast<PooledSource*>(this);
  return nullptr;
}

const TrainPool& DomainDataset::train_pool() {
  if (pool_rows_.empty()) {
    for (int64_t d : train_domains_)
      for (int64_t row : in_rows_[static_cast<size_t>(d)]) {
        pool_rows_.push_back(row);
        pool_.labels.push_back(labels_[static_cast<size_t>(row)]);
        pool_.domains.push_back(d);
      }
  }
  return pool_;
}

Batch DomainDataset::read_pool(const std::vector<int64_t>& positions) {
  train_pool();
  std::vector<int64_t> rows;
  rows.reserve(positions.size());
  for (int64_t p : positions) {
    OODT_CHECK(p >= 0 && p < static_cast<int64_t>(pool_rows_.size()), "read_pool: position ", p, " of ", pool_rows_.size());
    rows.push_back(pool_rows_[static_cast<size_t>(p)]);
  }
  return read(rows);
}

const uint8_t* DomainDataset::block(int64_t index) {
  auto it = block_index_.find(index);
  if (it != block_index_.end()) {
    blocks_.splice(blocks_.begin(), blocks_, it->second);  // most recently used first
    return blocks_.front().second.data_ptr<uint8_t>();
  }
  const int64_t n = static_cast<int64_t>(labels_.size());
  const int64_t start = index * block_rows_, count = std::min(block_rows_, n - start);
  // The least recently used block's buffer is reused: memory stays at max_blocks_ buffers,
  // allocated once, with no churn for the allocator to fragment.
  at::Tensor buffer;
  if (static_cast<int64_t>(blocks_.size()) >= max_blocks_) {
    block_index_.erase(blocks_.back().first);
    buffer = std::move(blocks_.back().second);
    blocks_.pop_back();
  } else {
    buffer = at::empty({block_rows_ * row_bytes_}, at::kByte);
  }
  file_.read_block_into(images_.id(), start, count, buffer);
  blocks_.emplace_front(index, std::move(buffer));
  block_index_[index] = blocks_.begin();
  return blocks_.front().second.data_ptr<uint8_t>();
}

Batch DomainDataset::read(const std::vector<int64_t>& rows, int64_t train_step) {
  if (pipeline_) return read_decoded(rows, train_step);
  const auto n = static_cast<int64_t>(rows.size());
  at::Tensor raw = at::empty({n, input_shape_[0], input_shape_[1], input_shape_[2]}, at::kByte);
  uint8_t* out = raw.data_ptr<uint8_t>();
  // In block order, so a block is decoded at most once per batch even when the cache is small.
  const std::vector<int64_t> order = in_row_order(rows);
  for (int64_t i : order) {
    const int64_t r = rows[static_cast<size_t>(i)];
    OODT_CHECK(r >= 0 && r < static_cast<int64_t>(labels_.size()), "row ", r, " out of range");
    const uint8_t* src = block(r / block_rows_) + (r % block_rows_) * row_bytes_;
    std::memcpy(out + i * row_bytes_, src, static_cast<size_t>(row_bytes_));
  }
  Batch b;
  if (options_.pin_memory) {
    b.inputs = at::empty(raw.sizes(), at::TensorOptions(at::kFloat).pinned_memory(true));
    b.inputs.copy_(raw).div_(255.0f);
  } else {
    b.inputs = raw.to(at::kFloat).div_(255.0f);
  }
  const auto index = at::TensorOptions(at::kLong).pinned_memory(options_.pin_memory);
  b.labels = at::empty({n}, index);
  b.domains = at::empty({n}, index);
  int64_t* lp = b.labels.data_ptr<int64_t>();
  int64_t* dp = b.domains.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    lp[i] = labels_[static_cast<size_t>(rows[static_cast<size_t>(i)])];
    dp[i] = domain_of_[static_cast<size_t>(rows[static_cast<size_t>(i)])];
  }
  return b;
}

std::string DomainDataset::image_name(int64_t row) {
  try {
    if (file_.exists("/image_paths") && file_.exists("/image_path_offsets")) {
      const at::Tensor off = file_.read("/image_path_offsets").to(at::kLong);
      const int64_t a = off[row].item<int64_t>(), b = off[row + 1].item<int64_t>();
      const at::Tensor bytes = file_.read("/image_paths").slice(0, a, b).contiguous();
      return concat("row ", row, " (", std::string(reinterpret_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(b - a)), ")");
    }
  } catch (const std::exception&) {
  }
  return concat("row ", row);
}

Batch DomainDataset::read_decoded(const std::vector<int64_t>& rows, int64_t train_step) {
  const auto n = static_cast<int64_t>(rows.size());
  // The bytes (or stored pixels) of every row, read in row order on this thread (libhdf5 is
  // serial), then decoded and augmented in parallel.
  std::vector<at::Tensor> raw(static_cast<size_t>(n));
  const std::vector<int64_t> order = in_row_order(rows);
  for (int64_t i : order) {
    const int64_t r = rows[static_cast<size_t>(i)];
    OODT_CHECK(r >= 0 && r < static_cast<int64_t>(labels_.size()), "row ", r, " out of range");
    if (encoded_) {
      const int64_t a = offsets_[static_cast<size_t>(r)], len = offsets_[static_cast<size_t>(r) + 1] - a;
      at::Tensor buf = at::empty({len}, at::kByte);
      file_.read_block_into(images_.id(), a, len, buf);
      raw[static_cast<size_t>(i)] = buf;
    } else {
      const uint8_t* src = block(r / block_rows_) + (r % block_rows_) * row_bytes_;
      // A copy: a later block() may reuse this block's buffer.
      raw[static_cast<size_t>(i)] = at::from_blob(const_cast<uint8_t*>(src), stored_shape_, at::kByte).clone();
    }
  }
  Batch b;
  b.inputs = at::empty({n, input_shape_[0], input_shape_[1], input_shape_[2]},
                       at::TensorOptions(at::kFloat).pinned_memory(options_.pin_memory));
  // JPEG DCT scaling may shrink a decode to no less than this: the output size, or twice it
  // for a training crop (a random resized crop keeps down to scale_lo of the area).
  const int64_t size = input_shape_[1] * (train_step >= 0 && options_.augment.random_resized_crop ? 2 : 1);
  // The samples in parallel on the rank's intra-op threads. ATen's own parallel loop, so the
  // tensor ops inside run single-threaded instead of each starting a team of their own.
  std::exception_ptr error;
  std::mutex m;
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        const int64_t r = rows[static_cast<size_t>(i)];
        at::Tensor hwc;
        if (encoded_) {
          const at::Tensor& bytes = raw[static_cast<size_t>(i)];
          hwc = decode_image(bytes.data_ptr<uint8_t>(), static_cast<size_t>(bytes.numel()), concat(options_.path, ": row ", r), size, size);
        } else {
          hwc = raw[static_cast<size_t>(i)].permute({1, 2, 0});
        }
        const uint64_t seed = train_step >= 0 ? mix_seed(seed_, 0xa06e, static_cast<uint64_t>(train_step),
                                                         (static_cast<uint64_t>(rank_) << 32) + static_cast<uint64_t>(i))
                                              : 0;
        const at::Tensor out = pipeline_->apply(hwc, train_step >= 0, seed);
        if (out.sizes() != b.inputs[i].sizes())
          throw DataError(concat(options_.path, ": ", image_name(r), " became ", out.sizes(), " after data.augment, expected ",
                                 b.inputs[i].sizes(), " (mixed image sizes need data.augment.size)"));
        b.inputs[i].copy_(out);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
        return;
      }
    }
  });
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const DataError& e) {
      // Name the image: the decoder only knows its row.
      std::string msg = e.what();
      for (int64_t r : rows) {
        const std::string tag = concat(options_.path, ": row ", r, ":");
        if (msg.rfind(tag, 0) == 0) {
          msg = concat(options_.path, ": ", image_name(r), ":", msg.substr(tag.size()));
          break;
        }
      }
      throw DataError(msg);
    }
  }
  const auto index = at::TensorOptions(at::kLong).pinned_memory(options_.pin_memory);
  b.labels = at::empty({n}, index);
  b.domains = at::empty({n}, index);
  for (int64_t i = 0; i < n; ++i) {
    b.labels[i] = labels_[static_cast<size_t>(rows[static_cast<size_t>(i)])];
    b.domains[i] = domain_of_[static_cast<size_t>(rows[static_cast<size_t>(i)])];
  }
  return b;
}

}  // namespace oodt
