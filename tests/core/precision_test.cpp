// train.precision (core/precision.h): the loss scaler against GradScaler's rules worked by
// hand, the autocast scope, one bf16 training step against torch 1.13's autocast
// (tests/golden/make_precision_golden.py), the trainer's dtypes under bf16, and a resumed
// fp16 (simulated) run against an uninterrupted one.
#include <gtest/gtest.h>
#include <torch/version.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "algorithms/lsq/lsq.h"
#include "core/agreement.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "core/optim.h"
#include "core/precision.h"
#include "core/registry.h"
#include "launch/setup.h"
#include "test_util.h"

namespace oodt {
namespace {

LossScaleOptions scaler_options(double init, double growth, double backoff, int64_t interval, double min) {
  LossScaleOptions o;
  o.init = init;
  o.growth_factor = growth;
  o.backoff_factor = backoff;
  o.growth_interval = interval;
  o.min = min;
  return o;
}

TEST(LossScaler, DefaultsAreGradScalers) {
  const LossScaleOptions o;
  EXPECT_EQ(o.init, 65536.0);
  EXPECT_EQ(o.growth_factor, 2.0);
  EXPECT_EQ(o.backoff_factor, 0.5);
  EXPECT_EQ(o.growth_interval, 2000);
  const LossScaler s(o);
  EXPECT_EQ(s.scale(), 65536.0);
  EXPECT_EQ(s.growth_tracker(), 0);
}

// GradScaler.update(): an overflow multiplies the scale by backoff_factor and resets the
// tracker; otherwise the tracker counts, and when it reaches growth_interval the scale is
// multiplied by growth_factor and the tracker resets. The sequence worked by hand, interval 3.
TEST(LossScaler, FollowsGradScalersRulesStepByStep) {
  LossScaler s(scaler_options(65536, 2, 0.5, 3, 1));
  struct Step {
    bool overflow;
    double scale;
    int64_t tracker;
  };
  const Step steps[] = {
      {false, 65536, 1}, {false, 65536, 2}, {false, 131072, 0}, {false, 131072, 1}, {true, 65536, 0},
      {false, 65536, 1}, {false, 65536, 2}, {false, 131072, 0}, {true, 65536, 0},   {true, 32768, 0},
      {false, 32768, 1}, {true, 16384, 0},
  };
  int i = 0;
  for (const Step& st : steps) {
    s.update(st.overflow);
    EXPECT_EQ(s.scale(), st.scale) << "after update " << ++i;
    EXPECT_EQ(s.growth_tracker(), st.tracker) << "after update " << i;
  }
}

TEST(LossScaler, ScaleIsAFloat32LikeGradScalers) {
  // 3 * 0.3 = 0.9 in double; GradScaler's float32 scale holds float(0.9).
  LossScaler s(scaler_options(3, 2, 0.3, 5, 0.5));
  s.update(true);
  EXPECT_EQ(s.scale(), static_cast<double>(0.9f));
  EXPECT_NE(s.scale(), 0.9);
  // Growth that would overflow float32 keeps the scale (and still restarts the count).
  LossScaler big(scaler_options(std::ldexp(1.0, 127), 2, 0.5, 1, 1));
  big.update(false);
  EXPECT_EQ(big.scale(), std::ldexp(1.0, 127));
  EXPECT_EQ(big.growth_tracker(), 0);
}

TEST(LossScaler, NeverBacksOffBelowTheMinimum) {
  LossScaler s(scaler_options(4, 2, 0.5, 10, 2));
  EXPECT_TRUE(s.can_back_off());
  s.update(true);
  EXPECT_EQ(s.scale(), 2.0);
  EXPECT_FALSE(s.can_back_off());
  s.update(true);
  EXPECT_EQ(s.scale(), 2.0);
}

TEST(LossScaler, StateRoundTrips) {
  LossScaler a(scaler_options(1024, 2, 0.5, 4, 1));
  a.update(false), a.update(false), a.update(true), a.update(false);
  LossScaler b(scaler_options(8, 2, 0.5, 4, 1));
  b.load(a.state());
  EXPECT_EQ(b.scale(), 512.0);
  EXPECT_EQ(b.growth_tracker(), 1);
}

PrecisionOptions options_from(const std::string& yaml) {
  ConfigReader train(YAML::Load(yaml), "train", nullptr);
  return PrecisionOptions::from_config(train);
}

void expect_config_error(const std::string& yaml, const std::string& key) {
  try {
    options_from(yaml);
    FAIL() << "accepted: " << yaml;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(PrecisionOptions, ReadsAndValidatesTheKeys) {
  const PrecisionOptions o = options_from("{precision: fp16, loss_scale: {init: 1024, growth_interval: 10}}");
  EXPECT_EQ(o.mode, PrecisionMode::Fp16);
  EXPECT_EQ(o.loss_scale.init, 1024.0);
  EXPECT_EQ(o.loss_scale.growth_interval, 10);
  EXPECT_EQ(options_from("{}").mode, PrecisionMode::Fp32);
  EXPECT_EQ(options_from("{precision: bf16}").mode, PrecisionMode::Bf16);
  expect_config_error("{precision: fp8}", "train.precision");
  expect_config_error("{loss_scale: {backoff_factor: 1.5}}", "train.loss_scale.backoff_factor");
  expect_config_error("{loss_scale: {growth_factor: 1}}", "train.loss_scale.growth_factor");
  expect_config_error("{loss_scale: {growth_interval: 0}}", "train.loss_scale.growth_interval");
  expect_config_error("{loss_scale: {init: 8, min: 16}}", "train.loss_scale.min");
  expect_config_error("{loss_scale: {inti: 8}}", "inti");
}

TEST(Autocast, IsOnInsideTheScopeOnlyAndRestoresWhatWasThere) {
  ASSERT_FALSE(autocast_enabled(at::kCPU));
  const at::Tensor w = at::randn({4, 3}), x = at::randn({2, 3});
  {
    const Autocast outer(at::kCPU, at::kBFloat16);
    EXPECT_TRUE(autocast_enabled(at::kCPU));
    EXPECT_EQ(at::linear(x, w).scalar_type(), at::kBFloat16);
    { const Autocast inner(at::kCPU, at::kBFloat16); }
    EXPECT_TRUE(autocast_enabled(at::kCPU));  // the outer scope's state came back
    // The fp32 islands: float32() undoes autocast's dtype.
    EXPECT_EQ(float32(at::linear(x, w)).scalar_type(), at::kFloat);
  }
  EXPECT_FALSE(autocast_enabled(at::kCPU));
  EXPECT_EQ(at::linear(x, w).scalar_type(), at::kFloat);
  { const Autocast none; }
  EXPECT_FALSE(autocast_enabled(at::kCPU));
}

TEST(Precision, AutocastOnlyForBf16AndRealFp16) {
  StepAgreement agreement;
  PrecisionOptions o;
  o.mode = PrecisionMode::Bf16;
  {
    Precision p(o, agreement);
    const Autocast cast = p.autocast();
    EXPECT_TRUE(autocast_enabled(at::kCPU));
    EXPECT_EQ(p.loss_scale(), 1.0);
  }
  EXPECT_FALSE(autocast_enabled(at::kCPU));
  o.mode = PrecisionMode::Fp16;
  o.simulate_fp16 = true;
  Precision p(o, agreement);
  {
    const Autocast cast = p.autocast();
    EXPECT_FALSE(autocast_enabled(at::kCPU));  // simulated: fp32 arithmetic, fp16's scaling
  }
  EXPECT_EQ(p.loss_scale(), 65536.0);
}

// A model with two parameters holding gradients, for unscale().
struct Grads {
  std::shared_ptr<Model> model;
  std::unique_ptr<Communicator> comm = make_local_communicator();
  State s;
  Grads() {
    ConfigReader cfg(YAML::Load("{name: mlp, hidden: [3]}"), "model", nullptr);
    model = build_model(cfg, ModelShape{{1, 2, 2}, 2});
    s.model = model.get();
    s.comm = comm.get();
  }
  // Every gradient g = (index + 1) / 8 * S: exact, and exactly g after unscaling.
  void fill(double scale) {
    int i = 0;
    for (auto& p : model->parameters()) p.mutable_grad() = at::full_like(p, (++i) / 8.0 * scale);
  }
  void expect_unscaled() {
    int i = 0;
    for (auto& p : model->parameters()) EXPECT_TRUE(p.grad().eq((++i) / 8.0).all().item<bool>()) << i;
  }
};

TEST(Precision, UnscalesOrReportsAnOverflowThroughTheAgreement) {
  StepAgreement agreement;
  PrecisionOptions o;
  o.mode = PrecisionMode::Fp16;
  o.simulate_fp16 = true;
  o.loss_scale = scaler_options(1024, 2, 0.5, 2, 256);
  Precision p(o, agreement);
  Grads g;

  // A finite step: gradients divided by S, the update allowed.
  g.fill(1024);
  EXPECT_TRUE(p.checks_gradients());
  p.unscale(g.s);
  agreement.agree(*g.comm);
  g.expect_unscaled();
  EXPECT_TRUE(p.allows_update());
  EXPECT_EQ(p.loss_scale(), 1024.0);

  // An Inf in one gradient: the flag goes up, every gradient is left as it was, the update is
  // dropped and the scale backs off.
  g.fill(1024);
  g.model->parameters()[1].mutable_grad().view({-1})[0] = std::numeric_limits<float>::infinity();
  p.unscale(g.s);
  agreement.agree(*g.comm);
  EXPECT_EQ(g.model->parameters()[0].grad().view({-1})[0].item<double>(), 1024.0 / 8);
  EXPECT_FALSE(p.allows_update());
  EXPECT_EQ(p.loss_scale(), 512.0);

  // Two finite steps: the scale grows back (interval 2).
  for (int k = 0; k < 2; ++k) {
    g.fill(p.loss_scale());
    p.unscale(g.s);
    agreement.agree(*g.comm);
    g.expect_unscaled();
    EXPECT_TRUE(p.allows_update());
  }
  EXPECT_EQ(p.loss_scale(), 1024.0);

  // The report: the scale and the skips since the last report.
  State metrics;
  p.report(metrics);
  EXPECT_EQ(metrics.metrics.at("precision.loss_scale"), 1024.0);
  EXPECT_EQ(metrics.metrics.at("precision.overflow_skips"), 1.0);
  p.report(metrics);
  EXPECT_EQ(metrics.metrics.at("precision.overflow_skips"), 0.0);

  // Down to the minimum: there the overflow is a non-finite gradient for train.nonfinite.
  for (int k = 0; k < 2; ++k) {
    g.fill(p.loss_scale());
    g.model->parameters()[0].mutable_grad().fill_(std::numeric_limits<float>::quiet_NaN());
    p.unscale(g.s);
    agreement.agree(*g.comm);
    EXPECT_FALSE(p.allows_update());
  }
  EXPECT_EQ(p.loss_scale(), 256.0);
  EXPECT_FALSE(p.checks_gradients());
  p.unscale(g.s);
  agreement.agree(*g.comm);
  EXPECT_TRUE(p.allows_update());  // not skipped here: the non-finite check decides
  EXPECT_EQ(p.loss_scale(), 256.0);
}

TEST(Precision, Fp32AndBf16LeaveGradientsAlone) {
  for (PrecisionMode mode : {PrecisionMode::Fp32, PrecisionMode::Bf16}) {
    StepAgreement agreement;
    PrecisionOptions o;
    o.mode = mode;
    Precision p(o, agreement);
    Grads g;
    g.fill(1);
    g.model->parameters()[0].mutable_grad().fill_(std::numeric_limits<float>::infinity());
    EXPECT_FALSE(p.checks_gradients());
    p.unscale(g.s);
    agreement.agree(*g.comm);
    EXPECT_TRUE(p.allows_update());  // train.nonfinite's business
    EXPECT_EQ(g.model->parameters()[1].grad().view({-1})[0].item<double>(), 2.0 / 8);
  }
}

// One training step of the mlp (linear, batch norm, relu, linear head) in bf16 against torch's
// autocast (1.13, or 2.11 for a LibTorch 2.x build) on the same weights and batch. The tolerance is a tenth of how far bf16 lands
// from fp32 here (the fixture has both), so a step that ran in fp32, or cast the wrong ops, fails.
TEST(Bf16, OneTrainingStepMatchesTorchAutocast) {
  // Each LibTorch's autocast against the same Python version's: 2.x's CPU autocast runs the
  // backward of a bf16 linear layer differently (gradients ~4e-3 apart from 1.13's here).
  const h5::File f = h5::File::open(test::fixture(TORCH_VERSION_MAJOR >= 2 ? "precision_bf16_torch2.h5" : "precision_bf16.h5"));
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [16], batch_norm: true}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 4, 4}, 3});
  {
    at::NoGradGuard no_grad;
    for (auto& kv : model->named_parameters()) kv.value().copy_(f.read("init/" + kv.key()));
    for (auto& kv : model->named_buffers())
      if (f.exists("init/" + kv.key())) kv.value().copy_(f.read("init/" + kv.key()));
  }
  OptimOptions oo;
  oo.lr = f.attr_double("/", "lr");
  oo.momentum = f.attr_double("/", "momentum");
  Optimizer optimizer(model->named_state(), oo);
  StepAgreement agreement;
  PrecisionOptions po;
  po.mode = PrecisionMode::Bf16;
  Precision precision(po, agreement);
  Batch batch;
  batch.inputs = f.read("x");
  batch.labels = f.read("y");

