#include <gtest/gtest.h>

#include "core/evaluate.h"
#include "core/h5.h"
#include "core/state.h"
#include "test_util.h"

namespace oodt {
namespace {

TEST(Evaluate, CalibrationAccuracyAndLossMatchNumpy) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const at::Tensor logits = f.read("/ece/logits");
  const at::Tensor labels = f.read("/ece/labels");
  MetricSums sums;
  // Added in two parts, as ranks would: the result must not depend on the split.
  sums.add(logits.narrow(0, 0, 77), labels.narrow(0, 0, 77));
  sums.add(logits.narrow(0, 77, 123), labels.narrow(0, 77, 123));
  const SplitMetrics m = sums.finish();
  EXPECT_EQ(m.count, 200);
  EXPECT_NEAR(m.ece, f.read("/ece/ece").item<double>(), 1e-6);
  EXPECT_NEAR(m.accuracy, f.read("/ece/accuracy").item<double>(), 1e-12);
  EXPECT_NEAR(m.loss, f.read("/ece/nll").item<double>(), 1e-5);
  EXPECT_NEAR(m.confidence, f.read("/ece/mean_confidence").item<double>(), 1e-6);
  EXPECT_NEAR(expected_calibration_error(logits, labels), m.ece, 1e-12);
}

TEST(Evaluate, SumsSurviveThePackedAllReduceLayout) {
  MetricSums a;
  a.add(at::randn({10, 3}), at::randint(0, 3, {10}, at::kLong));
  std::vector<double> buf(MetricSums::kSize);
  a.to(buf.data());
  MetricSums b;
  b.from(buf.data());
  EXPECT_DOUBLE_EQ(a.finish().ece, b.finish().ece);
  EXPECT_DOUBLE_EQ(a.finish().loss, b.finish().loss);
}

TEST(Loss, SoftTargetsEqualHardLabelsWhenOneHot) {
  Batch b;
  b.labels = at::tensor({0, 2, 1}, at::kLong);
  const at::Tensor logits = at::randn({3, 3});
  const at::Tensor hard = classification_loss(logits, b);
  b.soft_targets = at::one_hot(b.labels, 3).to(at::kFloat);
  EXPECT_NEAR(classification_loss(logits, b).item<double>(), hard.item<double>(), 1e-6);
}

}  // namespace
}  // namespace oodt
