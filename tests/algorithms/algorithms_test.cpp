// label_smoothing and mixup against torch (tests/golden/make_golden.py).
#include <gtest/gtest.h>

#include "algorithms/label_smoothing/label_smoothing.h"
#include "algorithms/mixup/mixup.h"
#include "core/h5.h"
#include "core/registry.h"
#include "test_util.h"

namespace oodt {
namespace {

TEST(LabelSmoothing, MatchesTorchCrossEntropyWithLabelSmoothing) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const at::Tensor logits = f.read("/label_smoothing/logits").to(at::kFloat).set_requires_grad(true);
  Batch b;
  b.labels = f.read("/label_smoothing/labels");
  smooth_targets(b, f.attr_double("/label_smoothing", "smoothing"), logits.size(1));
  const at::Tensor loss = classification_loss(logits, b);
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), f.read("/label_smoothing/loss").item<double>(), 1e-6);
  EXPECT_LT(test::max_abs_diff(logits.grad(), f.read("/label_smoothing/grad")), 1e-6);
}

TEST(LabelSmoothing, PluginSmoothsTheStepBatch) {
  LabelSmoothing ls(LabelSmoothingOptions{0.2});
  State s;
  s.num_classes = 4;
  s.batch.labels = at::tensor({1, 3}, at::kLong);
  test::run_phase(ls, Phase::BeforeLoss, s);
  const at::Tensor want = at::tensor({0.05f, 0.85f, 0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.85f}).reshape({2, 4});
  EXPECT_LT(test::max_abs_diff(s.batch.soft_targets, want), 1e-7);
}

class MixupGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MixupGolden, LossAndGradientsMatchTorch) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const std::string g = "/mixup/" + GetParam();
  Batch b;
  b.inputs = f.read(g + "/x").to(at::kFloat);
  b.labels = f.read(g + "/y");
  const at::Tensor W = f.read(g + "/W").to(at::kFloat).set_requires_grad(true);
  const at::Tensor bias = f.read(g + "/b").to(at::kFloat).set_requires_grad(true);
  const int64_t k = W.size(0);
  mix_batch(b, f.attr_double(g, "lam"), f.read(g + "/perm"), k);
  const double s = f.attr_double(g, "smoothing");
  if (s > 0) smooth_targets(b, s, k);
  const at::Tensor logits = at::linear(b.inputs.reshape({b.size(), -1}), W, bias);
  const at::Tensor loss = classification_loss(logits, b);
  loss.backward();
  EXPECT_NEAR(loss.item<double>(), f.read(g + "/loss").item<double>(), 1e-5);
  EXPECT_LT(test::max_abs_diff(W.grad(), f.read(g + "/grad_W")), 1e-5);
  EXPECT_LT(test::max_abs_diff(bias.grad(), f.read(g + "/grad_b")), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Torch, MixupGolden, ::testing::Values("plain", "smoothed"));

TEST(Mixup, DrawsDifferPerStepAndRepeatPerSeed) {
  auto draw = [](uint64_t seed) {
    Mixup m(MixupOptions{0.4});
    State s;
    s.num_classes = 3;
    s.batch.inputs = at::arange(8, at::kFloat).reshape({8, 1});
    s.batch.labels = at::zeros({8}, at::kLong);
    at::manual_seed(seed);
    test::run_phase(m, Phase::BeforeForward, s);
    return std::make_pair(m.last_lambda(), s.batch.inputs.clone());
  };
  const auto a = draw(1), b = draw(1), c = draw(2);
  EXPECT_EQ(a.first, b.first);
  EXPECT_TRUE(at::equal(a.second, b.second));
  EXPECT_NE(a.first, c.first);
  EXPECT_GT(a.first, 0.0);
  EXPECT_LT(a.first, 1.0);
}

}  // namespace
}  // namespace oodt
