#include "test_util.h"

#include "core/algorithm.h"
#include "core/error.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "core/h5.h"

namespace oodt::test {
namespace fs = std::filesystem;

namespace {
struct Cleanup {
  std::vector<std::string> dirs;
  ~Cleanup() {
    std::error_code ec;
    for (const auto& d : dirs) fs::remove_all(d, ec);
  }
};
Cleanup g_cleanup;
}  // namespace

void run_phase(Algorithm& algo, Phase phase, State& state) {
  HookTable table;
  algo.hooks(table);
  if (!table.hooks(phase)) throw Error(concat(algo.name(), " does not hook ", phase_name(phase)));
  table.at(phase)(state);
}

std::string temp_dir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("oodt_" + tag + "_XXXXXX")).string();
  char* made = mkdtemp(tmpl.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  g_cleanup.dirs.push_back(made);
  return made;
}

std::string fixture(const std::string& name) { return std::string(OODT_FIXTURES) + "/" + name; }

std::string write_domain_file(const std::string& dir, int domains, int per_domain, int classes) {
  const int64_t n = static_cast<int64_t>(domains) * per_domain;
  at::Tensor images = at::empty({n, 1, 4, 4}, at::kByte);
  at::Tensor labels = at::empty({n}, at::kLong);
  at::Tensor doms = at::empty({n}, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    images[i].fill_(static_cast<int>(i % 251));
    labels[i] = i % classes;
    doms[i] = i / per_domain;
  }
  const std::string path = dir + "/domains.h5";
  h5::File f = h5::File::create(path);
  f.write("/images", images, 8);
  f.write("/labels", labels);
  f.write("/domains", doms);
  std::vector<std::string> names;
  for (int d = 0; d < domains; ++d) names.push_back("dom" + std::to_string(d));
  f.set_attr("/", "domain_names", names);
  f.set_attr("/", "num_classes", static_cast<int64_t>(classes));
  return path;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}


namespace {

// Synthetic data: the global batch of step s is 2B fixed samples; a trainer of world size W
// and rank r sees rows [r*2B/W, (r+1)*2B/W).
class SliceData final : public DataSource, public ReshardableSource {
 public:
  SliceData(int64_t global_batch, int rank, int world) : global_(global_batch), rank_(rank), world_(world) {}
  int64_t num_classes() const override { return 3; }
  std::vector<int64_t> input_shape() const override { return {1, 4, 4}; }
  const std::vector<DomainInfo>& domains() const override { return domains_; }
  int64_t batch_size() const override { return global_ / world_; }
  Batch train_batch(int64_t step) override {
    at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(1000 + step));
    const at::Tensor x = at::randn({global_, 1, 4, 4}, gen);
    const at::Tensor y = at::randint(0, 3, {global_}, gen, at::kLong);
    const int64_t per = global_ / world_;
    Batch b;
    b.inputs = x.narrow(0, rank_ * per, per).clone();
    b.labels = y.narrow(0, rank_ * per, per).clone();
    b.domains = at::zeros({per}, at::kLong);
    return b;
  }
  int64_t epoch_of(int64_t step) const override { return step / 10; }
  int64_t steps_per_epoch() const override { return 10; }
  void reshard(uint64_t, int rank, int world) override { rank_ = rank, world_ = world; }
  void share_evaluation(int, int) override {}  // evaluation reads the whole of step 0's batch
  std::vector<EvalSplit> eval_splits() const override { return {EvalSplit{0, "in"}}; }
  void for_each_eval_batch(const EvalSplit&, int64_t, const std::function<void(const Batch&)>& fn) override {
    fn(train_batch(0));
  }

 protected:
  void* find_interface(const std::type_info& t) override {
    return t == typeid(ReshardableSource) ? static_cast<ReshardableSource*>(this) : nullptr;
  }

 private:
  int64_t global_;
  int rank_, world_;
  std::vector<DomainInfo> domains_ = {DomainInfo{"synthetic", false}};
};

}  // namespace

std::unique_ptr<DataSource> slice_data(int64_t global_batch, int rank, int world) {
  return std::make_unique<SliceData>(global_batch, rank, world);
}

}  // namespace oodt::test
