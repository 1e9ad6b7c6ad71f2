#include "data/prefetch.h"

#include "core/error.h"
#include "core/h5.h"

namespace oodt {

PrefetchingSource::PrefetchingSource(std::unique_ptr<DataSource> inner, int64_t depth)
    : inner_(std::move(inner)), depth_(depth) {
  OODT_CHECK(depth_ >= 1, "prefetch depth must be >= 1");
  worker_ = std::thread([this] { loop(); });
}

PrefetchingSource::~PrefetchingSource() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

void PrefetchingSource::loop() {
  h5::quiet();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] {
      if (stop_) return true;
      for (const auto& [step, slot] : slots_)
        if (!slot.ready && step != reading_) return true;
      return false;
    });
    if (stop_) return;
    int64_t step = -1;
    for (const auto& [s, slot] : slots_)
      if (!slot.ready) {
        step = s;
        break;
      }
    reading_ = step;
    const uint64_t gen = generation_;
    lock.unlock();
    Slot got;
    try {
      std::lock_guard<std::mutex> source(source_mu_);
      got.batch = inner_->train_batch(step);
    } catch (...) {
      got.error = std::current_exception();
    }
    got.ready = true;
    lock.lock();
    reading_ = -1;
    auto it = slots_.find(step);
    if (gen == generation_ && it != slots_.end()) it->second = std::move(got);
    filled_.notify_all();
  }
}

Batch PrefetchingSource::train_batch(int64_t step) {
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    // Steps before this one will not be asked for again (the trainer moves forward).
    slots_.erase(slots_.begin(), slots_.lower_bound(step));
    auto it = slots_.find(step);
    if (it != slots_.end()) {
      filled_.wait(lock, [&] { return it->second.ready; });
      slot = std::move(it->second);
      slots_.erase(it);
      ++hits_;
    }
    for (int64_t s = step + 1; s <= step + depth_; ++s) slots_.try_emplace(s);
  }
  wake_.notify_one();
  if (!slot.ready) {
    ++misses_;
    std::lock_guard<std::mutex> source(source_mu_);
    return inner_->train_batch(step);
  }
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.batch);
}

void PrefetchingSource::drop_pending(std::unique_lock<std::mutex>& lock) {
  ++generation_;
  slots_.clear();
  filled_.wait(lock, [&] { return reading_ < 0; });
}

void* PrefetchingSource::find_interface(const std::type_info& t) {
  // Through DataSource::as, which is public: find_interface itself is not.
  if (t == typeid(ReshardableSource))
    return inner_->as<ReshardableSource>() ? static_cast<ReshardableSource*>(this) : nullptr;
  if (t == typeid(PooledSource)) return inner_->as<PooledSource>() ? static_cast<PooledSource*>(this) : nullptr;
  return nullptr;
}

void PrefetchingSource::reshard(uint64_t seed, int rank, int world) {
  std::unique_lock<std::mutex> lock(mu_);
  drop_pending(lock);
  std::lock_guard<std::mutex> source(source_mu_);
  inner_->as<ReshardableSource>()->reshard(seed, rank, world);
}

void PrefetchingSource::share_evaluation(int rank, int world) {
  std::lock_guard<std::mutex> source(source_mu_);
  inner_->as<ReshardableSource>()->share_evaluation(rank, world);
}

const TrainPool& PrefetchingSource::train_pool() {
  std::lock_guard<std::mutex> source(source_mu_);
  return inner_->as<PooledSource>()->train_pool();
}

Batch PrefetchingSource::read_pool(const std::vector<int64_t>& positions) {
  std::lock_guard<std::mutex> source(source_mu_);
  return inner_->as<PooledSource>()->read_pool(positions);
}

void PrefetchingSource::for_each_eval_batch(const EvalSplit& split, int64_t batch_size,
                                            const std::function<void(const Batch&)>& fn) {
  // Each batch is read under the lock and used outside it, so the worker can read between.
  std::unique_lock<std::mutex> source(source_mu_);
  inner_->for_each_eval_batch(split, batch_size, [&](const Batch& b) {
    source.unlock();
    fn(b);
    source.lock();
  });
}

}  // namespace oodt
