#pragma once
// Self-attention written once, dense or stochastically subsampled (SSA, Hussain et al. KDD
// 2023, arXiv 2306.01705): in training, each layer and step keeps a subset of key/value
// positions, every query attends only to its kept set (softmax renormalised over it), and K
// and V are gathered at the kept positions, so the cost is N x |S| instead of N x N.
#include <cstdint>
#include <vector>

#include "core/models/quant.h"
#include "core/torch_fwd.h"

namespace oodt {

enum class KeyPattern { Uniform, Local };

struct SsaOptions {
  bool train = false;    // subsample in training forward passes
  bool eval = false;     // subsample in eval forward passes (self-ensemble)
  int64_t ratio = 4;     // r: keep about N / r keys
  KeyPattern pattern = KeyPattern::Uniform;
  int64_t block = 16;    // Local: tokens per block
};

// Queries [begin, end) attend to the sorted key positions `keys` (int64).
struct KeepSet {
  int64_t begin = 0, end = 0;
  at::Tensor keys;
};

// Draws the kept keys for one layer and step from the current generator.
//  Uniform: one set of ceil(N / r) positions shared by all queries.
//  Local:   per query block b, blocks b-1..b+1 always, and farther blocks at distance d with
//           probability min(1, c / d), c chosen so that on average about N / r keys are kept.
//           With a causal mask only blocks up to b are candidates.
std::vector<KeepSet> sample_keep_sets(int64_t n, const SsaOptions& o, bool causal);

// softmax(q k^T / sqrt(d) + mask) v for q, k, v [B, H, N, d]; `allowed` is an optional [N, N]
// bool mask (false = -inf); `causal` also masks keys after the query.
at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                           bool causal);

// Attention of each query over its kept set only, gathering K and V at the kept positions.
// With `causal`, kept keys after the query are masked and the query's own position is always
// attended (so no query has an empty set). Equal to dense_attention with -inf on every dropped
// key (see allowed_mask).
at::Tensor subsampled_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const std::vector<KeepSet>& sets, bool causal);

// The [N, N] mask subsampled_attention is equivalent to (the test oracle).
at::Tensor allowed_mask(int64_t n, const std::vector<KeepSet>& sets, bool causal);

// Multi-head self-attention over x [B, N, D].
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads, bool causal);
  at::Tensor forward(const at::Tensor& x);

  int64_t heads;
  bool causal;
  SsaOptions ssa;
  QLinear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

// Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)) with a GELU MLP.
class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, bool causal);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  Attention attn{nullptr};
  QLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace oodt
