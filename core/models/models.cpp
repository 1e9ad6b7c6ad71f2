// All models in one translation unit: the LibTorch module headers are expensive to compile.
#include "core/models/model.h"

#include "core/error.h"

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
  Stack trunk = make_stack();
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
  Stack trunk = make_stack();
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

// ResNet basic block: conv-BN-ReLU-conv-BN plus a (projected) shortcut, then ReLU.
class BasicBlockImpl final : public Block {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
    bind(conv1, "conv1", std::make_shared<Conv2dImpl>(ConvOptions(in, out, 3).with_stride(stride).with_padding(1).with_bias(false)));
    bind(bn1, "bn1", std::make_shared<BatchNormImpl>(out));
    bind(conv2, "conv2", std::make_shared<Conv2dImpl>(ConvOptions(out, out, 3).with_padding(1).with_bias(false)));
    bind(bn2, "bn2", std::make_shared<BatchNormImpl>(out));
    if (stride != 1 || in != out) {
      Stack s = make_stack();
      s->push_back("conv", std::make_shared<Conv2dImpl>(ConvOptions(in, out, 1).with_stride(stride).with_bias(false)));
      s->push_back("bn", std::make_shared<BatchNormImpl>(out));
      bind(shortcut, "shortcut", s);
    }
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

// resnet18, CIFAR-style: 3x3 stem without max-pool, four stages of two basic blocks.
std::shared_ptr<Model> build_resnet18(ConfigReader& cfg, const ModelShape& shape) {
  const int64_t width = cfg.get<int64_t>("width", 64);
  const double dropout = cfg.get<double>("dropout", 0.0);
  cfg.check(width > 0, "width", "must be positive");
  cfg.check(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)");
  Stack trunk = make_stack();
  trunk->push_back("stem", conv_bn_relu(shape.input.at(0), width, 1));
  int64_t in = width;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t out = width << stage;
    Stack layer = make_stack();
    layer->push_back("0", std::make_shared<BasicBlockImpl>(in, out, stage == 0 ? 1 : 2));
    layer->push_back("1", std::make_shared<BasicBlockImpl>(out, out, 1));
    trunk->push_back("layer" + std::to_string(stage + 1), layer);
    in = out;
  }
  trunk->push_back("pool", std::make_shared<AvgPoolImpl>());
  trunk->push_back("flatten", std::make_shared<FlattenImpl>());
  return std::make_shared<Model>("resnet18", trunk, make_head(in, shape.num_classes, dropout));
}

}  // namespace

ModelShape ModelShape::for_validation(const YAML::Node& model) {
  auto scalar = [&](const char* key, const std::string& fallback) {
    const YAML::Node n = model.IsMap() ? model[key] : YAML::Node();
    return n.IsDefined() && n.IsScalar() ? n.Scalar() : fallback;
  };
  if (scalar("name", "") == "transformer_lm") return ModelShape{{16}, 256};
  int64_t patch = 4;
  try {
    patch = std::max<int64_t>(1, std::stoll(scalar("patch", "4")));
  } catch (const std::exception&) {
    // A malformed patch is reported by the vit builder itself.
  }
  return ModelShape{{1, 2 * patch, 2 * patch}, 2};
}

std::vector<std::string> model_names() { return {"mlp", "cnn", "resnet18", "vit", "transformer_lm"}; }

// In transformers.cpp.
std::shared_ptr<Model> build_vit(ConfigReader& cfg, const ModelShape& shape);
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
  else if (name == "resnet18") model = build_resnet18(cfg, shape);
  else if (name == "vit") model = build_vit(cfg, shape);
  else model = build_transformer_lm(cfg, shape);
  cfg.finish();
  return model;
}

}  // namespace oodt
