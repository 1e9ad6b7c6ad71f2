// Multi-rank tests, run as `mpirun -np 2 oodt_dist_tests`. Expectations are closed-form or
// computed on each rank independently, so the binary is right at any world size.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"
#include "core/agreement.h"
#include "core/averaging.h"
#include "core/buckets.h"
#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/numerics.h"
#include "core/trainer.h"
#include "test_util.h"

namespace oodt {
namespace {

Communicator* g_comm = nullptr;

// Every rank's copy of `t`, stacked: [world, ...].
at::Tensor gather(const at::Tensor& t) { return g_comm->all_gather(t.detach().contiguous()); }

void expect_same_on_all_ranks(const at::Tensor& t, const std::string& what) {
  const at::Tensor all = gather(t);
  for (int64_t r = 1; r < all.size(0); ++r) EXPECT_TRUE(at::equal(all[0], all[r])) << what << " differs on rank " << r;
}

TEST(Collectives, AllReduceBroadcastGatherClosedForm) {
  const int w = g_comm->world_size(), r = g_comm->rank();
  at::Tensor t = at::full({5}, r + 1.0f);
  g_comm->all_reduce(t, ReduceOp::Sum);
  EXPECT_TRUE(at::allclose(t, at::full({5}, w * (w + 1) / 2.0f)));
  at::Tensor m = at::full({1}, static_cast<int64_t>(r), at::kLong);
  g_comm->all_reduce(m, ReduceOp::Max);
  EXPECT_EQ(m.item<int64_t>(), w - 1);
  at::Tensor b = at::full({3}, static_cast<double>(r) + 10, at::kDouble);
  g_comm->broadcast(b, 0);
  EXPECT_TRUE(at::equal(b, at::full({3}, 10.0, at::kDouble)));
  const at::Tensor g = g_comm->all_gather(at::full({2}, static_cast<int>(r), at::kInt));
  for (int q = 0; q < w; ++q) EXPECT_EQ(g[q][1].item<int>(), q);
  EXPECT_TRUE(g_comm->any(r == w - 1));
  EXPECT_FALSE(g_comm->any(false));
}

TEST(Collectives, SplitGivesEachGroupItsOwnCollectives) {
  const int w = g_comm->world_size(), r = g_comm->rank();
  // One group per rank: sums stay local.
  auto alone = g_comm->split(r, r);
  EXPECT_EQ(alone->world_size(), 1);
  at::Tensor t = at::full({2}, r + 1.0f);
  alone->all_reduce(t);
  EXPECT_TRUE(at::equal(t, at::full({2}, r + 1.0f)));
  // One group of everyone, ordered by descending rank: rank 0 of the group is the last rank.
  auto all = g_comm->split(0, w - 1 - r);
  EXPECT_EQ(all->world_size(), w);
  EXPECT_EQ(all->rank(), w - 1 - r);
  at::Tensor b = at::full({1}, static_cast<double>(r), at::kDouble);
  all->broadcast(b, 0);
  EXPECT_EQ(b.item<double>(), w - 1.0);
}

TEST(Collectives, BucketedMeanMatchesPerTensorMean) {
  const int w = g_comm->world_size(), r = g_comm->rank();
  std::vector<at::Tensor> ts = {at::full({100}, r + 1.0f), at::full({7, 3}, 2.0f * r), at::full({1}, -1.0f * r),
                                at::full({300}, 1.0f)};
  BucketLimits limits;
  limits.bucket_bytes = 512;  // several buckets, one tensor larger than a bucket
  EXPECT_EQ(plan_buckets(ts, limits).size(), 2u);  // [400 + 84 + 4 bytes], [1200 bytes: larger than a bucket]
  all_reduce_tensors(ts, *g_comm, limits.bucket_bytes, /*mean=*/true);
  const double mean_r = (w - 1) / 2.0;
  EXPECT_TRUE(at::allclose(ts[0], at::full({100}, static_cast<float>(mean_r + 1))));
  EXPECT_TRUE(at::allclose(ts[1], at::full({7, 3}, static_cast<float>(2 * mean_r))));
  EXPECT_TRUE(at::allclose(ts[2], at::full({1}, static_cast<float>(-mean_r))));
  EXPECT_TRUE(at::allclose(ts[3], at::full({300}, 1.0f)));
}

TEST(Collectives, BroadcastModuleEqualisesDifferentInits) {
  at::manual_seed(100 + g_comm->rank());
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [4, 8]}"), "model", nullptr);
  auto m = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  broadcast_module(*m, *g_comm, 0, 1024);
  for (const auto& [name, t] : m->named_state()) expect_same_on_all_ranks(t, name);
}

std::unique_ptr<Trainer> make_trainer(const std::string& model_yaml, Communicator& comm, int64_t global_batch,
                                      int64_t steps, const std::function<void(TrainerOptions&)>& edit = {}) {
  TrainerOptions o;
  o.run_dir = test::temp_dir("dist_run");
  o.steps = steps;
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.dist.bucket_mb = 0.001;  // ~1 KB buckets: exercise bucketing
  o.optim.name = "sgd";
  o.optim.lr = 0.1;
  o.optim.momentum = 0.9;
  o.optim.weight_decay = 1e-3;
  o.schedule.name = "cosine";
  if (edit) edit(o);
  at::manual_seed(7);  // same init everywhere
  ConfigReader cfg(YAML::Load(model_yaml), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 4, 4}, 3});
  return std::make_unique<Trainer>(o, model, test::slice_data(global_batch, comm.rank(), comm.world_size()),
                                   std::make_unique<Engine>(std::vector<std::unique_ptr<Algorithm>>{}), comm,
                                   at::Device(at::kCPU), "{}");
}

