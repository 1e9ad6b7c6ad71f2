// The input path on the CPU (core/device_feed.h): batches reach the model as they left the
// source, and train.channels_last trains the same model. tests/gpu/gpu_test.cpp checks the
// CUDA side.
#include <gtest/gtest.h>

#include <cmath>

#include "core/device_feed.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "core/trainer.h"
#include "train_steps.h"
#include "test_util.h"

namespace oodt {
namespace {

// A domain file of random 3-channel 8x8 images: with more than one channel and random pixels a
// tensor read in the wrong memory order gives other numbers, not the same ones by symmetry.
std::string random_image_file() {
  const std::string dir = test::temp_dir("device_feed");
  const int64_t domains = 3, per_domain = 40, n = domains * per_domain;
  at::manual_seed(11);
  const at::Tensor images = at::randint(0, 256, {n, 3, 8, 8}, at::kLong).to(at::kByte);
  const at::Tensor labels = at::arange(n, at::kLong).remainder(4);
  const at::Tensor doms = at::arange(n, at::kLong).div(per_domain, "floor");
  const std::string path = dir + "/rgb.h5";
  h5::File f = h5::File::create(path);
  f.write("/images", images, 16);
  f.write("/labels", labels);
  f.write("/domains", doms);
  f.set_attr("/", "domain_names", std::vector<std::string>{"a", "b", "c"});
  f.set_attr("/", "num_classes", int64_t{4});
  return path;
}

Batch sample_batch() {
  Batch b;
  b.inputs = at::rand({5, 3, 4, 6});
  b.labels = at::arange(5, at::kLong);
  b.domains = at::zeros({5}, at::kLong);
  return b;
}

TEST(DeviceFeed, OnCpuHandsOverTheSourcesOwnTensors) {
  DeviceFeed feed(at::Device(at::kCPU), false);
  EXPECT_FALSE(feed.asynchronous());
  const Batch host = sample_batch();
  const Batch got = feed.copy(host);
  // Nothing copied, nothing re-laid out: the CPU path is what it was before the feed existed.
  EXPECT_EQ(got.inputs.data_ptr(), host.inputs.data_ptr());
  EXPECT_EQ(got.labels.data_ptr(), host.labels.data_ptr());
  EXPECT_EQ(got.domains.data_ptr(), host.domains.data_ptr());
  EXPECT_FALSE(got.soft_targets.defined());
}

TEST(DeviceFeed, ChannelsLastReLaysOutImagesOnly) {
  DeviceFeed feed(at::Device(at::kCPU), true);
  const Batch host = sample_batch();
  const Batch got = feed.copy(host);
  ASSERT_TRUE(host.inputs.is_contiguous());
  EXPECT_FALSE(got.inputs.is_contiguous());
  EXPECT_TRUE(got.inputs.is_contiguous(at::MemoryFormat::ChannelsLast));
  // [N, C, H, W] strides of a channels_last tensor: C is the fastest dimension.
  EXPECT_EQ(got.inputs.strides(), (at::IntArrayRef{3 * 4 * 6, 1, 6 * 3, 3}));
  EXPECT_TRUE(at::equal(got.inputs, host.inputs));
  EXPECT_EQ(got.labels.data_ptr(), host.labels.data_ptr());
  // Token batches ([N, L]) are not images: left alone.
  Batch text;
  text.inputs = at::arange(12, at::kLong).view({3, 4});
  EXPECT_EQ(feed.copy(text).inputs.data_ptr(), text.inputs.data_ptr());
}

std::shared_ptr<Model> model_from(const std::string& yaml, std::vector<int64_t> input) {
  ConfigTree tree;
  tree.merge(parse_yaml(yaml, "test"), "test");
  ConfigReader cfg(tree.root, "model", tree.origins);
  return build_model(cfg, ModelShape{std::move(input), 4});
}

TEST(ChannelsLast, ConvertsConvWeightsAndKeepsTheFunction) {
  at::manual_seed(5);
  auto model = model_from("{name: cnn, channels: [4, 8], dropout: 0.0}", {3, 8, 8});
  model->eval();
  const at::Tensor x = at::rand({6, 3, 8, 8});
  const at::Tensor before = model->forward(x);
  EXPECT_FALSE(uses_channels_last(*model));
  use_channels_last(*model, "train.channels_last");
  EXPECT_TRUE(uses_channels_last(*model));
  int64_t four_d = 0;
  for (const auto& p : model->parameters())
    if (p.dim() == 4) {
      EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast));
      ++four_d;
    }
  EXPECT_EQ(four_d, 2);  // the two convolutions
  // The same function up to summation order, with both input layouts.
  EXPECT_LT(test::max_abs_diff(model->forward(x), before), 1e-5);
  EXPECT_LT(test::max_abs_diff(model->forward(x.contiguous(at::MemoryFormat::ChannelsLast)), before), 1e-5);
}

