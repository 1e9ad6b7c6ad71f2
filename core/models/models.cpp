// All models in one translation unit: the LibTorch module headers are expensive to compile.
#include "core/models/model.h"

#include "core/error.h"

#include <map>

namespace oodt {

Model::Model(std::string kind, std::shared_ptr<Layer> trunk_, Head head_) : kind_(std::move(kind)) {
  bind(trunk, "trunk", std::move(trunk_));
  bind(head, "head", std::move(head_));
}

std::vector<std::pair<std::string, at::Tensor>> Model::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& kv : named_parameters()) out.emplace_back(kv.key(), kv.value());
  for (const auto& kv : named_buffers()) out.emplace_back(kv.key(), kv.value());
  return out;
}

namespace {

Head make_head(int64_t features, int64_t classes, double dropout) {
  return std::make_shared<HeadImpl>(features, classes, dropout);
}

}  // namespace

// `input_norm`: the normalisation constants of the data a pretrained backbone was trained on.
Stack image_trunk(ConfigReader& cfg, const ModelShape& shape) {
  const std::string norm = cfg.one_of("input_norm", "none", {"none", "imagenet", "clip"});
  Stack trunk = make_stack();
  if (norm == "none") return trunk;
  cfg.check(shape.input.at(0) == 3, "input_norm", concat(norm, " normalisation needs 3-channel images, the data has ",
                                                          shape.input.at(0)));
  if (norm == "imagenet")
    trunk->push_back("normalize", std::make_shared<NormalizeImpl>(std::vector<double>{0.485, 0.456, 0.406},
                                                                  std::vector<double>{0.229, 0.224, 0.225}));
  else  // OpenAI CLIP's
    trunk->push_back("normalize",
                     std::make_shared<NormalizeImpl>(std::vector<double>{0.48145466, 0.4578275, 0.40821073},
                                                     std::vector<double>{0.26862954, 0.26130258, 0.27577711}));
  return trunk;
}

namespace {

int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (auto x : v) p *= x;
  return p;
}