  model->train();
  at::Tensor logits, loss;
  {
    const Autocast cast = precision.autocast();
    logits = model->forward(batch.inputs);
    loss = classification_loss(logits, batch);
  }
  EXPECT_EQ(logits.scalar_type(), at::kBFloat16);
  EXPECT_EQ(loss.scalar_type(), at::kFloat);
  loss.backward();
  const double want = f.read("bf16/loss").item<double>(), fp32 = f.read("fp32/loss").item<double>();
  EXPECT_NEAR(loss.item<double>(), want, 1e-5);
  EXPECT_LT(test::max_abs_diff(logits.to(at::kFloat), f.read("bf16/logits")), 1e-6);
  EXPECT_GT(test::max_abs_diff(f.read("bf16/logits"), f.read("fp32/logits")), 1e-3);
  (void)fp32;

  for (auto& kv : model->named_parameters()) {
    const at::Tensor& g = kv.value().grad();
    ASSERT_TRUE(g.defined()) << kv.key();
    EXPECT_EQ(g.scalar_type(), at::kFloat) << kv.key();
    const at::Tensor want_g = f.read("bf16/grad/" + kv.key()), fp32_g = f.read("fp32/grad/" + kv.key());
    const double apart = test::max_abs_diff(want_g, fp32_g);
    EXPECT_LT(test::max_abs_diff(g, want_g), 0.1 * apart + 1e-7) << kv.key() << " (bf16 vs fp32: " << apart << ")";
  }
  optimizer.step(oo.lr);
  for (auto& kv : model->named_parameters()) {
    EXPECT_EQ(kv.value().scalar_type(), at::kFloat) << kv.key();
    const at::Tensor want_p = f.read("bf16/after/" + kv.key()), fp32_p = f.read("fp32/after/" + kv.key());
    const double apart = test::max_abs_diff(want_p, fp32_p);
    EXPECT_LT(test::max_abs_diff(kv.value(), want_p), 0.1 * apart + 1e-7) << kv.key();
  }
  for (const auto& [k, v] : optimizer.state_dict())
    if (v.is_floating_point()) EXPECT_EQ(v.scalar_type(), at::kFloat) << k;
  for (auto& kv : model->named_buffers()) {
    if (!f.exists("bf16/after/" + kv.key())) continue;
    EXPECT_EQ(kv.value().scalar_type(), at::kFloat) << kv.key();
    const at::Tensor want_b = f.read("bf16/after/" + kv.key()), fp32_b = f.read("fp32/after/" + kv.key());
    const double apart = test::max_abs_diff(want_b, fp32_b);
    EXPECT_LT(test::max_abs_diff(kv.value(), want_b), 0.1 * apart + 1e-7) << kv.key();
  }
}

