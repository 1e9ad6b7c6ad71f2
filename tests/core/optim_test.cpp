// Optimizers and schedules against torch.optim golden values (tests/golden/make_golden.py).
#include <gtest/gtest.h>

#include "core/h5.h"
#include "core/optim.h"
#include "test_util.h"

namespace oodt {
namespace {

class OptimGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimGolden, MatchesTorchOptim) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const std::string g = "/optim/" + GetParam();
  OptimOptions o;
  o.name = f.attr_string(g, "kind");
  auto attr = [&](const char* k, double fallback) { return f.has_attr(g, k) ? f.attr_double(g, k) : fallback; };
  o.momentum = attr("momentum", 0.0);
  o.dampening = attr("dampening", 0.0);
  o.nesterov = attr("nesterov", 0.0) != 0.0;
  o.weight_decay = attr("weight_decay", 0.0);
  o.beta1 = attr("beta1", 0.9);
  o.beta2 = attr("beta2", 0.999);
  o.eps = attr("eps", 1e-8);
  const at::Tensor p0 = f.read(g + "/p0").to(at::kFloat);
  const at::Tensor grads = f.read(g + "/grads").to(at::kFloat);
  const at::Tensor lrs = f.read(g + "/lrs");
  const at::Tensor expected = f.read(g + "/expected");
  at::Tensor p = p0.clone().set_requires_grad(true);
  Optimizer opt({{"w", p}}, o);
  for (int64_t t = 0; t < grads.size(0); ++t) {
    p.mutable_grad() = grads[t].clone();
    opt.step(lrs[t].item<double>());
    EXPECT_LT(test::max_abs_diff(p, expected[t]), 2e-6) << GetParam() << " step " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, OptimGolden,
                         ::testing::Values("sgd_plain", "sgd_momentum", "sgd_momentum_dampening_wd", "sgd_nesterov_wd",
                                           "adam", "adam_wd", "adamw"));

TEST(Optim, StateRoundTripContinuesIdentically) {
  OptimOptions o;
  o.name = "adam";
  auto make = [] { return at::arange(6, at::kFloat).reshape({2, 3}).set_requires_grad(true); };
  at::Tensor a = make(), b = make();
  Optimizer oa({{"w", a}}, o), ob({{"w", b}}, o);
  const at::Tensor g = at::linspace(-1, 1, 6).reshape({2, 3});
  for (int i = 0; i < 3; ++i) {
    a.mutable_grad() = g.clone();
    oa.step(0.1);
  }
  b.detach().copy_(a.detach());
  ob.load_state_dict(oa.state_dict());
  EXPECT_EQ(ob.steps(), 3);
  a.mutable_grad() = g.clone();
  b.mutable_grad() = g.clone();
  oa.step(0.1);
  ob.step(0.1);
  EXPECT_TRUE(at::equal(a, b));
}

TEST(Optim, ResetStateIsAFreshOptimizerOnTheSameParameters) {
  OptimOptions o;  // sgd with momentum
  auto make = [] { return at::arange(4, at::kFloat).set_requires_grad(true); };
  at::Tensor a = make(), b = make();
  Optimizer oa({{"w", a}}, o), ob({{"w", b}}, o);
  for (int i = 0; i < 3; ++i) {
    a.mutable_grad() = at::ones({4});
    oa.step(0.1);
  }
  oa.reset_state();
  EXPECT_EQ(oa.steps(), 0);
  EXPECT_EQ(oa.state_dict().size(), 1u);  // only the step counter
  b.detach().copy_(a.detach());
  a.mutable_grad() = at::full({4}, 2.0f);
  b.mutable_grad() = at::full({4}, 2.0f);
  oa.step(0.1);
  ob.step(0.1);
  EXPECT_TRUE(at::equal(a, b));
}

TEST(Schedule, MatchesTorchLrSchedulers) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const double base = f.attr_double("/schedule", "base");
  const auto total = static_cast<int64_t>(f.attr_double("/schedule", "total"));
  ScheduleOptions step;
  step.name = "step";
  step.step_size = 7;
  step.gamma = 0.5;
  ScheduleOptions cosine;
  cosine.name = "cosine";
  cosine.min_lr = 0.001;
  ScheduleOptions warm;
  warm.name = "cosine";
  warm.warmup_steps = static_cast<int64_t>(f.attr_double("/schedule", "warmup"));
  for (auto& [name, s] : std::vector<std::pair<std::string, ScheduleOptions>>{
           {"step", step}, {"cosine", cosine}, {"warmup_cosine", warm}}) {
    const at::Tensor want = f.read("/schedule/" + name);
    for (int64_t t = 0; t < total; ++t)
      EXPECT_NEAR(learning_rate(s, base, t, total), want[t].item<double>(), 1e-12) << name << " step " << t;
  }
}

}  // namespace
}  // namespace oodt
