// Uniform soup, WiSE-FT interpolation and greedy soup selection against independent Python
// computations (tests/golden/make_golden.py).
#include <gtest/gtest.h>

#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"
#include "algorithms/soups/merge.h"
#include "algorithms/soups/sparse.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/models/model.h"
#include "test_util.h"

namespace oodt {
namespace {

std::vector<TensorMap> states(const h5::File& f) {
  std::vector<TensorMap> out;
  for (int i = 0; i < 3; ++i) {
    TensorMap m;
    for (const char* k : {"w", "b", "n"}) m[k] = f.read("/soups/state" + std::to_string(i) + "/" + k);
    out.push_back(m);
  }
  return out;
}

TEST(Soups, UniformSoupAveragesFloatsAndCopiesCounters) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const TensorMap soup = uniform_soup(states(f));
  EXPECT_LT(test::max_abs_diff(soup.at("w"), f.read("/soups/uniform/w")), 1e-6);
  EXPECT_LT(test::max_abs_diff(soup.at("b"), f.read("/soups/uniform/b")), 1e-6);
  EXPECT_EQ(soup.at("w").scalar_type(), at::kFloat);
  EXPECT_EQ(soup.at("n").item<int64_t>(), 5);  // copied from the first, not averaged
}

TEST(Soups, WiseFtInterpolation) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const auto s = states(f);
  for (const char* a : {"0.0", "0.3", "1.0"}) {
    const TensorMap t = interpolate(s[0], s[1], std::stod(a));
    EXPECT_LT(test::max_abs_diff(t.at("w"), f.read(std::string("/soups/wise_") + a + "/w")), 1e-6) << a;
    EXPECT_EQ(t.at("n").item<int64_t>(), 6);  // integer entries from the fine-tuned model
  }
}

TEST(Soups, GreedySelectionAndTieRuleMatchReference) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const at::Tensor table = f.read("/soups/greedy/table");
  auto score = [&](const std::vector<size_t>& members) {
    int64_t mask = 0;
    for (size_t m : members) mask |= int64_t{1} << m;
    const double s = table[mask].item<double>();
    EXPECT_GE(s, 0.0) << "the reference never scores member set " << mask;
    return s;
  };
  for (const char* rule : {"geq", "strict"}) {
    const GreedySoup g = greedy_soup(4, score, std::string(rule) == "strict");
    const at::Tensor want = f.read(std::string("/soups/greedy/kept_") + rule);
    ASSERT_EQ(static_cast<int64_t>(g.kept.size()), want.size(0)) << rule;
    for (size_t i = 0; i < g.kept.size(); ++i) EXPECT_EQ(static_cast<int64_t>(g.kept[i]), want[i].item<int64_t>()) << rule;
    EXPECT_DOUBLE_EQ(g.score, f.read(std::string("/soups/greedy/score_") + rule).item<double>());
    EXPECT_EQ(g.order, (std::vector<size_t>{2, 0, 3, 1}));  // ties keep input order
  }
}

TEST(Soups, MismatchedModelsAreRefusedWithNames) {
  TensorMap a{{"w", at::zeros({2, 2})}, {"b", at::zeros({2})}};
  TensorMap b{{"w", at::zeros({3, 2})}, {"c", at::zeros({2})}};
  try {
    check_mergeable({a, b}, {"a.h5", "b.h5"});
    FAIL();
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("b.h5 cannot be merged with a.h5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'w' has shape [3, 2] against [2, 2]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'b' is missing"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'c' is not in a.h5"), std::string::npos) << msg;
  }
}

TEST(Soups, DiagonalFisherAndFisherWeightedMergeMatchReference) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [3]}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 2, 2}, 3});
  Batch batch;
  batch.inputs = f.read("/fisher/x").to(at::kFloat);
  batch.labels = f.read("/fisher/y");
  TensorMap theta[2], fisher[2];
  for (int m = 0; m < 2; ++m) {
    for (const auto& name : f.list("/fisher/theta" + std::to_string(m)))
      theta[m][name] = f.read("/fisher/theta" + std::to_string(m) + "/" + name).to(at::kFloat);
    load_module_state(*model, theta[m], "fixture");
    fisher[m] = diagonal_fisher(*model, batch);
    for (const auto& [name, t] : fisher[m]) {
      const at::Tensor want = f.read("/fisher/fisher" + std::to_string(m) + "/" + name);
      // float32 gradients against a float64 reference: relative tolerance.
      EXPECT_LT(test::max_abs_diff(t, want), 1e-5 * (1.0 + want.abs().max().item<double>())) << name;
    }
  }
  const double alpha = f.attr_double("/fisher", "alpha");
  const TensorMap merged = fisher_interpolate(theta[0], theta[1], fisher[0], fisher[1], alpha);
  for (const auto& [name, t] : merged) {
    EXPECT_LT(test::max_abs_diff(t, f.read("/fisher/merged/" + name)), 1e-5) << name;
    // It is not plain interpolation.
    EXPECT_GT(test::max_abs_diff(t, interpolate(theta[0], theta[1], alpha).at(name)), 1e-4) << name;
  }
}

