// SSA: subsampled attention against a query-by-query torch reference and against dense
// attention with -inf on dropped keys; key sampling; the plugin's schedule and ensemble.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "algorithms/ssa/ssa.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "data/text_dataset.h"
#include "test_util.h"

namespace oodt {
namespace {

class SsaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SsaGolden, MatchesReferenceAndMaskedDenseOracle) {
  const h5::File f = h5::File::open(test::fixture("golden.h5"));
  const std::string g = "/ssa/" + GetParam() + "/";
  const at::Tensor q = f.read(g + "q").to(at::kFloat), k = f.read(g + "k").to(at::kFloat),
                   v = f.read(g + "v").to(at::kFloat);
  const bool causal = f.attr_int("/ssa/" + GetParam(), "causal") != 0;
  const at::Tensor begin = f.read(g + "begin"), end = f.read(g + "end");
  std::vector<KeepSet> sets;
  for (int64_t i = 0; i < begin.size(0); ++i)
    sets.push_back(KeepSet{begin[i].item<int64_t>(), end[i].item<int64_t>(), f.read(g + "keys" + std::to_string(i))});
  const at::Tensor out = subsampled_attention(q, k, v, sets, causal);
  EXPECT_LT(test::max_abs_diff(out, f.read(g + "out")), 1e-5);
  const at::Tensor oracle = dense_attention(q, k, v, allowed_mask(q.size(2), sets, causal), causal);
  EXPECT_LT(test::max_abs_diff(out, oracle), 1e-5);
  // And it is not dense attention.
  EXPECT_GT(test::max_abs_diff(out, dense_attention(q, k, v, at::Tensor(), causal)), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Torch, SsaGolden, ::testing::Values("uniform_full", "uniform_causal", "local_full", "local_causal"));

TEST(SsaSampling, UniformKeepsCeilNOverRSortedDistinctKeys) {
  at::manual_seed(1);
  SsaSampling o;
  o.ratio = 3;
  const auto sets = sample_keep_sets(100, o, false);
  ASSERT_EQ(sets.size(), 1u);
  const at::Tensor keys = sets[0].keys;
  EXPECT_EQ(keys.size(0), 34);
  EXPECT_TRUE(at::equal(keys, std::get<0>(keys.sort())));
  EXPECT_EQ(std::get<0>(at::_unique(keys)).size(0), 34);
}

TEST(SsaSampling, LocalKeepsNeighboursAndAboutNOverRKeys) {
  at::manual_seed(2);
  SsaSampling o;
  o.ratio = 4;
  o.pattern = KeyPattern::Local;
  o.block = 16;
  const int64_t n = 1024;
  double kept = 0;
  int64_t queries = 0;
  for (int draw = 0; draw < 50; ++draw) {
    for (const KeepSet& s : sample_keep_sets(n, o, false)) {
      const auto* k = s.keys.data_ptr<int64_t>();
      std::set<int64_t> keys(k, k + s.keys.numel());
      for (int64_t t = std::max<int64_t>(0, s.begin - 16); t < std::min(n, s.end + 16); ++t)
        ASSERT_TRUE(keys.count(t)) << "neighbour key " << t << " missing for queries " << s.begin;
      kept += static_cast<double>(s.keys.numel()) * static_cast<double>(s.end - s.begin);
      queries += s.end - s.begin;
    }
  }
  const double mean = kept / static_cast<double>(queries);
  EXPECT_NEAR(mean, n / 4.0, 0.05 * n / 4.0);
}

TEST(SsaSampling, CausalQueriesNeverHaveAnEmptySet) {
  at::manual_seed(3);
  SsaSampling o;
  o.ratio = 8;  // 2 keys of 16: most early queries have no kept key before them
  const at::Tensor q = at::randn({1, 2, 16, 4}), k = at::randn({1, 2, 16, 4}), v = at::randn({1, 2, 16, 4});
  for (int i = 0; i < 20; ++i) {
    const at::Tensor out = subsampled_attention(q, k, v, sample_keep_sets(16, o, true), true);
    EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  }
  // The first query can only see itself: its output is its own value.
  const at::Tensor out = subsampled_attention(q, k, v, sample_keep_sets(16, o, true), true);
  EXPECT_LT(test::max_abs_diff(out.select(2, 0), v.select(2, 0)), 1e-6);
}

std::shared_ptr<Model> vit(const std::string& extra = "") {
  at::manual_seed(4);
  ConfigReader cfg(YAML::Load("{name: vit, patch: 4, dim: 16, depth: 2, heads: 2" + extra + "}"), "model", nullptr);
  return build_model(cfg, ModelShape{{1, 8, 8}, 3});
}

TEST(SsaPlugin, SubsamplesThenSwitchesToDenseAtTheSameStep) {
  auto model = vit();
  SsaOptions o;
  o.finetune_fraction = 0.25;
  StochasticSubsampledAttention ssa(o);
  State s;
  s.model = model.get();
  s.max_steps = 100;
  const size_t params = model->parameters().size();
  ssa.prepare_model(s);
  EXPECT_EQ(model->parameters().size(), params);  // kernels have no parameters
  test::run_phase(ssa, Phase::FitStart, s);
  auto modes = [&] {
    std::vector<bool> v;
    for (const auto& m : model->modules())
      if (auto* k = dynamic_cast<SubsampledKernelImpl*>(m.get())) v.push_back(k->train);
    return v;
  };
  EXPECT_EQ(modes(), (std::vector<bool>{true, true}));
  EXPECT_EQ(ssa_dense_from(100, 0.25), 75);
  s.step = 74;
  test::run_phase(ssa, Phase::BeforeForward, s);
  EXPECT_EQ(modes(), (std::vector<bool>{true, true}));
  s.step = 75;
  test::run_phase(ssa, Phase::BeforeForward, s);
  EXPECT_EQ(modes(), (std::vector<bool>{false, false}));
}

TEST(SsaPlugin, EnsembleEvalAveragesProbabilitiesOfSubsampledPasses) {
  auto model = vit();
  SsaOptions o;
  o.ensemble = true;
  o.eval_passes = 5;
  StochasticSubsampledAttention ssa(o);
  State s;
  s.model = model.get();
  s.max_steps = 10;
  ssa.prepare_model(s);
  test::run_phase(ssa, Phase::FitStart, s);
  model->eval();
  const at::Tensor x = at::randn({3, 1, 8, 8});
  at::manual_seed(9);
  const at::Tensor ens = ssa.predict(*model, x);
  // The same passes by hand: same generator state, five subsampled eval passes.
  at::manual_seed(9);
  at::Tensor probs = at::zeros({3, 3});
  for (int e = 0; e < 5; ++e) probs += at::softmax(model->classify(model->features(x)), -1);
  EXPECT_LT(test::max_abs_diff(ens, (probs / 5).log()), 1e-5);
  EXPECT_NEAR(ens.exp().sum(1).mean().item<double>(), 1.0, 1e-5);
  // Dense eval (eval: dense) is deterministic; the ensemble differs from it.
  auto dense_model = vit();
  StochasticSubsampledAttention dense(SsaOptions{});
  State d;
  d.model = dense_model.get();
  d.max_steps = 10;
  dense.prepare_model(d);
  dense_model->eval();
  EXPECT_TRUE(at::equal(dense.predict(*dense_model, x), dense.predict(*dense_model, x)));
  EXPECT_GT(test::max_abs_diff(dense.predict(*dense_model, x), ens), 1e-4);
}

TEST(SsaPlugin, RefusesModelsWithoutAttention) {
  at::manual_seed(1);
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [4]}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 2, 2}, 2});
  StochasticSubsampledAttention ssa(SsaOptions{});
  State s;
  s.model = model.get();
  EXPECT_THROW(ssa.prepare_model(s), ConfigError);
}

