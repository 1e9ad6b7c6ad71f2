#include <gtest/gtest.h>

#include "core/models/model.h"

namespace oodt {
namespace {

std::shared_ptr<Model> make(const std::string& yaml, ModelShape shape) {
  ConfigReader cfg(YAML::Load(yaml), "model", nullptr);
  return build_model(cfg, shape);
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
      {"{name: resnet18, width: 8}", {{3, 32, 32}, 10}, 64},
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

TEST(Models, ResNet18HasTheStandardParameterCount) {
  // CIFAR ResNet-18 (3x3 stem, widths 64..512, 10 classes): 11,173,962 parameters.
  auto m = make("{name: resnet18}", {{3, 32, 32}, 10});
  EXPECT_EQ(count_params(*m), 11173962);
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
  for (const char* n : {"trunk.stem.conv.weight", "trunk.layer1.0.conv1.weight", "trunk.layer2.0.shortcut.conv.weight",
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

}  // namespace
}  // namespace oodt
