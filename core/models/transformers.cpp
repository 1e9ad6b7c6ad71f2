// Transformer models: `vit` for images and `transformer_lm` for byte sequences. Both use the
// one attention layer in attention.h, so a plugin that changes attention reaches both alike.
#include "core/error.h"
#include "core/models/attention.h"
#include "core/models/model.h"

namespace oodt {

namespace {

// Patch embedding: conv with kernel = stride = patch, a class token (when pooling by it) and
// learned positions. [B, C, H, W] -> [B, tokens, D].
class PatchEmbedImpl final : public Block {
 public:
  PatchEmbedImpl(int64_t channels, int64_t patch, int64_t dim, int64_t tokens, bool cls_token) {
    bind(proj, "proj", std::make_shared<Conv2dImpl>(ConvOptions(channels, dim, patch).with_stride(patch)));
    if (cls_token) cls = register_parameter("cls", at::zeros({1, 1, dim}));
    pos = register_parameter("pos", at::randn({1, tokens + (cls_token ? 1 : 0), dim}).mul_(0.02));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor t = proj->forward(x).flatten(2).transpose(1, 2);  // [B, N, D]
    if (cls.defined()) t = at::cat({cls.expand({t.size(0), 1, t.size(2)}), t}, 1);
    return t + pos;
  }
  Slot<Conv2dImpl> proj;
  at::Tensor cls, pos;
};

// [B, N, D] -> [B, D]: the class token (position 0) or the mean over tokens.
class PoolImpl final : public Layer {
 public:
  explicit PoolImpl(bool cls_token) : cls(cls_token) {}
  at::Tensor forward(const at::Tensor& x) override { return cls ? x.select(1, 0) : x.mean(1); }
  bool cls;
};

// Byte embedding plus learned positions: [B, L] int64 -> [B, L, D].
class TokenEmbedImpl final : public Layer {
 public:
  TokenEmbedImpl(int64_t vocab, int64_t dim, int64_t max_len) {
    tokens = register_module("tokens", torch::nn::Embedding(vocab, dim));
    pos = register_parameter("pos", at::randn({1, max_len, dim}).mul_(0.02));
  }
  at::Tensor forward(const at::Tensor& x) override {
    OODT_CHECK(x.size(1) <= pos.size(1), "sequence of ", x.size(1), " tokens exceeds the model's ", pos.size(1));
    return tokens->forward(x.to(at::kLong)) + pos.narrow(1, 0, x.size(1));
  }
  torch::nn::Embedding tokens{nullptr};
  at::Tensor pos;
};

// [B, L, D] -> [B * L, D]: every position is a prediction.
class FlattenTokensImpl final : public Layer {
 public:
  at::Tensor forward(const at::Tensor& x) override { return x.reshape({-1, x.size(2)}); }
};

struct TransformerOptions {
  int64_t dim, depth, heads, mlp_ratio;
  double dropout;
};

TransformerOptions read_transformer(ConfigReader& cfg, int64_t dim, int64_t depth, int64_t heads) {
  TransformerOptions t;
  t.dim = cfg.get("dim", dim);
  t.depth = cfg.get("depth", depth);
  t.heads = cfg.get("heads", heads);
  t.mlp_ratio = cfg.get<int64_t>("mlp_ratio", 2);
  t.dropout = cfg.get("dropout", 0.0);
  cfg.check(t.dim > 0 && t.depth > 0 && t.heads > 0 && t.mlp_ratio > 0, "dim", "dim, depth, heads, mlp_ratio must be > 0");
  cfg.check(t.dim % t.heads == 0, "heads", concat("must divide dim (", t.dim, ")"));
  cfg.check(t.dropout >= 0 && t.dropout < 1, "dropout", "must be in [0, 1)");
  return t;
}

Stack blocks(const TransformerOptions& t, bool causal) {
  Stack s = make_stack();
  for (int64_t i = 0; i < t.depth; ++i)
    s->push_back(std::to_string(i), std::make_shared<TransformerBlockImpl>(t.dim, t.heads, t.mlp_ratio * t.dim, causal));
  return s;
}

}  // namespace

// vit: patch embedding, pre-norm encoder blocks, final LayerNorm, class-token or mean pooling.
std::shared_ptr<Model> build_vit(ConfigReader& cfg, const ModelShape& shape) {
  OODT_CHECK(shape.input.size() == 3, "vit takes [C, H, W] images");
  const int64_t patch = cfg.get<int64_t>("patch", 4);
  const std::string pool = cfg.one_of("pool", "cls", {"cls", "mean"});
  const TransformerOptions t = read_transformer(cfg, 64, 2, 4);
  cfg.check(patch >= 1 && shape.input[1] % patch == 0 && shape.input[2] % patch == 0, "patch",
            concat("must divide the image size ", shape.input[1], "x", shape.input[2]));
  const int64_t tokens = (shape.input[1] / patch) * (shape.input[2] / patch);
  Stack trunk = make_stack();
  trunk->push_back("patch", std::make_shared<PatchEmbedImpl>(shape.input[0], patch, t.dim, tokens, pool == "cls"));
  trunk->push_back("blocks", blocks(t, /*causal=*/false));
  trunk->push_back("norm", std::make_shared<LayerNormImpl>(t.dim));
  trunk->push_back("pool", std::make_shared<PoolImpl>(pool == "cls"));
  return std::make_shared<Model>("vit", trunk, std::make_shared<HeadImpl>(t.dim, shape.num_classes, t.dropout));
}

// transformer_lm: causal byte-level language model; output [B * L, 256], one prediction per
// position (the data source's labels are the next bytes, flattened the same way).
std::shared_ptr<Model> build_transformer_lm(ConfigReader& cfg, const ModelShape& shape) {
  OODT_CHECK(shape.input.size() == 1, "transformer_lm takes [L] token sequences (data.type: text)");
  const TransformerOptions t = read_transformer(cfg, 64, 2, 4);
  Stack trunk = make_stack();
  trunk->push_back("embed", std::make_shared<TokenEmbedImpl>(shape.num_classes, t.dim, shape.input[0]));
  trunk->push_back("blocks", blocks(t, /*causal=*/true));
  trunk->push_back("norm", std::make_shared<LayerNormImpl>(t.dim));
  trunk->push_back("flatten", std::make_shared<FlattenTokensImpl>());
  return std::make_shared<Model>("transformer_lm", trunk, std::make_shared<HeadImpl>(t.dim, shape.num_classes, t.dropout));
}

}  // namespace oodt