TEST(Trainer, RanksHoldIdenticalParametersAndBuffersAfterTraining) {
  // BN and dropout: ranks see different data and draw different masks, yet stay in sync.
  auto t = make_trainer("{name: mlp, hidden: [16], batch_norm: true, dropout: 0.2}", *g_comm, 8, 6);
  t->fit();
  for (const auto& [name, v] : t->model().named_state()) expect_same_on_all_ranks(v, name);
}

TEST(Trainer, WorldOfTwoWithBatchBMatchesOneRankWithBatchTwoB) {
  const int64_t global = 8 * g_comm->world_size();
  auto dist = make_trainer("{name: mlp, hidden: [16, 8]}", *g_comm, global, 8);
  dist->fit();
  auto local_comm = make_local_communicator();
  auto single = make_trainer("{name: mlp, hidden: [16, 8]}", *local_comm, global, 8);
  single->fit();
  const auto a = dist->model().named_state();
  const auto b = single->model().named_state();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LT(test::max_abs_diff(a[i].second, b[i].second), 2e-5) << a[i].first;
  }
  // And training moved the weights (the comparison is not vacuous).
  auto fresh = make_trainer("{name: mlp, hidden: [16, 8]}", *local_comm, global, 8);
  EXPECT_GT(test::max_abs_diff(a[0].second, fresh->model().named_state()[0].second), 1e-3);
}

GradientSync& gradient_sync(Trainer& t) {
  auto* g = dynamic_cast<GradientAllReduce*>(t.state().averaging);
  EXPECT_NE(g, nullptr);
  return g->sync();
}

