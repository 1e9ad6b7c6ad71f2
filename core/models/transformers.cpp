// Transformer models: `vit` for images and `transformer_lm` for byte sequences. Both use the
// one attention layer in attention.h, so SSA reaches them the same way.
#include "core/error.h"
#include "core/models/attention.h"
#include "core/models/model.h"

namespace oodt {
namespace nn = torch::nn;

namespace {

// Patch embedding: conv with kernel = stride = patch, a class token (when pooling by it) and
// learned positions. [B, C, H, W] -> [B, tokens, D].
class PatchEmbedImpl : public nn::Module {
 public:
  PatchEmbedImpl(int64_t channels, int64_t patch, int64_t dim, int64_t tokens, bool cls_token) {
    proj = register_module("proj", QConv2d(nn::Conv2dOptions(channels, dim, patch).stride(patch)));
    if (cls_token) cls = register_parameter("cls", at::zeros({1, 1, dim}));
    pos = register_parameter("pos", at::randn({1, tokens + (cls_token ? 1 : 0), dim}).mul_(0.02));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor t = proj->forward(x).flatten(2).transpose(1, 2);  // [B, N, D]
    if (cls.defined()) t = at::cat({cls.expand({t.size(0), 1, t.size(2)}), t}, 1);
    return t + pos;
  }
  QConv2d proj{nullptr};
  at::Tensor cls, pos;
};
TORCH_MODULE(PatchEmbed);

// [B, N, D] -> [B, D]: the class token (position 0) or the mean over tokens.
class PoolImpl : public nn::Module {
 public:
  explicit PoolImpl(bool cls_token) : cls(cls_token) {}
  at::Tensor forward(const at::Tensor& x) { return cls ? x.select(1, 0) : x.mean(1); }
  bool cls;
};
TORCH_MODULE(Pool);

// Byte embedding plus learned positions: [B, L] int64 -> [B, L, D].
class TokenEmbedImpl : public nn::Module {
 public:
  TokenEmbedImpl(int64_t vocab, int64_t dim, int64_t max_len) {
    tokens = register_module("tokens", nn::Embedding(vocab, dim));
    pos = register_parameter("pos", at::randn({1, max_len, dim}).mul_(0.02));
  }
  at::Tensor forward(const at::Tensor& x) {
    OODT_CHECK(x.size(1) <= pos.size(1), "sequence of ", x.size(1), " tokens exceeds the model's ", pos.size(1));
    return tokens->forward(x.to(at::kLong)) + pos.narrow(1, 0, x.size(1));
  }
  nn::Embedding tokens{nullptr};
  at::Tensor pos;
};
TORCH_MODULE(TokenEmbed);

// [B, L, D] -> [B * L, D]: every position is a prediction.
class FlattenTokensImpl : public nn::Module {
 public:
  at::Tensor forward(const at::Tensor& x) { return x.reshape({-1, x.size(2)}); }
};
TORCH_MODULE(FlattenTokens);

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
  Stack s;
  for (int64_t i = 0; i < t.depth; ++i)
    s->push_back(std::to_string(i), TransformerBlock(t.dim, t.heads, t.mlp_ratio * t.dim, causal));
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
  Stack trunk;
  trunk->push_back("patch", PatchEmbed(shape.input[0], patch, t.dim, tokens, pool == "cls"));
  trunk->push_back("blocks", blocks(t, /*causal=*/false));
  trunk->push_back("norm", nn::LayerNorm(nn::LayerNormOptions({t.dim})));
  trunk->push_back("pool", Pool(pool == "cls"));
  return std::make_shared<Model>("vit", trunk, Head(t.dim, shape.num_classes, t.dropout, /*signed_input=*/true));
}

// transformer_lm: causal byte-level language model; output [B * L, 256], one prediction per
// position (the data source's labels are the next bytes, flattened the same way).
std::shared_ptr<Model> build_transformer_lm(ConfigReader& cfg, const ModelShape& shape) {
  OODT_CHECK(shape.input.size() == 1, "transformer_lm takes [L] token sequences (data.type: text)");
  const TransformerOptions t = read_transformer(cfg, 64, 2, 4);
  Stack trunk;
  trunk->push_back("embed", TokenEmbed(shape.num_classes, t.dim, shape.input[0]));
  trunk->push_back("blocks", blocks(t, /*causal=*/true));
  trunk->push_back("norm", nn::LayerNorm(nn::LayerNormOptions({t.dim})));
  trunk->push_back("flatten", FlattenTokens());
  return std::make_shared<Model>("transformer_lm", trunk, Head(t.dim, shape.num_classes, t.dropout, /*signed_input=*/true));
}

}  // namespace oodt