// LSQ under autocast multiplies integer levels (exact in bfloat16) and scales the product in
// float32: the layer's output is the fp32 fake-quantized layer's up to the rounding of that
// product to bfloat16 (2^-9 relative), with the steps' gradients in float32.
TEST(Bf16, LsqLayersKeepTheirGrid) {
  at::manual_seed(5);
  auto base = std::make_shared<LinearImpl>(24, 6);
  LsqLinearImpl layer(*base, 8, 8);
  const at::Tensor x = at::rand({10, 24});
  const at::Tensor fp32 = layer.forward(x).detach();  // initialises both steps
  at::Tensor y;
  {
    const Autocast cast(at::kCPU, at::kBFloat16);
    y = layer.forward(x);
  }
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  const at::Tensor bound = (fp32 - layer.bias.detach()).abs() * std::ldexp(1.0, -8) + 1e-6;
  EXPECT_TRUE(((y.detach() - fp32).abs() <= bound).all().item<bool>())
      << "max error " << test::max_abs_diff(y, fp32);
  y.sum().backward();
  EXPECT_EQ(layer.quant.weight.step.grad().scalar_type(), at::kFloat);
  EXPECT_EQ(layer.quant.input.step.grad().scalar_type(), at::kFloat);
  EXPECT_TRUE(std::isfinite(layer.quant.input.step.grad().item<double>()));

  // The operands are the levels / 2^bits: in [-1, 1] and exact in both 16-bit types, so their
  // product (24 terms here) stays far inside float16's range, where the raw levels' may not.
  const LayerQuant::GridOperands g = layer.quant.grid_operands(x, layer.weight);
  for (const at::Tensor& t : {g.x, g.w}) {
    EXPECT_LE(t.abs().max().item<double>(), 1.0);
    EXPECT_TRUE(at::equal(t.to(at::kHalf).to(at::kFloat), t));
    EXPECT_TRUE(at::equal(t.to(at::kBFloat16).to(at::kFloat), t));
    EXPECT_TRUE(at::equal((t * 256).round(), t * 256));  // integer levels of 8 bits
  }
  EXPECT_LE(at::linear(g.x, g.w).abs().max().item<double>(), 24.0);

  // More than 8 bits is refused under reduced precision, with the reason.
  LsqOptions wide;
  wide.weight_bits = 10;
  EXPECT_NE(Lsq(wide).capabilities().reduced_precision_refusal.find("10-bit"), std::string::npos);
  EXPECT_TRUE(Lsq(LsqOptions{}).capabilities().reduced_precision_refusal.empty());
}