TEST(OverlappedAllReduce, SameBitsAsAllReduceAfterBackward) {
  // BN, dropout and several buckets: reducing buckets while backward runs, in the order
  // gradients arrive, changes nothing in the result.
  const std::string model = "{name: cnn, channels: [4, 8], dropout: 0.2}";
  auto over = make_trainer(model, *g_comm, 8, 5, [](TrainerOptions& o) {
    o.dist.bucket_mb = 0.0005;
    o.dist.overlap = DistOptions::Overlap::On;
  });
  over->fit();
  auto after = make_trainer(model, *g_comm, 8, 5, [](TrainerOptions& o) {
    o.dist.bucket_mb = 0.0005;
    o.dist.overlap = DistOptions::Overlap::Off;
  });
  after->fit();
  // Gradients of 128 bytes and more reduced where they lie, each in a collective of its own.
  auto in_place = make_trainer(model, *g_comm, 8, 5, [](TrainerOptions& o) {
    o.dist.bucket_mb = 0.0005;
    o.dist.in_place_mb = 128.0 / (1 << 20);
    o.dist.overlap = DistOptions::Overlap::On;
  });
  in_place->fit();
  if (g_comm->world_size() > 1) {
    EXPECT_TRUE(gradient_sync(*over).overlapping());
    EXPECT_FALSE(gradient_sync(*after).overlapping());
    EXPECT_GE(gradient_sync(*over).num_buckets(), 3u);
    EXPECT_GT(gradient_sync(*in_place).num_buckets(), gradient_sync(*over).num_buckets());
    // Backward divides by the world size (its seed), not a pass over the gradients.
    EXPECT_EQ(over->state().averaging->backward_scale(), 1.0 / g_comm->world_size());
  }
  for (Trainer* other : {after.get(), in_place.get()}) {
    const auto a = over->model().named_state(), b = other->model().named_state();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

TEST(OverlappedAllReduce, AveragedGradientsAreViewsOfTheBuckets) {
  // After averaging, a small parameter's gradient is its slice of a bucket (nothing copied
  // back), a large one is reduced in its own tensor; both hold the mean over the ranks.
  if (g_comm->world_size() == 1) GTEST_SKIP() << "no communication on one rank";
  const int w = g_comm->world_size(), r = g_comm->rank();
  auto t = make_trainer("{name: mlp, hidden: [64]}", *g_comm, 8, 1, [](TrainerOptions& o) {
    o.dist.in_place_mb = 4096.0 / (1 << 20);  // the input layer's weight (64 x inputs) goes in place
    o.dist.overlap = DistOptions::Overlap::Off;
  });
  t->setup();
  const double seed = t->state().averaging->backward_scale();
  std::vector<at::Tensor> expected, given;
  for (auto& p : t->model().parameters()) {
    expected.push_back(at::full(p.sizes(), (w - 1) / 2.0 + 1.0));  // mean of (rank + 1)
    given.push_back(at::full(p.sizes(), (r + 1) * seed));
    p.mutable_grad() = given.back();
  }
  t->state().averaging->average(t->state());
  size_t views = 0, in_place = 0, large = 0, k = 0;
  for (auto& p : t->model().parameters()) {
    EXPECT_TRUE(at::allclose(p.grad(), expected[k])) << k;
    if (p.grad().is_view()) ++views;
    if (p.grad().data_ptr() == given[k].data_ptr()) ++in_place;
    if (p.numel() * 4 >= 4096) ++large;
    ++k;
  }
  EXPECT_GE(large, 1u);
  EXPECT_EQ(in_place, large);
  EXPECT_EQ(views, k - large);
}

TEST(OverlappedAllReduce, BucketOrderFollowsTheHooksAndIsCheckpointed) {
  if (g_comm->world_size() == 1) GTEST_SKIP() << "no communication on one rank";
  auto t = make_trainer("{name: mlp, hidden: [16, 8]}", *g_comm, 8, 2, [](TrainerOptions& o) {
    o.dist.bucket_mb = 0.0002;
    o.dist.overlap = DistOptions::Overlap::On;
  });
  t->fit();
  TensorMap saved;
  t->state().averaging->save(saved);
  ASSERT_TRUE(saved.count("bucket_order"));
  const at::Tensor order = saved["bucket_order"];
  // Backward produces the last layer's gradients first: the order is a permutation that
  // starts with the output layer (index 0 in reverse registration order: its bias or weight).
  const int64_t n = order.numel();
  EXPECT_EQ(n, static_cast<int64_t>(t->model().parameters().size()));
  EXPECT_TRUE(at::equal(std::get<0>(order.sort()), at::arange(n, at::kLong)));
  EXPECT_LE(order[0].item<int64_t>(), 1);
  expect_same_on_all_ranks(order, "bucket order");
}

TEST(CompressedAllReduce, Fp16AndBf16ErrorsAreMeasuredAndBounded) {
  // Gradients of very different magnitudes on each rank; compare the compressed mean with the
  // exact float64 mean of the same values.
  const int w = g_comm->world_size(), r = g_comm->rank();
  if (w == 1) GTEST_SKIP() << "no communication on one rank";
  struct Case {
    const char* name;
    GradCompression compression;
    double unit;  // unit roundoff: 2^-11 (fp16), 2^-8 (bf16)
    double bound;
  };
  // Each rank's x/w is rounded once, and so is every partial sum: at most 2 w u relative to
  // the largest |x_i| / w of an element (plus the float16 subnormal spacing, absolute).
  for (Case c : {Case{"fp16", GradCompression::Fp16, std::ldexp(1.0, -11), 0},
                 Case{"bf16", GradCompression::Bf16, std::ldexp(1.0, -8), 0}}) {
    c.bound = 2 * w * c.unit;
    auto t = make_trainer("{name: mlp, hidden: [32]}", *g_comm, 8, 1, [&](TrainerOptions& o) {
      o.dist.compress = c.compression;
      o.dist.overlap = DistOptions::Overlap::Off;
    });
    t->setup();
    at::Generator gen = at::detail::createCPUGenerator(100 + r);
    std::vector<at::Tensor> mine;
    // As backward leaves them: times the strategy's backward scale (1/w when it prescales).
    const double seed = t->state().averaging->backward_scale();
    for (auto& p : t->model().parameters()) {
      const at::Tensor g = at::randn(p.sizes(), gen) * std::pow(10.0, (r % 3) - 1);
      mine.push_back(g.to(at::kDouble));
      p.mutable_grad() = g * seed;
    }
    int64_t numel = 0;
    for (auto& p : t->model().parameters()) numel += p.numel();
    const uint64_t bytes_before = g_comm->bytes();
    t->state().averaging->average(t->state());
    EXPECT_EQ(g_comm->bytes() - bytes_before, static_cast<uint64_t>(numel) * 2) << c.name << ": 2 bytes a value in transit";
    double worst = 0, sum_err = 0, sum_ref = 0;
    size_t k = 0;
    for (auto& p : t->model().parameters()) {
      at::Tensor exact = mine[k++].clone();
      g_comm->all_reduce(exact);
      exact.div_(w);
      const at::Tensor err = (p.grad().to(at::kDouble) - exact).abs();
      // Per element, relative to the larger input magnitude (summing values of opposite sign
      // can cancel; the rounding error scales with the inputs).
      const at::Tensor scale = gather(mine[k - 1]).abs().amax(0) / w;
      worst = std::max(worst, ((err - std::ldexp(1.0, -24)).clamp_min(0) / scale.clamp_min(1e-30)).max().item<double>());
      sum_err += err.sum().item<double>();
      sum_ref += exact.abs().sum().item<double>();
    }
    if (r == 0)
      std::printf("[ measured ] %s gradient compression: max relative error %.3g (bound %.3g), mean |err| / mean |g| %.3g\n",
                  c.name, worst, c.bound, sum_err / sum_ref);
    EXPECT_LE(worst, c.bound) << c.name;
    // float32 in transit would be ~1e-8 off; 16-bit rounding shows at ~u / 10.
    EXPECT_GT(sum_err / sum_ref, c.unit / 100) << c.name << ": too exact to have been rounded to 16 bits";
  }
}

// A plugin's own per-bucket hook: an identity that counts the buckets it sees.
class CountingHook final : public BucketHook {
 public:
  explicit CountingHook(int64_t* count) : count_(count) {}
  std::string name() const override { return "counting"; }
  at::Tensor encode(const at::Tensor& bucket) override {
    ++*count_;
    return bucket;
  }
  void decode(const at::Tensor&, at::Tensor&) override {}

 private:
  int64_t* count_;
};

class HookPlugin final : public Algorithm, public BucketHookProvider {
 public:
  explicit HookPlugin(int64_t* count) : count_(count) { set_name("counting_hook"); }
  void hooks(HookTable&) override {}
  std::unique_ptr<BucketHook> bucket_hook() override { return std::make_unique<CountingHook>(count_); }

 private:
  int64_t* count_;
};

TEST(BucketHooks, APluginHookSeesEveryBucketAndTheEngineDoesTheRest) {
  const std::string model = "{name: mlp, hidden: [16, 8]}";
  auto plain = make_trainer(model, *g_comm, 8, 3);
  plain->fit();
  int64_t count = 0;
  TrainerOptions o;
  o.run_dir = test::temp_dir("dist_hook");
  o.steps = 3, o.eval_every = 0, o.checkpoint_every = 0;
  o.dist.bucket_mb = 0.001;
  o.optim.name = "sgd", o.optim.lr = 0.1, o.optim.momentum = 0.9, o.optim.weight_decay = 1e-3;
  o.schedule.name = "cosine";
  auto build = [&](TrainerOptions options) {
    at::manual_seed(7);
    ConfigReader cfg(YAML::Load(model), "model", nullptr);
    std::vector<std::unique_ptr<Algorithm>> algos;
    algos.push_back(std::make_unique<HookPlugin>(&count));
    return std::make_unique<Trainer>(options, build_model(cfg, ModelShape{{1, 4, 4}, 3}),
                                     test::slice_data(8, g_comm->rank(), g_comm->world_size()),
                                     std::make_unique<Engine>(std::move(algos)), *g_comm, at::Device(at::kCPU), "{}");
  };
  auto hooked = build(o);
  hooked->fit();
  const auto a = plain->model().named_state(), b = hooked->model().named_state();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  if (g_comm->world_size() > 1) EXPECT_EQ(count, 3 * static_cast<int64_t>(gradient_sync(*hooked).num_buckets()));
  // A plugin's hook and dist.compress both decide what goes over the wire: refused.
  o.dist.compress = GradCompression::Fp16;
  EXPECT_THROW(build(o), ConfigError);
}

TEST(Accumulation, MicroBatchesMatchOneBatch) {
  // Four micro-batches of 2 per rank, summed, then one all-reduce: the same step as batches
  // of 8 up to float rounding (no BN or dropout, whose statistics would see micro-batches).
  const std::string model = "{name: mlp, hidden: [16, 8]}";
  auto one = make_trainer(model, *g_comm, 8 * g_comm->world_size(), 6);
  one->fit();
  auto four = make_trainer(model, *g_comm, 8 * g_comm->world_size(), 6, [](TrainerOptions& o) { o.accumulate = 4; });
  four->fit();
  const auto a = one->model().named_state(), b = four->model().named_state();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT(test::max_abs_diff(a[i].second, b[i].second), 2e-6) << a[i].first;
  EXPECT_EQ(four->state().micro_batches, 4);
}

TEST(NonFinite, EveryRankAgreesOnSkipOrAbortAndTheCulpritIsNamed) {
  // Only the last rank's gradient of one parameter holds a NaN; nothing averages it.
  const int w = g_comm->world_size(), r = g_comm->rank();
  at::manual_seed(3);
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [8]}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 4, 4}, 3});
  std::string culprit;
  for (const auto& kv : model->named_parameters()) {
    kv.value().mutable_grad() = at::zeros_like(kv.value());
    if (culprit.empty() && kv.value().dim() == 1) culprit = kv.key();  // the first bias
  }
  if (r == w - 1) model->named_parameters()[culprit].mutable_grad()[2] = NAN;
  State s;
  s.model = model.get();
  s.comm = g_comm;
  s.step = 41;
  s.max_steps = 100;
  // The check is local; the step agreement (one collective) makes every rank decide alike.
  StepAgreement agreement;
  NonFiniteCheck skip(NonFiniteOptions{NonFinitePolicy::Skip, 10, 0.1}, agreement);
  auto step = [&](NonFiniteCheck& check, double loss) {
    check.check(s, loss);
    agreement.agree(*g_comm);
    return check.allows_update(s);
  };
  EXPECT_FALSE(step(skip, 0.5));  // on every rank
  EXPECT_EQ(skip.take_skipped(), 1);
  EXPECT_TRUE(step(skip, 0.5) == false);
  StepAgreement agreement2;
  NonFiniteCheck abort(NonFiniteOptions{NonFinitePolicy::Abort, 10, 0.1}, agreement2);
  auto step2 = [&](double loss) {
    abort.check(s, loss);
    agreement2.agree(*g_comm);
    return abort.allows_update(s);
  };
  try {
    step2(0.5);
    ADD_FAILURE() << "no error";
  } catch (const NumericalError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("step 41"), std::string::npos) << m;
    if (r == w - 1) {
      EXPECT_NE(m.find("non-finite gradient of '" + culprit + "'"), std::string::npos) << m;
      EXPECT_NE(m.find(": 1 value(s), NaN"), std::string::npos) << m;
      EXPECT_NE(m.find("on rank " + std::to_string(r)), std::string::npos) << m;
    } else {
      EXPECT_NE(m.find("rank " + std::to_string(w - 1) + " found a non-finite"), std::string::npos) << m;
    }
  }
  // A finite step passes everywhere; an Inf loss on rank 0 alone stops every rank.
  model->named_parameters()[culprit].mutable_grad().zero_();
  EXPECT_TRUE(step2(0.5));
  EXPECT_THROW(step2(r == 0 ? INFINITY : 0.5), NumericalError);
}