// mlp: flatten, then [linear, (batchnorm), relu, (dropout)] per hidden layer.
std::shared_ptr<Model> build_mlp(ConfigReader& cfg, const ModelShape& shape) {
  const auto hidden = cfg.get<std::vector<int64_t>>("hidden", {256, 256});
  const bool bn = cfg.get<bool>("batch_norm", false);
  const double dropout = cfg.get<double>("dropout", 0.0);
  cfg.check(!hidden.empty(), "hidden", "needs at least one hidden layer");
  for (auto h : hidden) cfg.check(h > 0, "hidden", "layer sizes must be positive");
  cfg.check(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  Stack trunk = image_trunk(cfg, shape);
  trunk->push_back("flatten", std::make_shared<FlattenImpl>());
  int64_t in = product(shape.input);
  for (size_t i = 0; i < hidden.size(); ++i) {
    const std::string s = std::to_string(i);
    trunk->push_back("fc" + s, std::make_shared<LinearImpl>(in, hidden[i]));
    if (bn) trunk->push_back("bn" + s, std::make_shared<BatchNormImpl>(hidden[i]));
    trunk->push_back("relu" + s, std::make_shared<ReLUImpl>());
    if (dropout > 0 && i + 1 < hidden.size()) trunk->push_back("drop" + s, std::make_shared<DropoutImpl>(dropout));
    in = hidden[i];
  }
  return std::make_shared<Model>("mlp", trunk, make_head(in, shape.num_classes, dropout));
}

Stack conv_bn_relu(int64_t in, int64_t out, int64_t stride) {
  Stack s = make_stack();
  s->push_back("conv", std::make_shared<Conv2dImpl>(ConvOptions(in, out, 3).with_stride(stride).with_padding(1).with_bias(false)));
  s->push_back("bn", std::make_shared<BatchNormImpl>(out));
  s->push_back("relu", std::make_shared<ReLUImpl>());
  return s;
}

// cnn: blocks of conv3x3-BN-ReLU-maxpool2, then global average pooling.
std::shared_ptr<Model> build_cnn(ConfigReader& cfg, const ModelShape& shape) {
  const auto channels = cfg.get<std::vector<int64_t>>("channels", {32, 64, 128});
  const double dropout = cfg.get<double>("dropout", 0.1);
  cfg.check(!channels.empty(), "channels", "needs at least one block");
  for (auto c : channels) cfg.check(c > 0, "channels", "channel counts must be positive");
  cfg.check(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  Stack trunk = image_trunk(cfg, shape);
  int64_t in = shape.input.at(0);
  for (size_t i = 0; i < channels.size(); ++i) {
    Stack block = conv_bn_relu(in, channels[i], 1);
    block->push_back("pool", std::make_shared<MaxPool2dImpl>(2));
    trunk->push_back("block" + std::to_string(i), block);
    in = channels[i];
  }
  trunk->push_back("pool", std::make_shared<AvgPoolImpl>());
  trunk->push_back("flatten", std::make_shared<FlattenImpl>());
  return std::make_shared<Model>("cnn", trunk, make_head(in, shape.num_classes, dropout));
}

// torchvision's ResNets (names included, so its state dicts map by prefix). A residual block's
// shortcut is `downsample` (`0` conv 1x1, `1` BN) when the shape changes.
Stack downsample(int64_t in, int64_t out, int64_t stride) {
  Stack s = make_stack();
  s->push_back("0", std::make_shared<Conv2dImpl>(ConvOptions(in, out, 1).with_stride(stride).with_bias(false)));
  s->push_back("1", std::make_shared<BatchNormImpl>(out));
  return s;
}

Conv2d conv3x3(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<Conv2dImpl>(ConvOptions(in, out, 3).with_stride(stride).with_padding(1).with_bias(false));
}

// Basic block (ResNet-18/34): conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU.
class BasicBlockImpl final : public Block {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride) {
    bind(conv1, "conv1", conv3x3(in, planes, stride));
    bind(bn1, "bn1", std::make_shared<BatchNormImpl>(planes));
    bind(conv2, "conv2", conv3x3(planes, planes, 1));
    bind(bn2, "bn2", std::make_shared<BatchNormImpl>(planes));
    if (stride != 1 || in != planes) bind(shortcut, "downsample", downsample(in, planes, stride));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor y = at::relu(bn1->forward(conv1->forward(x)));
    y = bn2->forward(conv2->forward(y));
    return at::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  Slot<Conv2dImpl> conv1, conv2;
  Slot<BatchNormImpl> bn1, bn2;
  Slot<StackImpl> shortcut;
};

// Bottleneck (ResNet-50/101, torchvision's "V1.5": the stride is on the 3x3 conv):
// conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(4x)-BN plus the shortcut, then ReLU.
class BottleneckImpl final : public Block {
 public:
  static constexpr int64_t expansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride) {
    bind(conv1, "conv1", std::make_shared<Conv2dImpl>(ConvOptions(in, planes, 1).with_bias(false)));
    bind(bn1, "bn1", std::make_shared<BatchNormImpl>(planes));
    bind(conv2, "conv2", conv3x3(planes, planes, stride));
    bind(bn2, "bn2", std::make_shared<BatchNormImpl>(planes));
    bind(conv3, "conv3", std::make_shared<Conv2dImpl>(ConvOptions(planes, planes * expansion, 1).with_bias(false)));
    bind(bn3, "bn3", std::make_shared<BatchNormImpl>(planes * expansion));
    if (stride != 1 || in != planes * expansion) bind(shortcut, "downsample", downsample(in, planes * expansion, stride));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor y = at::relu(bn1->forward(conv1->forward(x)));
    y = at::relu(bn2->forward(conv2->forward(y)));
    y = bn3->forward(conv3->forward(y));
    return at::relu(y + (shortcut ? shortcut->forward(x) : x));
  }
  Slot<Conv2dImpl> conv1, conv2, conv3;
  Slot<BatchNormImpl> bn1, bn2, bn3;
  Slot<StackImpl> shortcut;
};

template <class Block_>
Stack resnet_stage(int64_t& in, int64_t planes, int64_t blocks, int64_t stride) {
  Stack layer = make_stack();
  for (int64_t i = 0; i < blocks; ++i) {
    layer->push_back(std::to_string(i), std::make_shared<Block_>(in, planes, i == 0 ? stride : 1));
    in = planes * Block_::expansion;
  }
  return layer;
}

// resnet18/34/50/101: torchvision's architecture and names. `stem: imagenet` is torchvision's
// (7x7 stride-2 conv, 3x3 stride-2 max-pool); `stem: cifar` a 3x3 stride-1 conv without
// max-pool for 32-pixel images (same names; only conv1's shape differs). `width` scales every
// stage (64 = torchvision's).
std::shared_ptr<Model> build_resnet(const std::string& name, ConfigReader& cfg, const ModelShape& shape) {
  Stack trunk = image_trunk(cfg, shape);
  static const std::map<std::string, std::vector<int64_t>> depths = {
      {"resnet18", {2, 2, 2, 2}}, {"resnet34", {3, 4, 6, 3}}, {"resnet50", {3, 4, 6, 3}}, {"resnet101", {3, 4, 23, 3}}};
  const std::vector<int64_t>& blocks = depths.at(name);
  const bool bottleneck = name == "resnet50" || name == "resnet101";
  const std::string stem = cfg.one_of("stem", "imagenet", {"imagenet", "cifar"});
  const int64_t width = cfg.get<int64_t>("width", 64);
  const double dropout = cfg.get<double>("dropout", 0.0);
  cfg.check(width > 0, "width", "must be positive");
  cfg.check(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  if (stem == "imagenet") {
    trunk->push_back("conv1", std::make_shared<Conv2dImpl>(
                                  ConvOptions(shape.input.at(0), width, 7).with_stride(2).with_padding(3).with_bias(false)));
  } else {
    trunk->push_back("conv1", conv3x3(shape.input.at(0), width, 1));
  }
  trunk->push_back("bn1", std::make_shared<BatchNormImpl>(width));
  trunk->push_back("relu", std::make_shared<ReLUImpl>());
  if (stem == "imagenet") trunk->push_back("maxpool", std::make_shared<MaxPool2dImpl>(3, 2, 1));
  int64_t in = width;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t planes = width << stage, stride = stage == 0 ? 1 : 2;
    trunk->push_back("layer" + std::to_string(stage + 1),
                     bottleneck ? resnet_stage<BottleneckImpl>(in, planes, blocks[stage], stride)
                                : resnet_stage<BasicBlockImpl>(in, planes, blocks[stage], stride));
  }
  trunk->push_back("avgpool", std::make_shared<AvgPoolImpl>());
  trunk->push_back("flatten", std::make_shared<FlattenImpl>());
  return std::make_shared<Model>(name, trunk, make_head(in, shape.num_classes, dropout));
}

}  // namespace