std::string domain_yaml(const std::string& data, int64_t steps) {
  return "run: {seed: 3}\n"
         "data: {path: " + data + ", test_domains: [dom2], batch_size: 12, prefetch: 0}\n"
         "model: {name: cnn, channels: [4, 8], dropout: 0.0}\n"
         "optim: {name: sgd, lr: 0.05, momentum: 0.9}\n"
         "schedule: {name: constant, warmup_steps: 0}\n"
         "train: {steps: " + std::to_string(steps) + ", eval_every: 0, checkpoint_every: 0, threads: 1}\n";
}

TrainConfig config_of(const std::string& yaml, const std::vector<std::string>& sets, const std::string& run_dir) {
  ConfigTree tree;
  tree.merge(parse_yaml(yaml, "test config"), "test config");
  for (const auto& s : sets) tree.set(s);
  tree.set("run.dir=" + run_dir);
  Registry registry;
  register_builtins(registry);
  TrainConfig config = read_train_config(tree, registry);
  config.trainer.verbose = false;
  return config;
}

Communicator& local() {
  static const std::unique_ptr<Communicator> comm = make_local_communicator();
  return *comm;
}

TEST(Bf16, TrainerRunsForwardAndLossInBf16OnFloat32MasterWeights) {
  const std::string data = test::write_domain_file(test::temp_dir("precision"), 3, 40, 3);
  TrainConfig config = config_of(domain_yaml(data, 3), {"train.precision=bf16"}, test::temp_dir("precision") + "/run");
  const std::unique_ptr<Trainer> trainer = start_training(config, local(), StartOptions{});
  trainer->fit();
  const State& s = trainer->state();
  EXPECT_EQ(s.outputs.scalar_type(), at::kBFloat16);  // the forward pass ran under autocast
  EXPECT_EQ(s.loss.scalar_type(), at::kFloat);
  EXPECT_TRUE(std::isfinite(s.loss.item<double>()));
  EXPECT_FALSE(autocast_enabled(at::kCPU));  // and nothing else does
  for (const auto& kv : trainer->model().named_parameters()) {
    EXPECT_EQ(kv.value().scalar_type(), at::kFloat) << kv.key();
    ASSERT_TRUE(kv.value().grad().defined()) << kv.key();
    EXPECT_EQ(kv.value().grad().scalar_type(), at::kFloat) << kv.key();
  }
  for (const auto& [k, v] : s.optimizer->state_dict())
    if (v.is_floating_point()) EXPECT_EQ(v.scalar_type(), at::kFloat) << k;
}