TEST(Soups, AlphaSpecs) {
  const auto a = parse_alphas("0:1:0.1");
  ASSERT_EQ(a.size(), 11u);
  EXPECT_NEAR(a.back(), 1.0, 1e-12);
  EXPECT_EQ(parse_alphas("0,0.5,1"), (std::vector<double>{0, 0.5, 1}));
  EXPECT_THROW(parse_alphas("0:1"), ConfigError);
  EXPECT_THROW(parse_alphas("x"), ConfigError);
}

// Three IMP phases against torch.nn.utils.prune.global_unstructured (L1Unstructured), the
// weights perturbed between phases: the same entries are masked, and each phase removes
// round(p * remaining) of what is left, with p = 1 - (1 - s)^(1/T).
TEST(SparseSoup, GlobalMagnitudePruningMatchesTorchPrune) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const double s = f.attr_double("/pruning", "sparsity");
  const auto T = static_cast<int64_t>(f.attr_double("/pruning", "phases"));
  const double p = phase_prune_amount(s, T);
  EXPECT_NEAR(p, 1 - std::pow(1 - s, 1.0 / static_cast<double>(T)), 1e-15);
  std::vector<at::Tensor> masks = {at::ones({3, 2, 3, 3}), at::ones({5, 12})};
  int64_t kept = 54 + 60;
  for (int64_t t = 0; t < T; ++t) {
    const std::string g = "/pruning/phase" + std::to_string(t) + "/";
    const std::vector<at::Tensor> weights = {f.read(g + "conv").to(at::kFloat), f.read(g + "linear").to(at::kFloat)};
    const int64_t pruned = global_magnitude_prune(weights, masks, p);
    const at::Tensor want_conv = f.read(g + "conv_mask").to(at::kFloat), want_lin = f.read(g + "linear_mask").to(at::kFloat);
    EXPECT_TRUE(masks[0].equal(want_conv)) << "phase " << t;
    EXPECT_TRUE(masks[1].equal(want_lin)) << "phase " << t;
    const int64_t left = (want_conv.sum() + want_lin.sum()).item<int64_t>();
    EXPECT_EQ(pruned, kept - left) << "phase " << t;
    kept = left;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 114.0, 1 - s, 0.01);
}

TEST(SparseSoup, PruningNothingOrEverythingLeft) {
  std::vector<at::Tensor> masks = {at::ones({2, 2})};
  EXPECT_EQ(global_magnitude_prune({at::ones({2, 2})}, masks, 0.0), 0);
  EXPECT_EQ(masks[0].sum().item<double>(), 4.0);
  masks[0].zero_();
  EXPECT_EQ(global_magnitude_prune({at::ones({2, 2})}, masks, 0.5), 0);  // nothing left to prune
}

TEST(SparseSoup, RetrainingScheduleWarmsUpThenDecaysToZero) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const at::Tensor want = f.read("/pruning/schedule");
  for (int64_t i = 0; i < want.size(0); ++i)
    EXPECT_NEAR(phase_learning_rate(0.1, i, want.size(0), 0.2), want[i].item<double>(), 1e-12) << i;
}

TEST(SparseSoup, PrunesConvAndLinearWeightsOnly) {
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [4, 8]}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  std::vector<std::string> names;
  for (const auto& [name, w] : prunable_weights(*model)) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"trunk.block0.conv.weight", "trunk.block1.conv.weight", "head.fc.weight"}));
}

TEST(Recalibration, WholeBatchStatisticsWhateverTheTrainingRule) {
  // The same weights with plain and with ghost BatchNorm: re-estimated statistics are the mean of
  // whole-batch statistics over the batches in both (ghost chunks are a training rule), and
  // equal to that mean computed by hand from the layer's inputs.
  auto comm = make_local_communicator();
  auto data = test::slice_data(8, 0, 1);
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [3], batch_norm: true}"), "model", nullptr);
  at::manual_seed(4);
  auto plain = build_model(cfg, ModelShape{{1, 4, 4}, 3});
  at::manual_seed(4);
  auto ghost = build_model(cfg, ModelShape{{1, 4, 4}, 3});
  GhostOptions o;
  o.size = 2;
  ASSERT_EQ(apply_ghost_batch_norm(*ghost, o), 1);
  ASSERT_TRUE(recalibrate_batch_norm(*plain, *data, *comm, 3, 1 << 20));
  ASSERT_TRUE(recalibrate_batch_norm(*ghost, *data, *comm, 3, 1 << 20));
  const TensorMap a = module_state(*plain), b = module_state(*ghost);
  at::Tensor mean = at::zeros({3}), var = at::zeros({3});
  {
    at::NoGradGuard no_grad;
    auto& fc = dynamic_cast<LinearImpl&>(*plain->named_children()["trunk"]->named_children()["fc0"]);
    for (int64_t k = 0; k < 3; ++k) {
      const at::Tensor h = fc.forward(data->train_batch(k).inputs.flatten(1));
      mean += h.mean(0) / 3;
      var += h.var(0, /*unbiased=*/true) / 3;
    }
  }
  for (const char* n : {"trunk.bn0.running_mean", "trunk.bn0.running_var"}) {
    EXPECT_TRUE(at::allclose(a.at(n), b.at(n))) << n;
  }
  EXPECT_LT(test::max_abs_diff(a.at("trunk.bn0.running_mean"), mean), 1e-6);
  EXPECT_LT(test::max_abs_diff(a.at("trunk.bn0.running_var"), var), 1e-5);
}

}  // namespace
}  // namespace oodt
