// FedSpeed and FedAvg against an independent Python implementation of the reference client and
// server update (tests/golden/make_golden.py), the FedAvg = synchronous SGD regression, and the
// client splits.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "algorithms/fedspeed/clients.h"
#include "algorithms/fedspeed/fedspeed.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "core/trainer.h"
#include "test_util.h"

namespace oodt {
namespace {

// Samples in memory, with a training pool (one domain per client) and a batch of the whole
// pool for the data-parallel baseline.
class PoolData final : public DataSource, public PooledSource {
 public:
  PoolData(at::Tensor x, at::Tensor y, at::Tensor d, int64_t batch) : x_(x), y_(y), d_(d), batch_(batch) {
    for (int64_t i = 0; i < y.size(0); ++i) {
      pool_.labels.push_back(y[i].item<int64_t>());
      pool_.domains.push_back(d[i].item<int64_t>());
    }
  }
  int64_t num_classes() const override { return 3; }
  std::vector<int64_t> input_shape() const override { return {1, 2, 2}; }
  const std::vector<DomainInfo>& domains() const override { return domains_; }
  int64_t batch_size() const override { return batch_; }
  Batch train_batch(int64_t) override { return read_pool(all()); }
  int64_t epoch_of(int64_t) const override { return 0; }
  int64_t steps_per_epoch() const override { return 1; }
  const TrainPool& train_pool() override { return pool_; }
  Batch read_pool(const std::vector<int64_t>& positions) override {
    const at::Tensor idx = at::tensor(positions, at::kLong);
    Batch b;
    b.inputs = x_.index_select(0, idx).to(at::kFloat);
    b.labels = y_.index_select(0, idx);
    b.domains = d_.index_select(0, idx);
    return b;
  }
  std::vector<EvalSplit> eval_splits() const override { return {}; }
  void for_each_eval_batch(const EvalSplit&, int64_t, const std::function<void(const Batch&)>&) override {}

 protected:
  void* find_interface(const std::type_info& t) override {
    return t == typeid(PooledSource) ? static_cast<PooledSource*>(this) : nullptr;
  }

 private:
  std::vector<int64_t> all() const {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < y_.size(0); ++i) v.push_back(i);
    return v;
  }
  at::Tensor x_, y_, d_;
  int64_t batch_;
  TrainPool pool_;
  std::vector<DomainInfo> domains_ = {DomainInfo{"a", false}, DomainInfo{"b", false}};
};

struct Fixture {
  h5::File f = h5::File::open(test::fixture("golden.h5"));
  at::Tensor x = f.read("/fedspeed/x").to(at::kFloat);
  at::Tensor y = f.read("/fedspeed/y").to(at::kLong);
  at::Tensor d = f.read("/fedspeed/domains").to(at::kLong);
  TensorMap init() const {
    TensorMap m;
    for (const auto& k : f.list("/fedspeed/init")) m[k] = f.read("/fedspeed/init/" + k).to(at::kFloat);
    return m;
  }
};

// Trains `steps` steps with `algorithms` (YAML list) from the fixture's initial weights.
std::shared_ptr<Model> train(const Fixture& fx, const std::string& algorithms, int64_t batch, int64_t steps) {
  static auto comm = make_local_communicator();
  Registry registry;
  register_builtins(registry);
  TrainerOptions o;
  o.run_dir = test::temp_dir("fedspeed");
  o.steps = steps;
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.verbose = false;
  o.optim.name = "sgd";
  o.optim.lr = 0.1;
  o.optim.momentum = 0.0;
  o.optim.weight_decay = 1e-3;
  o.schedule.name = "constant";
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [4], dropout: 0}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 2, 2}, 3});
  load_module_state(*model, fx.init(), "fixture");
  auto engine = std::make_unique<Engine>(registry.build(YAML::Load(algorithms), nullptr));
  Trainer t(o, model, std::make_unique<PoolData>(fx.x, fx.y, fx.d, batch), std::move(engine), *comm,
            at::Device(at::kCPU), "{}");
  t.prepare_run_dir();
  t.fit();
  return model;
}

