#include <gtest/gtest.h>

#include "core/error.h"
#include "core/models/model.h"

namespace oodt {
namespace {

std::shared_ptr<Model> make(const std::string& yaml, ModelShape shape) {
  ConfigReader cfg(YAML::Load(yaml), "model", nullptr);
  return build_model(cfg, shape);
}

void load_state(Model& into, Model& from) {
  at::NoGradGuard no_grad;
  const auto src = from.named_state();
  const auto dst = into.named_state();
  for (size_t i = 0; i < src.size(); ++i) dst[i].second.copy_(src[i].second);
}

int64_t count_params(const Model& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

TEST(Models, ShapesAndTrunkHeadSplit) {
  struct Case {
    std::string yaml;
    ModelShape shape;
    int64_t features;
  };
  const std::vector<Case> cases = {
      {"{name: mlp, hidden: [32, 16]}", {{1, 28, 28}, 10}, 16},
      {"{name: mlp, hidden: [8], batch_norm: true, dropout: 0.5}", {{2, 28, 28}, 2}, 8},
      {"{name: cnn, channels: [8, 16, 24]}", {{1, 28, 28}, 10}, 24},
      {"{name: resnet18, width: 8, stem: cifar}", {{3, 32, 32}, 10}, 64},
      {"{name: resnet50, width: 4}", {{3, 32, 32}, 10}, 128},
      {"{name: vit_s16, depth: 1, input_norm: imagenet}", {{3, 32, 32}, 10}, 384},
      {"{name: clip_vit, dim: 16, heads: 2, embed_dim: 12, normalize_features: true}", {{3, 16, 16}, 10}, 12},
  };
  for (const auto& c : cases) {
    auto m = make(c.yaml, c.shape);
    m->eval();
    std::vector<int64_t> in = {5};
    in.insert(in.end(), c.shape.input.begin(), c.shape.input.end());
    const at::Tensor x = at::randn(in);
    const at::Tensor h = m->features(x);
    EXPECT_EQ(h.sizes(), (std::vector<int64_t>{5, c.features})) << c.yaml;
    EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{5, c.shape.num_classes})) << c.yaml;
    EXPECT_TRUE(at::allclose(m->classify(h), m->forward(x))) << c.yaml;
  }
}

TEST(Models, StandardParameterCounts) {
  // CIFAR ResNet-18 (3x3 stem, widths 64..512, 10 classes): 11,173,962 parameters.
  EXPECT_EQ(count_params(*make("{name: resnet18, stem: cifar}", {{3, 32, 32}, 10})), 11173962);
  // torchvision's ImageNet models (1000 classes), as their model cards state.
  EXPECT_EQ(count_params(*make("{name: resnet18}", {{3, 32, 32}, 1000})), 11689512);
  EXPECT_EQ(count_params(*make("{name: resnet34}", {{3, 32, 32}, 1000})), 21797672);
  EXPECT_EQ(count_params(*make("{name: resnet50}", {{3, 32, 32}, 1000})), 25557032);
  EXPECT_EQ(count_params(*make("{name: resnet101}", {{3, 32, 32}, 1000})), 44549160);
  // timm's vit_base_patch16_224 / vit_small_patch16_224 at 224 px: 86,567,656 and 22,050,664.
  EXPECT_EQ(count_params(*make("{name: vit_b16}", {{3, 224, 224}, 1000})), 86567656);
  EXPECT_EQ(count_params(*make("{name: vit_s16}", {{3, 224, 224}, 1000})), 22050664);
  // CLIP ViT-B/32's image tower (87,849,216 parameters) plus a 512 x 10 head.
  EXPECT_EQ(count_params(*make("{name: clip_vit_b32}", {{3, 224, 224}, 10})), 87849216 + 5130);
}

TEST(Models, StableParameterNames) {
  auto names = [](const Model& m) {
    std::vector<std::string> v;
    for (const auto& [k, t] : m.named_state()) v.push_back(k);
    return v;
  };
  const auto mlp = names(*make("{name: mlp, hidden: [4], batch_norm: true}", {{1, 2, 2}, 3}));
  const std::vector<std::string> want_mlp = {"trunk.fc0.weight", "trunk.fc0.bias", "trunk.bn0.weight",
                                             "trunk.bn0.bias",   "head.fc.weight", "head.fc.bias",
                                             "trunk.bn0.running_mean", "trunk.bn0.running_var",
                                             "trunk.bn0.num_batches_tracked"};
  EXPECT_EQ(mlp, want_mlp);
  const auto resnet = names(*make("{name: resnet18, width: 4}", {{3, 8, 8}, 2}));
  for (const char* n : {"trunk.conv1.weight", "trunk.layer1.0.conv1.weight", "trunk.layer2.0.downsample.0.weight",
                        "trunk.layer4.1.bn2.running_var", "head.fc.weight"})
    EXPECT_NE(std::find(resnet.begin(), resnet.end(), n), resnet.end()) << n;
}

TEST(Models, ConfigErrors) {
  auto msg = [](const std::string& yaml) -> std::string {
    try {
      make(yaml, {{1, 4, 4}, 2});
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "<none>";
  };
  EXPECT_NE(msg("{name: cnm}").find("did you mean 'cnn'"), std::string::npos);
  EXPECT_NE(msg("{name: cnn, hidden: [3]}").find("model.hidden: unknown key"), std::string::npos);
  EXPECT_NE(msg("{name: mlp, dropout: 1.5}").find("model.dropout: must be in [0, 1)"), std::string::npos);
}

// A BatchNorm that marks itself: what a plugin's layer looks like.
class TaggedBatchNorm final : public BatchNormImpl {
 public:
  explicit TaggedBatchNorm(const BatchNormImpl& base) : BatchNormImpl(base, Adopt{}) {}
};

TEST(ModuleSurgery, ReplacesEveryLayerOfATypeUnderTheSameNames) {
  auto m = make("{name: resnet18, width: 4}", {{3, 8, 8}, 2});
  const auto before = m->named_state();
  int64_t bns = 0;
  for_each_layer<BatchNormImpl>(*m, [&](BatchNormImpl&) { ++bns; });
  std::vector<std::string> paths;
  const int64_t n = replace_layers<BatchNormImpl>(*m, [&](BatchNormImpl& bn, const std::string& path) {
    paths.push_back(path);
    return std::make_shared<TaggedBatchNorm>(bn);
  });
  EXPECT_EQ(n, bns);
  EXPECT_EQ(bns, 20);  // stem, 2 per basic block, 3 shortcuts
  EXPECT_EQ(paths.front(), "trunk.bn1");
  EXPECT_NE(std::find(paths.begin(), paths.end(), "trunk.layer2.0.downsample.1"), paths.end());
  int64_t tagged = 0;
  for_each_layer<TaggedBatchNorm>(*m, [&](TaggedBatchNorm&) { ++tagged; });
  EXPECT_EQ(tagged, bns);
  const auto after = m->named_state();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].first, before[i].first);
    EXPECT_TRUE(after[i].second.is_same(before[i].second)) << after[i].first;
  }
  // The forward goes through the new layers: the model still computes the same function.
  m->eval();
  const at::Tensor x = at::randn({2, 3, 8, 8});
  auto fresh = make("{name: resnet18, width: 4}", {{3, 8, 8}, 2});
  load_state(*fresh, *m);
  fresh->eval();
  EXPECT_TRUE(at::allclose(m->forward(x), fresh->forward(x)));
  // A replacement is not searched again; nullptr keeps a layer.
  EXPECT_EQ(replace_layers<BatchNormImpl>(*m, [](BatchNormImpl&, const std::string&) { return nullptr; }), 0);
}

// A module that holds a Linear without a slot: surgery cannot reach into its forward.
class Opaque final : public Layer {
 public:
  Opaque() { fc = register_module("fc", std::make_shared<LinearImpl>(2, 2)); }
  at::Tensor forward(const at::Tensor& x) override { return fc->forward(x); }
  std::shared_ptr<LinearImpl> fc;
};

TEST(ModuleSurgery, RefusesLayersOutsideSlotsAndReplacementsOfAnotherKind) {
  auto stack = make_stack();
  stack->push_back("opaque", std::make_shared<Opaque>());
  try {
    replace_layers<LinearImpl>(*stack, [](LinearImpl& l, const std::string&) { return std::make_shared<LinearImpl>(2, 2); });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'opaque.fc'"), std::string::npos) << e.what();
  }
  auto head = std::make_shared<HeadImpl>(4, 3, 0.0);
  EXPECT_THROW(replace_layers<LinearImpl>(*head, [](LinearImpl&, const std::string&) { return std::make_shared<ReLUImpl>(); }),
               Error);
}

}  // namespace
}  // namespace oodt
