// LSQ quantizers, the SAGM direction and GAQAT's disorder against independent Python
// computations (tests/golden/make_golden.py), and the lsq plugin's model surgery.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "algorithms/gaqat/gaqat.h"
#include "algorithms/lsq/lsq.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "test_util.h"

namespace oodt {
namespace {

TEST(Lsq, ForwardAndGradientsInsideAndOutsideTheRange) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const at::Tensor u = f.read("/lsq/upstream").to(at::kFloat);
  for (const char* name : {"signed4", "unsigned3"}) {
    const std::string g = std::string("/lsq/") + name;
    const auto bits = static_cast<int64_t>(f.attr_double(g, "bits"));
    const bool is_signed = f.attr_double(g, "signed") != 0;
    const auto [qn, qp] = lsq_range(bits, is_signed);
    at::Tensor x = f.read("/lsq/x").to(at::kFloat).set_requires_grad(true);
    at::Tensor step = at::full({}, f.attr_double(g, "step"), at::kFloat).set_requires_grad(true);
    const at::Tensor q = lsq_quantize(x, step, qn, qp, 1.0 / std::sqrt(64.0 * static_cast<double>(qp)));
    (q * u).sum().backward();
    EXPECT_LT(test::max_abs_diff(q, f.read(g + "/q")), 1e-5) << name;
    EXPECT_LT(test::max_abs_diff(x.grad(), f.read(g + "/dx")), 1e-6) << name;
    EXPECT_NEAR(step.grad().item<double>(), f.read(g + "/ds").item<double>(), 1e-5) << name;
    EXPECT_NEAR(lsq_initial_step(x, qp), f.read(g + "/init").item<double>(), 1e-6) << name;
  }
}

TEST(Sagm, DirectionMatchesReferenceAndLeavesBatchNormStatistics) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [4], batch_norm: true}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 2, 2}, 3});
  TensorMap w = module_state(*model);
  for (const auto& k : f.list("/sagm/w")) w[k] = f.read("/sagm/w/" + k).to(at::kFloat);
  load_module_state(*model, w, "fixture");
  auto comm = make_local_communicator();
  State s;
  s.model = model.get();
  s.comm = comm.get();
  s.batch.inputs = f.read("/sagm/x").to(at::kFloat);
  s.batch.labels = f.read("/sagm/y").to(at::kLong);
  model->train();
  classification_loss(model->forward(s.batch.inputs), s.batch).backward();  // the step's first pass
  std::vector<at::Tensor> params;
  for (auto& p : model->parameters()) params.push_back(p);
  const auto before = module_state(*model);
  sagm_second_pass(s, params, f.attr_double("/sagm", "rho"), f.attr_double("/sagm", "alpha"));
  for (const auto& kv : model->named_parameters()) {
    EXPECT_LT(test::max_abs_diff(kv.value().grad(), f.read("/sagm/combined/" + kv.key())), 1e-5) << kv.key();
    EXPECT_TRUE(kv.value().equal(before.at(kv.key()))) << kv.key() << " not restored";
  }
  // The running statistics are those of the first pass only.
  EXPECT_LT(test::max_abs_diff(module_state(*model).at("trunk.bn0.running_mean"), f.read("/sagm/running_mean")), 1e-6);
  EXPECT_LT(test::max_abs_diff(module_state(*model).at("trunk.bn0.running_var"), f.read("/sagm/running_var")), 1e-5);
}

TEST(Gaqat, DisorderOfASignSequence) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const at::Tensor seq = f.read("/disorder/signs");
  for (int64_t n : {4, 10, 12}) {
    std::deque<int> window;
    for (int64_t i = seq.size(0) - n; i < seq.size(0); ++i) window.push_back(static_cast<int>(seq[i].item<int64_t>()));
    EXPECT_DOUBLE_EQ(sign_disorder(window), f.read("/disorder/window" + std::to_string(n)).item<double>()) << n;
  }
  EXPECT_EQ(sign_disorder({}), 0.0);
}

TEST(Lsq, PluginQuantizesEveryLayerWithWiderEdges) {
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [4, 8], dropout: 0}"), "model", nullptr);
  at::manual_seed(0);
  auto model = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  const at::Tensor x = at::rand({6, 1, 8, 8});
  model->eval();
  const at::Tensor plain = model->forward(x);
  const auto before = module_state(*model);
  State s;
  s.model = model.get();
  LsqOptions o;
  o.weight_bits = 4, o.input_bits = 3, o.first_last_bits = 8;
  Lsq(o).prepare_model(s);
  std::vector<std::pair<int64_t, int64_t>> bits;
  for_each_quantized_layer(*model, [&](const std::string&, LayerQuant& q) { bits.emplace_back(q.weight.bits, q.input.bits); });
  EXPECT_EQ(bits, (std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {4, 3}, {8, 8}}));
  const auto names = module_state(*model);
  for (const char* n : {"trunk.block0.conv.weight_step", "trunk.block1.conv.input_step", "head.fc.weight_bits"})
    EXPECT_TRUE(names.count(n)) << n;
  for (const auto& [n, t] : before) EXPECT_TRUE(names.at(n).is_same(t)) << n << ": surgery keeps the tensors";
  // Quantized (steps initialised from this batch) the output moves, but not far.
  const at::Tensor q = model->forward(x);
  EXPECT_GT(test::max_abs_diff(q, plain), 1e-4);
  EXPECT_LT(test::max_abs_diff(q, plain), 0.5 * plain.abs().max().item<double>());
}

TEST(Lsq, InputSignsComeFromTheFirstBatch) {
  // Images in [0, 1) into the patch embedding: unsigned; LayerNorm outputs into the attention
  // and MLP projections, and into the head: signed.
  ConfigReader cfg(YAML::Load("{name: vit, patch: 4, dim: 16, depth: 1, heads: 2}"), "model", nullptr);
  at::manual_seed(0);
  auto model = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  State s;
  s.model = model.get();
  Lsq(LsqOptions{}).prepare_model(s);
  model->train();
  model->forward(at::rand({4, 1, 8, 8}));
  std::map<std::string, int64_t> sign;
  for_each_quantized_layer(*model, [&](const std::string& path, LayerQuant& q) {
    sign[path] = q.input_signed.item<int64_t>();
    EXPECT_EQ(q.input.is_signed, sign[path] != 0) << path;
    EXPECT_GT(q.input.step.item<double>(), 0) << path;
  });
  EXPECT_EQ(sign.at("trunk.patch.proj"), 0);
  for (const char* p : {"trunk.blocks.0.attn.qkv", "trunk.blocks.0.attn.proj", "trunk.blocks.0.fc1", "trunk.blocks.0.fc2", "head.fc"})
    EXPECT_EQ(sign.at(p), 1) << p;
  // A plain model built from config takes a quantized checkpoint's layers back.
  auto plain = build_model(cfg, ModelShape{{1, 8, 8}, 3});
  EXPECT_EQ(restore_recorded_quantizers(*plain, module_state(*model)), static_cast<int64_t>(sign.size()));
  load_module_state(*plain, module_state(*model), "quantized");
  model->eval(), plain->eval();
  const at::Tensor x = at::rand({2, 1, 8, 8});
  EXPECT_TRUE(at::equal(model->forward(x), plain->forward(x)));
}

}  // namespace
}  // namespace oodt