TEST(Determinism, WhatDiffersAcrossWorldSizes) {
  // The same global batch each step, split over the ranks or whole on one (docs/determinism.md):
  // without batch statistics or random draws, only float rounding differs (summation order);
  // BatchNorm normalises each rank's half with its own statistics, and dropout draws its masks
  // per rank, so those runs move apart by far more than rounding.
  if (g_comm->world_size() == 1) GTEST_SKIP() << "needs two world sizes";
  const int64_t global = 8 * g_comm->world_size();
  auto local_comm = make_local_communicator();
  auto gap = [&](const std::string& model) {
    auto dist = make_trainer(model, *g_comm, global, 8);
    dist->fit();
    auto single = make_trainer(model, *local_comm, global, 8);
    single->fit();
    double worst = 0;
    const auto a = dist->model().named_parameters(), b = single->model().named_parameters();
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, test::max_abs_diff(a[i].value(), b[i].value()));
    return worst;
  };
  const double plain = gap("{name: mlp, hidden: [16, 8]}");
  const double bn = gap("{name: mlp, hidden: [16, 8], batch_norm: true}");
  const double dropout = gap("{name: mlp, hidden: [16, 8], dropout: 0.3}");
  if (g_comm->rank() == 0)
    std::printf("[ measured ] max |w(2 ranks) - w(1 rank)| after 8 steps: plain %.2g, batch norm %.2g, dropout %.2g\n",
                plain, bn, dropout);
  EXPECT_LT(plain, 2e-5);
  EXPECT_GT(bn, 100 * std::max(plain, 1e-7));
  EXPECT_GT(dropout, 100 * std::max(plain, 1e-7));
}

