#include "core/models/attention.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/precision.h"

namespace oodt {

at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                           bool causal) {
  const int64_t n = q.size(2);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).div_(std::sqrt(static_cast<double>(q.size(-1))));
  at::Tensor masked;
  if (causal) {
    const at::Tensor pos = at::arange(n, at::TensorOptions().dtype(at::kLong).device(q.device()));
    masked = pos.unsqueeze(0) > pos.unsqueeze(1);  // [query, key]: the key comes after the query
  }
  if (allowed.defined()) masked = masked.defined() ? masked.logical_or(allowed.logical_not()) : allowed.logical_not();
  if (masked.defined()) scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
  // softmax in float32 under autocast (as CUDA autocast does); matmul casts back.
  return at::matmul(at::softmax(float32(scores), -1), v);
}

at::Tensor AttentionKernelImpl::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return dense_attention(q, k, v, at::Tensor(), causal);
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads_, bool causal) : heads(heads_) {
  OODT_CHECK(dim % heads == 0, "attention: dim ", dim, " is not divisible by heads ", heads);
  bind(qkv, "qkv", std::make_shared<LinearImpl>(dim, 3 * dim));
  bind(proj, "proj", std::make_shared<LinearImpl>(dim, dim));
  bind(kernel, "kernel", std::make_shared<AttentionKernelImpl>(causal));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1), d = x.size(2);
  const auto parts = qkv->forward(x).reshape({b, n, 3, heads, d / heads}).permute({2, 0, 3, 1, 4});
  const at::Tensor out = kernel->forward(parts[0], parts[1], parts[2]);  // [B, H, N, d/H]
  return proj->forward(out.transpose(1, 2).reshape({b, n, d}));
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, bool causal, double ln_eps,
                                           Activation act_)
    : act(act_) {
  bind(ln1, "ln1", std::make_shared<LayerNormImpl>(dim, ln_eps));
  bind(attn, "attn", std::make_shared<AttentionImpl>(dim, heads, causal));
  bind(ln2, "ln2", std::make_shared<LayerNormImpl>(dim, ln_eps));
  bind(fc1, "fc1", std::make_shared<LinearImpl>(dim, mlp_dim));
  bind(fc2, "fc2", std::make_shared<LinearImpl>(mlp_dim, dim));
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x) {
  const at::Tensor y = x + attn->forward(ln1->forward(x));
  const at::Tensor h = fc1->forward(ln2->forward(y));
  return y + fc2->forward(act == Activation::Gelu ? at::gelu(h) : h * at::sigmoid(h * 1.702));
}

}  // namespace oodt
