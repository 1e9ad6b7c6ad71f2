// Forward parity of the pretrained-architecture backbones with their Python references
// (torchvision, timm, open_clip), in float64. tests/golden/make_backbone_golden.py built each
// reference, filled every state-dict tensor with a hash of (tensor index, element index) and
// stored inputs and outputs, not weights. Here the zoo model gets the same values through the
// import name table (core/models/weight_maps.yaml): a wrong name, shape, layer order or
// forward step shows as a mismatch.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/config.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "core/weights.h"
#include "test_util.h"

namespace oodt {
namespace {

// The fixture's fill (its `formula` dataset): splitmix64 of (p << 32) + k, to [-1, 1).
double hash_u(uint64_t p, uint64_t k) {
  uint64_t z = (p << 32) + k + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Tensor number p of the reference, named `name` there, filled into `t` (float64 or int64).
void fill(at::Tensor& t, int64_t p, const std::string& name) {
  at::NoGradGuard no_grad;
  if (ends_with(name, "num_batches_tracked")) {
    t.zero_();
    return;
  }
  const int64_t n = t.numel();
  std::vector<double> v(static_cast<size_t>(n));
  double base = 0, scale = 0.1;
  if (ends_with(name, "running_var")) base = 1.0, scale = 0.5;
  else if (t.dim() == 1 && ends_with(name, "weight")) base = 1.0, scale = 0.2;
  else if (t.dim() >= 2) scale = std::sqrt(3.0) / std::sqrt(static_cast<double>(n / t.size(0)));
  for (int64_t k = 0; k < n; ++k) {
    const double u = hash_u(static_cast<uint64_t>(p), static_cast<uint64_t>(k));
    v[static_cast<size_t>(k)] = base == 0 ? u * scale : base + scale * u;
  }
  t.copy_(at::tensor(v, at::kDouble).view(t.sizes()));
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

TEST(Backbones, HashMatchesTheFixture) {
  h5::File f = h5::File::open(test::fixture("backbones.h5"));
  const at::Tensor want = f.read("hash_check");
  for (int64_t k = 0; k < want.numel(); ++k)
    EXPECT_EQ(hash_u(3, static_cast<uint64_t>(k)), want[k].item<double>()) << k;
}

struct Case {
  std::string group, arch;
};

class BackboneParity : public ::testing::TestWithParam<Case> {};

TEST_P(BackboneParity, ForwardMatchesTheReference) {
  const Case c = GetParam();
  h5::File f = h5::File::open(test::fixture("backbones.h5"));
  const std::string g = "/" + c.group + "/";
  const std::string source = f.read_text(g + "source");
  const bool features = f.read_text(g + "output") == "features";
  const at::Tensor x = f.read(g + "input");
  const at::Tensor want_eval = f.read(g + "eval");
  SCOPED_TRACE(f.read_text(g + "reference"));

  ConfigTree tree;
  tree.root["model"]["name"] = c.arch;
  ConfigReader cfg(tree.root["model"], "model", tree.origins);
  const int64_t classes = features ? 2 : want_eval.size(1);
  auto model = build_model(cfg, ModelShape{{x.size(1), x.size(2), x.size(3)}, classes});
  model->to(at::kDouble);
  std::map<std::string, at::Tensor> own;
  for (auto& [name, t] : model->named_state()) own[name] = t;

  const WeightMap& map = weight_map(source, c.arch);
  const auto names = lines(f.read_text(g + "names"));
  std::set<std::string> filled;
  for (size_t p = 0; p < names.size(); ++p) {
    const auto zoo = map.to_zoo(names[p]);
    ASSERT_TRUE(zoo.has_value()) << names[p] << " has no rule";
    auto it = own.find(*zoo);
    ASSERT_NE(it, own.end()) << names[p] << " -> " << *zoo << " is not in the model";
    fill(it->second, static_cast<int64_t>(p), names[p]);
    filled.insert(*zoo);
    // Export maps it back to the same name.
    EXPECT_EQ(map.to_source(*zoo).value_or("<none>"), names[p]);
  }
  for (const auto& [name, t] : own)
    if (!(features && name.rfind("head.", 0) == 0)) EXPECT_TRUE(filled.count(name)) << name << " was not filled";

  at::NoGradGuard no_grad;
  model->eval();
  at::Tensor got = features ? model->features(x) : model->forward(x);
  ASSERT_EQ(got.sizes(), want_eval.sizes());
  const double scale = want_eval.abs().max().item<double>();
  EXPECT_LT(test::max_abs_diff(got, want_eval), 1e-9 * scale) << "eval";
  if (f.exists(g + "train")) {
    model->train();
    got = model->forward(x);
    const at::Tensor want_train = f.read(g + "train");
    EXPECT_LT(test::max_abs_diff(got, want_train), 1e-9 * want_train.abs().max().item<double>()) << "train";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BackboneParity,
                         ::testing::Values(Case{"resnet18", "resnet18"}, Case{"resnet34", "resnet34"},
                                           Case{"resnet50", "resnet50"}, Case{"resnet101", "resnet101"},
                                           Case{"vit_b16", "vit_b16"}, Case{"vit_s16", "vit_s16"},
                                           Case{"tv_vit_b16", "vit_b16"}, Case{"clip_vit_b32", "clip_vit_b32"},
                                           Case{"clip_vit_b16", "clip_vit_b16"}),
                         [](const auto& info) { return info.param.group; });

}  // namespace
}  // namespace oodt
