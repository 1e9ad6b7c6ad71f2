#include "core/models/attention.h"

#include <cmath>

#include "core/error.h"

namespace oodt {
namespace {

at::Tensor causal_mask(int64_t q_begin, int64_t q_end, const at::Tensor& key_pos) {
  // [q, s]: true where the key comes after the query.
  const at::Tensor qpos = at::arange(q_begin, q_end, key_pos.options()).unsqueeze(1);
  return key_pos.unsqueeze(0) > qpos;
}

// Bernoulli draw from the current generator.
bool coin(double p) { return p >= 1.0 || (p > 0.0 && at::rand({1}, at::kDouble).item<double>() < p); }

}  // namespace

std::vector<KeepSet> sample_keep_sets(int64_t n, const SsaOptions& o, bool causal) {
  OODT_CHECK(o.ratio >= 1, "SSA ratio must be >= 1");
  const int64_t target = (n + o.ratio - 1) / o.ratio;
  if (o.pattern == KeyPattern::Uniform) {
    at::Tensor keys = std::get<0>(at::randperm(n, at::kLong).narrow(0, 0, target).sort());
    return {KeepSet{0, n, keys}};
  }
  const int64_t bs = std::max<int64_t>(1, o.block);
  const int64_t nb = (n + bs - 1) / bs;
  // Candidate far blocks per query block, and c such that the mean kept count is nb / r.
  auto expected = [&](double c) {
    double total = 0;
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t j = 0; j < nb; ++j) {
        const int64_t d = std::llabs(j - b);
        if (causal && j > b) continue;
        total += d <= 1 ? 1.0 : std::min(1.0, c / static_cast<double>(d));
      }
    return total / static_cast<double>(nb);
  };
  const double want = static_cast<double>(nb) / static_cast<double>(o.ratio);
  double lo = 0, hi = static_cast<double>(nb);
  for (int it = 0; it < 40; ++it) {
    const double mid = (lo + hi) / 2;
    (expected(mid) < want ? lo : hi) = mid;
  }
  std::vector<KeepSet> sets;
  for (int64_t b = 0; b < nb; ++b) {
    std::vector<int64_t> keys;
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t d = std::llabs(j - b);
      if (causal && j > b) continue;
      if (d <= 1 || coin(lo / static_cast<double>(d)))
        for (int64_t t = j * bs; t < std::min(n, (j + 1) * bs); ++t) keys.push_back(t);
    }
    sets.push_back(KeepSet{b * bs, std::min(n, (b + 1) * bs), at::tensor(keys, at::kLong)});
  }
  return sets;
}

at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                           bool causal) {
  const int64_t n = q.size(2);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).div_(std::sqrt(static_cast<double>(q.size(-1))));
  at::Tensor masked;
  if (causal) masked = causal_mask(0, n, at::arange(n, at::TensorOptions().dtype(at::kLong).device(q.device())));
  if (allowed.defined()) masked = masked.defined() ? masked.logical_or(allowed.logical_not()) : allowed.logical_not();
  if (masked.defined()) scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
  return at::matmul(at::softmax(scores, -1), v);
}

at::Tensor subsampled_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const std::vector<KeepSet>& sets, bool causal) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  std::vector<at::Tensor> parts;
  for (const KeepSet& s : sets) {
    const at::Tensor keys = s.keys.to(q.device());
    const at::Tensor qs = q.narrow(2, s.begin, s.end - s.begin);
    const at::Tensor ks = k.index_select(2, keys);
    const at::Tensor vs = v.index_select(2, keys);
    at::Tensor scores = at::matmul(qs, ks.transpose(-2, -1)).mul_(scale);  // [B, H, q, s]
    if (!causal) {
      parts.push_back(at::matmul(at::softmax(scores, -1), vs));
      continue;
    }
    // Keys after the query, and the query's own position (attended separately below), are
    // masked among the kept keys.
    const at::Tensor qpos = at::arange(s.begin, s.end, keys.options()).unsqueeze(1);
    const at::Tensor drop = keys.unsqueeze(0) >= qpos;
    scores = scores.masked_fill(drop, -std::numeric_limits<float>::infinity());
    const at::Tensor kq = k.narrow(2, s.begin, s.end - s.begin);
    const at::Tensor vq = v.narrow(2, s.begin, s.end - s.begin);
    const at::Tensor own = (qs * kq).sum(-1, /*keepdim=*/true).mul_(scale);  // [B, H, q, 1]
    const at::Tensor p = at::softmax(at::cat({scores, own}, -1), -1);
    const int64_t m = keys.size(0);
    parts.push_back(at::matmul(p.narrow(-1, 0, m), vs) + p.narrow(-1, m, 1) * vq);
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, 2);
}

at::Tensor allowed_mask(int64_t n, const std::vector<KeepSet>& sets, bool causal) {
  at::Tensor allowed = at::zeros({n, n}, at::kBool);
  for (const KeepSet& s : sets) {
    allowed.narrow(0, s.begin, s.end - s.begin).index_fill_(1, s.keys, true);
    if (causal)
      for (int64_t i = s.begin; i < s.end; ++i) allowed[i][i] = true;
  }
  return allowed;
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads_, bool causal_) : heads(heads_), causal(causal_) {
  OODT_CHECK(dim % heads == 0, "attention: dim ", dim, " is not divisible by heads ", heads);
  qkv = register_module("qkv", QLinear(dim, 3 * dim, /*signed_input=*/true));
  proj = register_module("proj", QLinear(dim, dim, /*signed_input=*/true));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  const int64_t b = x.size(0), n = x.size(1), d = x.size(2);
  const auto qkv_ = qkv->forward(x).reshape({b, n, 3, heads, d / heads}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = qkv_[0], k = qkv_[1], v = qkv_[2];  // [B, H, N, d/H]
  const bool subsample = is_training() ? ssa.train : ssa.eval;
  const at::Tensor out = subsample ? subsampled_attention(q, k, v, sample_keep_sets(n, ssa, causal), causal)
                                   : dense_attention(q, k, v, at::Tensor(), causal);
  return proj->forward(out.transpose(1, 2).reshape({b, n, d}));
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, bool causal) {
  ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  attn = register_module("attn", Attention(dim, heads, causal));
  ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  fc1 = register_module("fc1", QLinear(dim, mlp_dim, /*signed_input=*/true));
  fc2 = register_module("fc2", QLinear(mlp_dim, dim, /*signed_input=*/true));
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = x + attn->forward(ln1->forward(x));
  return y + fc2->forward(at::gelu(fc1->forward(ln2->forward(y))));
}

}  // namespace oodt
