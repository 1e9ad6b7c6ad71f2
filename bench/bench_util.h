#pragma once
// What several benchmarks share: an in-memory data source (no I/O in measured steps) and a
// median.
#include <algorithm>
#include <vector>

#include "core/data_source.h"

namespace oodt::bench {

// Random images of `shape`, a pure function of the step.
class MemoryData final : public DataSource {
 public:
  MemoryData(int64_t batch, std::vector<int64_t> shape = {1, 28, 28}) : batch_(batch), shape_(std::move(shape)) {}
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> input_shape() const override { return shape_; }
  const std::vector<DomainInfo>& domains() const override { return domains_; }
  int64_t batch_size() const override { return batch_; }
  Batch train_batch(int64_t step) override {
    at::Generator g = at::detail::createCPUGenerator(static_cast<uint64_t>(step));
    std::vector<int64_t> size{batch_};
    size.insert(size.end(), shape_.begin(), shape_.end());
    Batch b;
    b.inputs = at::rand(size, g);
    b.labels = at::randint(0, 10, {batch_}, g, at::kLong);
    b.domains = at::zeros({batch_}, at::kLong);
    return b;
  }
  int64_t epoch_of(int64_t) const override { return 0; }
  int64_t steps_per_epoch() const override { return 1 << 30; }
  std::vector<EvalSplit> eval_splits() const override { return {}; }
  void for_each_eval_batch(const EvalSplit&, int64_t, const std::function<void(const Batch&)>&) override {}

 private:
  int64_t batch_;
  std::vector<int64_t> shape_;
  std::vector<DomainInfo> domains_ = {DomainInfo{"memory", false}};
};

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace oodt::bench