TEST(Precision, Fp16OnACpuIsRefused) {
  const std::string data = test::write_domain_file(test::temp_dir("precision"), 3, 40, 3);
  TrainConfig config = config_of(domain_yaml(data, 3), {"train.precision=fp16"}, test::temp_dir("precision") + "/run");
  try {
    start_training(config, local(), StartOptions{});
    FAIL() << "fp16 on a CPU was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
}

// fp16 (simulated on the CPU) with an overflow injected at step 3 of 6, scale 1024, growth
// every 2 steps: by hand, 1024 -> 2048 (step 2) -> 1024 (step 3, skipped) -> 2048 (step 5),
// tracker 1 after step 6. A run stopped after step 4 and resumed ends bit-identical, scaler
// included.
struct Fp16Run {
  std::string dir;
  std::unique_ptr<Trainer> trainer;
};

Fp16Run fp16_run(const std::string& data, const std::string& dir, bool resume) {
  TrainConfig config = config_of(domain_yaml(data, 6),
                                 {"train.precision=fp16", "train.loss_scale.init=1024", "train.loss_scale.growth_interval=2"},
                                 dir);
  config.trainer.precision.simulate_fp16 = true;
  config.trainer.precision.before_overflow_check = [](State& s) {
    if (s.step + 1 != 3) return;
    at::NoGradGuard no_grad;
    s.model->parameters().front().mutable_grad().fill_(std::numeric_limits<float>::infinity());
  };
  StartOptions start;
  start.resume = resume;
  return {dir, start_training(config, local(), start)};
}

TEST(Fp16Simulated, ResumeRestoresTheLossScaleBitIdentically) {
  const std::string data = test::write_domain_file(test::temp_dir("precision"), 3, 40, 3);
  const std::string a = test::temp_dir("precision_a") + "/run", b = test::temp_dir("precision_b") + "/run";
  {
    Fp16Run whole = fp16_run(data, a, false);
    whole.trainer->fit();
  }
  {
    Fp16Run first = fp16_run(data, b, false);
    first.trainer->fit(4);
  }
  {
    const Checkpoint at4 = read_checkpoint(b + "/" + checkpoint_name(4));
    const at::Tensor ls = at4.trainer.at("loss_scaler").to(at::kDouble);
    EXPECT_EQ(ls[0].item<double>(), 1024.0);  // backed off at step 3
    EXPECT_EQ(ls[1].item<double>(), 1.0);     // one finite step since
    EXPECT_EQ(ls[2].item<double>(), 1.0);     // the skip, not reported yet
  }
  {
    Fp16Run rest = fp16_run(data, b, true);
    EXPECT_EQ(rest.trainer->state().step, 4);
    rest.trainer->fit();
  }
  const Checkpoint ca = read_checkpoint(a + "/" + checkpoint_name(6));
  const Checkpoint cb = read_checkpoint(b + "/" + checkpoint_name(6));
  const at::Tensor la = ca.trainer.at("loss_scaler").to(at::kDouble);
  EXPECT_EQ(la[0].item<double>(), 2048.0);
  EXPECT_EQ(la[1].item<double>(), 1.0);
  EXPECT_TRUE(at::equal(la, cb.trainer.at("loss_scaler").to(at::kDouble)));
  ASSERT_EQ(ca.model.size(), cb.model.size());
  for (const auto& [k, v] : ca.model) EXPECT_TRUE(at::equal(v, cb.model.at(k))) << k;
  for (const auto& [k, v] : ca.optimizer) EXPECT_TRUE(at::equal(v, cb.optimizer.at(k))) << k;
}

}  // namespace
}  // namespace oodt
