// Transformer models: `vit` for images and `transformer_lm` for byte sequences. Both use the
// one attention layer in attention.h, so a plugin that changes attention reaches both alike.
#include <cmath>

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
  double dropout, ln_eps;
  Activation act;
};

struct TransformerDefaults {
  int64_t dim, depth, heads, mlp_ratio;
  double ln_eps;
};

TransformerOptions read_transformer(ConfigReader& cfg, const TransformerDefaults& d, Activation act = Activation::Gelu) {
  TransformerOptions t;
  t.dim = cfg.get("dim", d.dim);
  t.depth = cfg.get("depth", d.depth);
  t.heads = cfg.get("heads", d.heads);
  t.mlp_ratio = cfg.get("mlp_ratio", d.mlp_ratio);
  t.dropout = cfg.get("dropout", 0.0);
  t.ln_eps = cfg.get("ln_eps", d.ln_eps);
  t.act = act;
  cfg.check(t.dim > 0 && t.depth > 0 && t.heads > 0 && t.mlp_ratio > 0, "dim", "dim, depth, heads, mlp_ratio must be > 0");
  cfg.check(t.dim % t.heads == 0, "heads", concat("must divide dim (", t.dim, ")"));
  cfg.check(t.dropout >= 0 && t.dropout < 1, "dropout", "must be in [0, 1)");
  cfg.check(t.ln_eps > 0, "ln_eps", "must be > 0");
  return t;
}

Stack blocks(const TransformerOptions& t, bool causal) {
  Stack s = make_stack();
  for (int64_t i = 0; i < t.depth; ++i)
    s->push_back(std::to_string(i), std::make_shared<TransformerBlockImpl>(t.dim, t.heads, t.mlp_ratio * t.dim, causal,
                                                                           t.ln_eps, t.act));
  return s;
}

int64_t patch_tokens(ConfigReader& cfg, const ModelShape& shape, int64_t patch) {
  cfg.check(patch >= 1 && shape.input[1] % patch == 0 && shape.input[2] % patch == 0, "patch",
            concat(patch, " must divide the image size ", shape.input[1], "x", shape.input[2]));
  return (shape.input[1] / patch) * (shape.input[2] / patch);
}

// CLIP's patch embedding (open_clip's shapes): conv without bias, a class embedding [W] and
// positions [tokens + 1, W].
class ClipEmbedImpl final : public Block {
 public:
  ClipEmbedImpl(int64_t channels, int64_t patch, int64_t width, int64_t tokens) {
    bind(conv1, "conv1", std::make_shared<Conv2dImpl>(ConvOptions(channels, width, patch).with_stride(patch).with_bias(false)));
    const double scale = 1.0 / std::sqrt(static_cast<double>(width));  // open_clip's initialisation
    class_embedding = register_parameter("class_embedding", at::randn({width}).mul_(scale));
    positional_embedding = register_parameter("positional_embedding", at::randn({tokens + 1, width}).mul_(scale));
  }
  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor t = conv1->forward(x).flatten(2).transpose(1, 2);  // [B, N, W]
    t = at::cat({class_embedding.to(t.scalar_type()).expand({t.size(0), 1, t.size(2)}), t}, 1);
    return t + positional_embedding.to(t.scalar_type());
  }
  Slot<Conv2dImpl> conv1;
  at::Tensor class_embedding, positional_embedding;
};

// x [B, W] @ weight [W, D] (CLIP's `proj`: stored input-major, as open_clip has it).
class ProjectionImpl final : public Layer {
 public:
  ProjectionImpl(int64_t in, int64_t out) {
    weight = register_parameter("weight", at::randn({in, out}).mul_(1.0 / std::sqrt(static_cast<double>(in))));
  }
  at::Tensor forward(const at::Tensor& x) override { return at::matmul(x, weight.to(x.scalar_type())); }
  at::Tensor weight;
};

// Unit-length rows: CLIP's image embedding as its zero-shot classifier compares it.
class L2NormalizeImpl final : public Layer {
 public:
  at::Tensor forward(const at::Tensor& x) override { return x / x.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12); }
};

}  // namespace

