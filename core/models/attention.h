#pragma once
// Self-attention, written once for every transformer of the zoo. The attention itself
// (softmax(q k^T / sqrt(d)) v) is a parameter-free kernel module in a slot of the attention
// layer, so a plugin replaces how tokens attend (e.g. to a subsample of the keys) in every
// model by swapping kernels, whatever projections surround them.
#include <cstdint>

#include "core/models/layers.h"

namespace oodt {

// softmax(q k^T / sqrt(d) + mask) v for q, k, v [B, H, N, d]; `allowed` is an optional [N, N]
// bool mask (false = -inf); `causal` also masks keys after the query.
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                           bool causal);

// The kernel: dense attention, optionally causal. Subclasses change which keys a query sees.
class AttentionKernelImpl : public torch::nn::Module {
 public:
  explicit AttentionKernelImpl(bool causal_) : causal(causal_) {}
  virtual at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
  bool causal;
};

// Multi-head self-attention over x [B, N, D]: qkv projection, kernel, output projection.
class AttentionImpl : public Block {
 public:
  AttentionImpl(int64_t dim, int64_t heads, bool causal);
  at::Tensor forward(const at::Tensor& x) override;

  int64_t heads;
  Slot<LinearImpl> qkv, proj;
  Slot<AttentionKernelImpl> kernel;
};

// The MLP's activation: exact GELU (timm, torchvision) or CLIP's QuickGELU, x * sigmoid(1.702 x)
// (the OpenAI CLIP weights were trained with it).
enum class Activation { Gelu, QuickGelu };

// Pre-norm transformer block: x + attn(ln1(x)), then x + fc2(act(fc1(ln2(x)))).
class TransformerBlockImpl : public Block {
 public:
  TransformerBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, bool causal, double ln_eps = 1e-5,
                       Activation act = Activation::Gelu);
  at::Tensor forward(const at::Tensor& x) override;

  Activation act;
  Slot<LayerNormImpl> ln1, ln2;
  Slot<AttentionImpl> attn;
  Slot<LinearImpl> fc1, fc2;
};

}  // namespace oodt
