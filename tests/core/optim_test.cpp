// Optimizers and schedules against torch.optim golden values (tests/golden/make_golden.py).
#include <gtest/gtest.h>

#include "core/error.h"
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

// optim.groups against torch.optim's param_groups (tests/golden/make_optim_groups_golden.py):
// the head at 10x the rate without weight decay, its bias at rate 0, the rest at the base.
TEST(Optim, ParameterGroupsMatchTorchParamGroups) {
  const h5::File f = h5::File::open(test::fixture("optim_groups.h5"));
  const at::Tensor factors = f.read("factors");
  for (const std::string kind : {"sgd", "adamw", "adam"}) {
    OptimOptions o;
    o.name = kind;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.weight_decay = f.attr_double("/" + kind, "weight_decay");
    o.groups = {ParamGroup{{"head.w"}, 10.0, 0.0}, ParamGroup{{"head.?"}, 0.0, -1}};
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (const char* n : {"trunk.w", "head.w", "head.b"})
      params.emplace_back(n, f.read(std::string("/p0/") + n).clone().set_requires_grad(true));
    Optimizer opt(params, o);
    for (int64_t t = 0; t < factors.size(0); ++t) {
      for (auto& [n, p] : params) p.mutable_grad() = f.read("/grads/" + n)[t].clone();
      opt.step(o.lr * factors[t].item<double>());
      for (auto& [n, p] : params)
        EXPECT_LT(test::max_abs_diff(p, f.read("/" + kind + "/" + n)[t]), 2e-6) << kind << " " << n << " step " << t;
    }
  }
}

TEST(Optim, FreezeTurnsOffGradientsAndNamesUnmatchedPatterns) {
  torch::nn::Module m;
  for (const char* part : {"trunk", "head"}) {
    auto sub = std::make_shared<torch::nn::Module>();
    sub->register_parameter("w", at::zeros({2}));
    m.register_module(part, sub);
  }
  OptimOptions o;
  o.freeze = {"trunk.*"};
  EXPECT_EQ(freeze_parameters(m, o), std::vector<std::string>{"trunk.w"});
  EXPECT_FALSE(m.named_parameters()["trunk.w"].requires_grad());
  EXPECT_TRUE(m.named_parameters()["head.w"].requires_grad());
  Optimizer opt(m.named_parameters().pairs(), o);  // the frozen one is not the optimizer's
  m.named_parameters()["head.w"].mutable_grad() = at::ones({2});
  opt.step(0.1);
  const TensorMap state = opt.state_dict();
  EXPECT_EQ(state.count("head.w.momentum_buffer"), 1u);
  EXPECT_EQ(state.count("trunk.w.momentum_buffer"), 0u);
  o.freeze = {"tronk.*"};
  EXPECT_THROW(freeze_parameters(m, o), ConfigError);
  o.freeze = {};
  o.groups = {ParamGroup{{"trunk.*"}, 2.0, -1}};  // matches only a frozen parameter
  EXPECT_THROW(Optimizer(m.named_parameters().pairs(), o), ConfigError);
}

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