TEST(ChannelsLast, RefusesAModelWithoutConvolutions) {
  auto model = model_from("{name: mlp, hidden: [8]}", {3, 8, 8});
  try {
    use_channels_last(*model, "train.channels_last");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.channels_last"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no convolutions"), std::string::npos) << e.what();
  }
}

// Training in channels_last is the same training: every step's loss and the final evaluation
// agree with the default layout up to float rounding (different summation orders inside the
// convolutions). The tolerance, 1e-4 relative, is far below what a wrongly ordered tensor
// does: random 3-channel images read in the wrong order are other images.
TEST(ChannelsLast, TrainsLikeTheDefaultLayoutOnCpu) {
  const std::string data = random_image_file();
  const std::string yaml = "run: {seed: 4}\n"
                           "data: {path: " + data + ", test_domains: [c], batch_size: 12, prefetch: 0}\n"
                           "model: {name: cnn, channels: [4, 8], dropout: 0.0}\n"
                           "optim: {name: sgd, lr: 0.1, momentum: 0.9}\n"
                           "schedule: {name: constant, warmup_steps: 0}\n"
                           "train: {steps: 6, eval_every: 0, checkpoint_every: 0, threads: 1}\n";
  const test::StepLosses plain = test::train_steps("", yaml, {});
  const test::StepLosses cl = test::train_steps("", yaml, {"train.channels_last=true"});
  EXPECT_FALSE(plain.channels_last);
  EXPECT_TRUE(cl.channels_last);  // still channels_last after the optimizer's updates
  ASSERT_EQ(plain.loss.size(), 6u);
  ASSERT_EQ(cl.loss.size(), 6u);
  // The losses move: a comparison of constant numbers would prove nothing.
  EXPECT_GT(std::fabs(plain.loss.front() - plain.loss.back()), 1e-3);
  for (size_t i = 0; i < plain.loss.size(); ++i)
    EXPECT_NEAR(cl.loss[i], plain.loss[i], 1e-4 * std::max(1.0, std::fabs(plain.loss[i]))) << "step " << i + 1;
  ASSERT_EQ(cl.metrics.size(), plain.metrics.size());
  for (size_t i = 0; i < plain.metrics.size(); ++i) {
    EXPECT_EQ(cl.metrics[i].count, plain.metrics[i].count);
    EXPECT_NEAR(cl.metrics[i].loss, plain.metrics[i].loss, 1e-4 * std::max(1.0, plain.metrics[i].loss));
  }
}

TEST(ChannelsLast, ConfigKeysDefaultToOff) {
  ConfigTree tree;
  TrainerOptions o = TrainerOptions::from_config(tree);
  EXPECT_FALSE(o.channels_last);
  EXPECT_FALSE(o.cudnn_benchmark);
  tree.set("train.channels_last=true");
  tree.set("train.cudnn_benchmark=true");
  o = TrainerOptions::from_config(tree);
  EXPECT_TRUE(o.channels_last);
  EXPECT_TRUE(o.cudnn_benchmark);
  ConfigTree bad;
  bad.set("train.channels_last=maybe");
  EXPECT_THROW(TrainerOptions::from_config(bad), ConfigError);
}

}  // namespace
}  // namespace oodt
