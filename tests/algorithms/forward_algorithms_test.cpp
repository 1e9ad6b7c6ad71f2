// multi_sample_dropout and ghost_batch_norm against hand-written torch references
// (tests/golden/make_golden.py).
#include <gtest/gtest.h>

#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"
#include "algorithms/multi_sample_dropout/multi_sample_dropout.h"
#include "core/config.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "test_util.h"

namespace oodt {
namespace {

at::Tensor flt(const h5::File& f, const std::string& name) { return f.read(name).to(at::kFloat); }

TEST(MultiSampleDropout, LossAndGradientsMatchExplicitMasks) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const std::string g = "/multi_sample_dropout/";
  const at::Tensor h = flt(f, g + "h").set_requires_grad(true);
  const at::Tensor W = flt(f, g + "W").set_requires_grad(true);
  const at::Tensor b = flt(f, g + "b").set_requires_grad(true);
  const at::Tensor masks = flt(f, g + "masks");
  Batch batch;
  batch.labels = f.read(g + "y");
  const int64_t m = masks.size(0);
  const at::Tensor logits = multi_sample_logits(h, masks, W, b);
  ASSERT_EQ(logits.size(0), m * h.size(0));
  // M*N rows for N targets: the loss scores every row against its input's target.
  const at::Tensor loss = classification_loss(logits, batch);
  loss.backward();
  const double want = f.read(g + "loss").item<double>();
  EXPECT_NEAR(loss.item<double>(), want, 1e-5);
  EXPECT_LT(test::max_abs_diff(h.grad(), f.read(g + "grad_h")), 1e-5);
  EXPECT_LT(test::max_abs_diff(W.grad(), f.read(g + "grad_W")), 1e-5);
  EXPECT_LT(test::max_abs_diff(b.grad(), f.read(g + "grad_b")), 1e-5);

  // Averaging the logits before the loss is another method: it lands far outside the
  // tolerance above, so the golden comparison tells the two apart.
  Batch plain;
  plain.labels = f.read(g + "y");
  const at::Tensor mean_logits = logits.detach().reshape({m, h.size(0), -1}).mean(0);
  const double wrong = classification_loss(mean_logits, plain).item<double>();
  EXPECT_NEAR(wrong, f.read(g + "wrong_variant_loss").item<double>(), 1e-5);
  EXPECT_GT(std::fabs(wrong - want), 1e-2);
}

std::shared_ptr<Model> cnn(double dropout) {
  at::manual_seed(3);
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [4, 8], dropout: " + std::to_string(dropout) + "}"), "model",
                   nullptr);
  return build_model(cfg, ModelShape{{1, 8, 8}, 5});
}

TEST(MultiSampleDropout, PluginSwapsTheHeadUnderTheSameNames) {
  auto model = cnn(0.5);
  std::vector<std::string> names;
  for (const auto& [k, v] : model->named_state()) names.push_back(k);
  const at::Tensor fc = model->head->fc->weight;
  MultiSampleDropout msd(MultiSampleDropoutOptions{3});
  State s;
  s.model = model.get();
  msd.prepare_model(s);
  ASSERT_NE(dynamic_cast<MultiSampleHeadImpl*>(model->head.get().get()), nullptr);
  std::vector<std::string> after;
  for (const auto& [k, v] : model->named_state()) after.push_back(k);
  EXPECT_EQ(after, names);
  EXPECT_TRUE(model->head->fc->weight.is_same(fc));  // the same parameter, not a copy
  s.batch.inputs = at::randn({4, 1, 8, 8});
  s.batch.labels = at::tensor({0, 1, 2, 3}, at::kLong);
  model->train();
  s.outputs = model->forward(s.batch.inputs);
  EXPECT_EQ(s.outputs.sizes(), (std::vector<int64_t>{12, 5}));
  // The loss of M*N rows against N targets is the mean of the M per-mask losses.
  double per_mask = 0;
  for (int64_t k = 0; k < 3; ++k) per_mask += classification_loss(s.outputs.narrow(0, 4 * k, 4), s.batch).item<double>();
  EXPECT_NEAR(classification_loss(s.outputs, s.batch).item<double>(), per_mask / 3, 1e-6);
  // The masks differ: the three copies give different logits.
  EXPECT_FALSE(at::allclose(s.outputs.narrow(0, 0, 4), s.outputs.narrow(0, 4, 4)));
  // Eval: one head call, no dropout.
  model->eval();
  EXPECT_EQ(model->forward(s.batch.inputs).size(0), 4);
}

TEST(MultiSampleDropout, RefusesAHeadWithoutDropout) {
  auto model = cnn(0.0);
  MultiSampleDropout msd(MultiSampleDropoutOptions{8});
  State s;
  s.model = model.get();
  EXPECT_THROW(msd.prepare_model(s), ConfigError);
}

class GhostGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GhostGolden, OutputsGradientsAndRunningStatsMatch) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const std::string g = "/ghost_batch_norm/" + GetParam() + "/";
  const at::Tensor x = flt(f, g + "x").set_requires_grad(true);
  BatchNormImpl plain(x.size(1));
  {
    at::NoGradGuard no_grad;
    plain.weight.copy_(flt(f, g + "weight"));
    plain.bias.copy_(flt(f, g + "bias"));
    plain.running_mean.copy_(flt(f, g + "running_mean0"));
    plain.running_var.copy_(flt(f, g + "running_var0"));
  }
  GhostOptions o;
  o.size = f.attr_int("/ghost_batch_norm/" + GetParam(), "ghost_size");
  o.stats = GetParam().find("scaled") != std::string::npos ? GhostStats::Scaled : GhostStats::PerChunk;
  auto bn = std::make_shared<GhostBatchNormImpl>(plain, o);
  bn->train();
  const at::Tensor y = bn->forward(x);
  (y * flt(f, g + "R")).sum().backward();
  EXPECT_LT(test::max_abs_diff(y, f.read(g + "y")), 1e-5);
  EXPECT_LT(test::max_abs_diff(x.grad(), f.read(g + "grad_x")), 1e-4);
  EXPECT_LT(test::max_abs_diff(bn->weight.grad(), f.read(g + "grad_weight")), 1e-4);
  EXPECT_LT(test::max_abs_diff(bn->bias.grad(), f.read(g + "grad_bias")), 1e-4);
  EXPECT_LT(test::max_abs_diff(bn->running_mean, f.read(g + "running_mean")), 1e-6);
  EXPECT_LT(test::max_abs_diff(bn->running_var, f.read(g + "running_var")), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(HandWritten, GhostGolden,
                         ::testing::Values("conv_uneven_per_chunk", "conv_uneven_scaled", "linear_even_per_chunk",
                                           "linear_even_scaled"));

TEST(GhostBatchNorm, EvalUsesRunningStatisticsForAnyBatchSize) {
  GhostOptions o;
  o.size = 4;
  auto bn = std::make_shared<GhostBatchNormImpl>(BatchNormImpl(3), o);
  {
    at::NoGradGuard no_grad;
    bn->running_mean.copy_(at::tensor({1.0f, -1.0f, 0.5f}));
    bn->running_var.copy_(at::tensor({4.0f, 1.0f, 0.25f}));
  }
  bn->eval();
  const at::Tensor x = at::randn({3, 3, 2, 2});  // smaller than a ghost batch
  const at::Tensor want = (x - bn->running_mean.view({1, 3, 1, 1})) / (bn->running_var.view({1, 3, 1, 1}) + 1e-5).sqrt();
  EXPECT_LT(test::max_abs_diff(bn->forward(x), want), 1e-6);
}

TEST(GhostBatchNorm, PluginSwapsEveryBatchNormAndChecksTheBatch) {
  auto model = cnn(0.1);
  const at::Tensor bias = model->named_state()[2].second;  // trunk.block0.bn.bias
  Registry r;
  register_builtins(r);
  auto algos = r.build(YAML::Load("[{ghost_batch_norm: {size: 8, running_stats: scaled}}]"), nullptr);
  algos[0]->set_name("ghost_batch_norm");
  State s;
  s.model = model.get();
  s.batch_size = 4;
  try {
    algos[0]->prepare_model(s);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the per-rank batch"), std::string::npos) << e.what();
  }
  s.batch_size = 32;
  algos[0]->prepare_model(s);
  int64_t ghost = 0, plain = 0;
  for (const auto& m : model->modules()) {
    if (auto* bn = dynamic_cast<GhostBatchNormImpl*>(m.get())) {
      EXPECT_EQ(bn->ghost.size, 8);
      EXPECT_EQ(bn->ghost.stats, GhostStats::Scaled);
      ++ghost;
    } else if (dynamic_cast<BatchNormImpl*>(m.get())) {
      ++plain;
    }
  }
  EXPECT_EQ(ghost, 2);
  EXPECT_EQ(plain, 0);
  EXPECT_TRUE(model->named_state()[2].second.is_same(bias));  // the same tensors under the same names
}

TEST(GhostBatchNorm, CalibrationUsesWholeBatches) {
  // An 8 x 2 batch whose two ghost chunks have means [3, 2] and [1, 2]: re-estimated
  // statistics are the whole batch's, [2, 2], not the last chunk's.
  GhostOptions o;
  o.size = 4;
  auto bn = std::make_shared<GhostBatchNormImpl>(BatchNormImpl(2), o);
  const at::Tensor x = at::tensor({3.f, 1.f, 3.f, 3.f, 3.f, 2.f, 3.f, 2.f, 1.f, 1.f, 1.f, 3.f, 1.f, 2.f, 1.f, 2.f}).view({8, 2});
  bn->train();
  bn->set_calibrating(true);
  {
    at::NoGradGuard no_grad;
    bn->forward(x);
  }
  bn->set_calibrating(false);
  EXPECT_TRUE(at::allclose(bn->running_mean, at::tensor({2.f, 2.f}))) << bn->running_mean;
  EXPECT_TRUE(at::allclose(bn->running_var, std::get<0>(at::var_mean(x, {0}, /*unbiased=*/true)))) << bn->running_var;
  // Training itself still uses ghost chunks: the last chunk moves the statistics most.
  bn->forward(x);
  EXPECT_FALSE(at::allclose(bn->running_mean, at::tensor({2.f, 2.f})));
}

}  // namespace
}  // namespace oodt