ModelShape ModelShape::for_validation(const YAML::Node& model) {
  auto scalar = [&](const char* key, const std::string& fallback) {
    const YAML::Node n = model.IsMap() ? model[key] : YAML::Node();
    return n.IsDefined() && n.IsScalar() ? n.Scalar() : fallback;
  };
  const std::string name = scalar("name", "");
  if (name == "transformer_lm") return ModelShape{{16}, 256};
  const std::string default_patch =
      name == "clip_vit_b32" ? "32" : (name == "vit_b16" || name == "vit_s16" || name == "clip_vit_b16") ? "16" : "4";
  int64_t patch = 4;
  try {
    patch = std::max<int64_t>(1, std::stoll(scalar("patch", default_patch)));
  } catch (const std::exception&) {
    // A malformed patch is reported by the vit builder itself.
  }
  return ModelShape{{3, 2 * patch, 2 * patch}, 2};
}

std::vector<std::string> model_names() {
  return {"mlp",   "cnn",     "resnet18", "resnet34", "resnet50",     "resnet101",    "vit",
          "vit_b16", "vit_s16", "clip_vit", "clip_vit_b32", "clip_vit_b16", "transformer_lm"};
}

// In transformers.cpp.
std::shared_ptr<Model> build_vit(const std::string& name, ConfigReader& cfg, const ModelShape& shape);
std::shared_ptr<Model> build_clip_vit(const std::string& name, ConfigReader& cfg, const ModelShape& shape);
std::shared_ptr<Model> build_transformer_lm(ConfigReader& cfg, const ModelShape& shape);

std::shared_ptr<Model> build_model(ConfigReader& cfg, const ModelShape& shape) {
  const std::string name = cfg.one_of("name", "cnn", model_names());
  if (name == "transformer_lm" ? shape.input.size() != 1 : shape.input.size() != 3)
    cfg.fail("name", name == "transformer_lm" ? "transformer_lm needs token sequences (data.type: text)"
                                              : concat(name, " needs [C, H, W] images, the data has inputs of ",
                                                       shape.input.size(), " dimensions"));
  std::shared_ptr<Model> model;
  if (name == "mlp") model = build_mlp(cfg, shape);
  else if (name == "cnn") model = build_cnn(cfg, shape);
  else if (name.rfind("resnet", 0) == 0) model = build_resnet(name, cfg, shape);
  else if (name.rfind("clip_vit", 0) == 0) model = build_clip_vit(name, cfg, shape);
  else if (name.rfind("vit", 0) == 0) model = build_vit(name, cfg, shape);
  else model = build_transformer_lm(cfg, shape);
  cfg.finish();
  return model;
}

}  // namespace oodt