TEST(GhostBatchNorm, RanksWithHalfTheBatchMatchOneRankWithAllOfIt) {
  // The same samples: global batch of 8 per rank; ghost size 4. One rank normalises chunks
  // [0,4), [4,8), ... of the whole batch; rank r normalises the chunks of its own slice.
  const int w = g_comm->world_size(), r = g_comm->rank();
  const int64_t per_rank = 8, g = 4;
  at::Generator gen = at::detail::createCPUGenerator(77);
  const at::Tensor x = at::randn({per_rank * w, 1, 8, 8}, gen);
  at::manual_seed(5);
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [4, 8], dropout: 0.0}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  auto plain = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  GhostOptions o;
  o.size = g;
  ASSERT_EQ(apply_ghost_batch_norm(*model, o), 2);
  model->train();
  const at::Tensor mine = model->forward(x.narrow(0, r * per_rank, per_rank));
  const at::Tensor whole = model->forward(x);
  EXPECT_LT(test::max_abs_diff(mine, whole.narrow(0, r * per_rank, per_rank)), 1e-5);
  // Without ghost batches the rank's statistics differ from the whole batch's.
  if (w > 1) {
    plain->train();
    EXPECT_GT(test::max_abs_diff(plain->forward(x.narrow(0, r * per_rank, per_rank)),
                                 plain->forward(x).narrow(0, r * per_rank, per_rank)),
              1e-3);
  }
}

}  // namespace
}  // namespace oodt

int main(int argc, char** argv) {
  auto comm = oodt::make_communicator();
  oodt::g_comm = comm.get();
  ::testing::InitGoogleTest(&argc, argv);
  if (comm->rank() != 0) {
    // One report: rank 0 prints; failures on other ranks still fail the exit code below.
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  const double worst = comm->all_reduce_scalar(failed, oodt::ReduceOp::Max);
  if (comm->rank() == 0 && worst != 0 && failed == 0) std::fprintf(stderr, "a test failed on another rank\n");
  return worst != 0 ? 1 : 0;
}