TEST(Transformers, VitOnPixelTokensAndByteLanguageModel) {
  at::manual_seed(5);
  ConfigReader vcfg(YAML::Load("{name: vit, patch: 1, dim: 8, depth: 1, heads: 2, pool: mean}"), "model", nullptr);
  auto v = build_model(vcfg, ModelShape{{1, 28, 28}, 10});  // 784 tokens
  EXPECT_EQ(v->forward(at::randn({2, 1, 28, 28})).sizes(), (std::vector<int64_t>{2, 10}));
  ConfigReader lcfg(YAML::Load("{name: transformer_lm, dim: 16, depth: 2, heads: 4}"), "model", nullptr);
  auto lm = build_model(lcfg, ModelShape{{12}, 256});
  const at::Tensor tokens = at::randint(0, 256, {3, 12}, at::kLong);
  EXPECT_EQ(lm->forward(tokens).sizes(), (std::vector<int64_t>{36, 256}));
  // Causal: changing the last token leaves every earlier prediction unchanged.
  lm->eval();
  at::Tensor t2 = tokens.clone();
  t2[0][11] = (t2[0][11].item<int64_t>() + 1) % 256;
  EXPECT_LT(test::max_abs_diff(lm->forward(tokens).narrow(0, 0, 11), lm->forward(t2).narrow(0, 0, 11)), 1e-6);
}

TEST(TextDataset, WindowsPredictTheNextByte) {
  const auto dir = test::temp_dir("text");
  const std::string path = dir + "/corpus.txt";
  std::string text;
  for (int i = 0; i < 500; ++i) text += static_cast<char>('a' + i % 26);
  std::ofstream(path) << text;
  DataOptions o;
  o.type = "text";
  o.path = path;
  o.seq_len = 9;
  o.batch_size = 4;
  TextDataset ds(o, 0, 0, 1);
  EXPECT_EQ(ds.domains()[0].name, "corpus");
  EXPECT_EQ(ds.windows("in").size() + ds.windows("out").size(), 50u);  // 500 / (9 + 1)
  const Batch b = ds.train_batch(3);
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{4, 9}));
  ASSERT_EQ(b.labels.size(0), 36);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t t = 0; t < 9; ++t) {
      const int64_t x = b.inputs[i][t].item<int64_t>(), y = b.labels[i * 9 + t].item<int64_t>();
      EXPECT_EQ(y, 'a' + (x - 'a' + 1) % 26);
    }
}

}  // namespace
}  // namespace oodt