TEST(FedSpeed, TwoRoundsMatchTheReferenceClientAndServer) {
  const Fixture fx;
  // 2 clients (one per domain) on one rank, K = 2 local steps, 2 rounds: 2 * 2 * 2 steps.
  for (const char* name : {"fedspeed", "fedavg"}) {
    const std::string group = std::string("/fedspeed/") + name;
    const double rho = fx.f.attr_double(group, "rho"), lamb = fx.f.attr_double(group, "lamb"),
                 max_norm = fx.f.attr_double(group, "max_norm");
    const std::string algos = concat("[{fedspeed: {clients: 2, split: domain, local_steps: 2, rho: ", rho,
                                     ", lamb: ", lamb, ", max_norm: ", max_norm, ", lr_decay: 0.998}}]");
    auto model = train(fx, algos, /*batch=*/3, /*steps=*/8);
    for (const auto& [k, v] : module_state(*model)) {
      const at::Tensor want = fx.f.read(group + "/" + k);
      EXPECT_LT(test::max_abs_diff(v, want), 2e-6) << name << " " << k;
    }
  }
}

TEST(FedSpeed, FedAvgWithOneLocalStepIsSynchronousSgd) {
  const Fixture fx;
  // Two equal clients, one step each from w0, averaged: one SGD step on the union batch. On one
  // rank the clients take turns, so 5 rounds are 10 trainer steps.
  auto fed = train(fx, "[{fedavg: {clients: 2, split: domain, local_steps: 1, max_norm: 0, lr_decay: 1}}]", 3, 10);
  auto sgd = train(fx, "[]", 6, 5);
  const TensorMap a = module_state(*fed), b = module_state(*sgd);
  for (const auto& [k, v] : a) EXPECT_LT(test::max_abs_diff(v, b.at(k)), 1e-6) << k;
  // ... and the same with fedspeed's rho = 0 and c = 0.
  auto same = train(fx, "[{fedspeed: {clients: 2, split: domain, local_steps: 1, rho: 0, lamb: 0, max_norm: 0, lr_decay: 1}}]",
                    3, 10);
  for (const auto& [k, v] : module_state(*same)) EXPECT_TRUE(v.equal(a.at(k))) << k;
}

TEST(FedSpeed, StepsMustBeWholeRounds) {
  const Fixture fx;
  try {
    train(fx, "[{fedspeed: {clients: 2, split: domain, local_steps: 3}}]", 3, 8);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.steps"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("multiple of 6"), std::string::npos) << e.what();
  }
}

TEST(Clients, SplitsDealEverySampleOnce) {
  TrainPool pool;
  for (int64_t i = 0; i < 3000; ++i) {
    pool.labels.push_back(i % 10);
    pool.domains.push_back(i % 3);
  }
  for (auto rule : {ClientSplit::Iid, ClientSplit::Dirichlet}) {
    const auto split = split_clients(pool, 10, rule, 0.3, 7, "k");
    std::set<int64_t> seen;
    for (const auto& c : split) {
      EXPECT_FALSE(c.empty());
      for (int64_t p : c) EXPECT_TRUE(seen.insert(p).second);
    }
    EXPECT_EQ(seen.size(), 3000u);
    EXPECT_EQ(split, split_clients(pool, 10, rule, 0.3, 7, "k"));  // deterministic
  }
  const auto by_domain = split_clients(pool, 3, ClientSplit::Domain, 0, 0, "k");
  for (size_t c = 0; c < 3; ++c)
    for (int64_t p : by_domain[c]) EXPECT_EQ(pool.domains[static_cast<size_t>(p)], static_cast<int64_t>(c));
  EXPECT_THROW(split_clients(pool, 4, ClientSplit::Domain, 0, 0, "k"), ConfigError);
}

// Label skew grows as alpha shrinks: the mean over clients of the largest class share.
TEST(Clients, DirichletAlphaControlsLabelSkew) {
  TrainPool pool;
  for (int64_t i = 0; i < 5000; ++i) {
    pool.labels.push_back(i % 10);
    pool.domains.push_back(0);
  }
  auto skew = [&](double alpha) {
    double total = 0;
    const auto split = split_clients(pool, 10, ClientSplit::Dirichlet, alpha, 3, "k");
    for (const auto& c : split) {
      std::vector<int64_t> count(10);
      for (int64_t p : c) ++count[static_cast<size_t>(pool.labels[static_cast<size_t>(p)])];
      total += static_cast<double>(*std::max_element(count.begin(), count.end())) / static_cast<double>(c.size());
    }
    return total / 10;
  };
  EXPECT_LT(skew(100.0), 0.2);
  EXPECT_GT(skew(0.1), 0.6);
}

}  // namespace
}  // namespace oodt