// vit: patch embedding, pre-norm encoder blocks, final LayerNorm, class-token or mean pooling.
// vit_b16 and vit_s16 are timm's ViT-B/16 and ViT-S/16 (LayerNorm eps 1e-6, MLP ratio 4):
// the same model with other defaults, every one of which can still be set.
std::shared_ptr<Model> build_vit(const std::string& name, ConfigReader& cfg, const ModelShape& shape) {
  OODT_CHECK(shape.input.size() == 3, "vit takes [C, H, W] images");
  TransformerDefaults d{64, 2, 4, 2, 1e-5};
  if (name == "vit_b16") d = {768, 12, 12, 4, 1e-6};
  if (name == "vit_s16") d = {384, 12, 6, 4, 1e-6};
  Stack trunk = image_trunk(cfg, shape);
  const int64_t patch = cfg.get<int64_t>("patch", name == "vit" ? 4 : 16);
  const std::string pool = cfg.one_of("pool", "cls", {"cls", "mean"});
  const TransformerOptions t = read_transformer(cfg, d);
  const int64_t tokens = patch_tokens(cfg, shape, patch);
  trunk->push_back("patch", std::make_shared<PatchEmbedImpl>(shape.input[0], patch, t.dim, tokens, pool == "cls"));
  trunk->push_back("blocks", blocks(t, /*causal=*/false));
  trunk->push_back("norm", std::make_shared<LayerNormImpl>(t.dim, t.ln_eps));
  trunk->push_back("pool", std::make_shared<PoolImpl>(pool == "cls"));
  return std::make_shared<Model>(name, trunk, std::make_shared<HeadImpl>(t.dim, shape.num_classes, t.dropout));
}

// clip_vit: CLIP's image tower as open_clip defines it: patch embedding with a class token,
// `ln_pre`, pre-norm blocks (QuickGELU for the OpenAI weights), the class token through
// `ln_post`, then `proj` to the joint embedding (optionally L2-normalised, as zero-shot heads
// expect). clip_vit_b32 / clip_vit_b16: ViT-B/32 and ViT-B/16 (width 768, 12 layers, 12 heads,
// embedding 512).
std::shared_ptr<Model> build_clip_vit(const std::string& name, ConfigReader& cfg, const ModelShape& shape) {
  OODT_CHECK(shape.input.size() == 3, "clip_vit takes [C, H, W] images");
  TransformerDefaults d{64, 2, 4, 4, 1e-5};
  if (name != "clip_vit") d = {768, 12, 12, 4, 1e-5};
  Stack trunk = image_trunk(cfg, shape);
  const int64_t patch = cfg.get<int64_t>("patch", name == "clip_vit_b32" ? 32 : name == "clip_vit_b16" ? 16 : 4);
  const std::string act = cfg.one_of("activation", "quick_gelu", {"quick_gelu", "gelu"});
  const TransformerOptions t = read_transformer(cfg, d, act == "gelu" ? Activation::Gelu : Activation::QuickGelu);
  const int64_t embed_dim = cfg.get<int64_t>("embed_dim", name == "clip_vit" ? 32 : 512);
  const bool normalize = cfg.get<bool>("normalize_features", false);
  cfg.check(embed_dim > 0, "embed_dim", "must be positive");
  const int64_t tokens = patch_tokens(cfg, shape, patch);
  trunk->push_back("embed", std::make_shared<ClipEmbedImpl>(shape.input[0], patch, t.dim, tokens));
  trunk->push_back("ln_pre", std::make_shared<LayerNormImpl>(t.dim, t.ln_eps));
  trunk->push_back("blocks", blocks(t, /*causal=*/false));
  trunk->push_back("pool", std::make_shared<PoolImpl>(/*cls_token=*/true));
  trunk->push_back("ln_post", std::make_shared<LayerNormImpl>(t.dim, t.ln_eps));
  trunk->push_back("proj", std::make_shared<ProjectionImpl>(t.dim, embed_dim));
  if (normalize) trunk->push_back("normalize_features", std::make_shared<L2NormalizeImpl>());
  return std::make_shared<Model>(name, trunk, std::make_shared<HeadImpl>(embed_dim, shape.num_classes, t.dropout));
}

// transformer_lm: causal byte-level language model; output [B * L, 256], one prediction per
// position (the data source's labels are the next bytes, flattened the same way).
std::shared_ptr<Model> build_transformer_lm(ConfigReader& cfg, const ModelShape& shape) {
  OODT_CHECK(shape.input.size() == 1, "transformer_lm takes [L] token sequences (data.type: text)");
  const TransformerOptions t = read_transformer(cfg, {64, 2, 4, 2, 1e-5});
  Stack trunk = make_stack();
  trunk->push_back("embed", std::make_shared<TokenEmbedImpl>(shape.num_classes, t.dim, shape.input[0]));
  trunk->push_back("blocks", blocks(t, /*causal=*/true));
  trunk->push_back("norm", std::make_shared<LayerNormImpl>(t.dim));
  trunk->push_back("flatten", std::make_shared<FlattenTokensImpl>());
  return std::make_shared<Model>("transformer_lm", trunk, std::make_shared<HeadImpl>(t.dim, shape.num_classes, t.dropout));
}

}  // namespace oodt
