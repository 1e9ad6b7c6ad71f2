#include "algorithms/ssa/ssa.h"

#include <cmath>
#include <limits>

#include "core/config.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/precision.h"

namespace oodt {
namespace {

// Bernoulli draw from the current generator.
bool coin(double p) { return p >= 1.0 || (p > 0.0 && at::rand({1}, at::kDouble).item<double>() < p); }

}  // namespace

std::vector<KeepSet> sample_keep_sets(int64_t n, const SsaSampling& o, bool causal) {
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
      parts.push_back(at::matmul(at::softmax(float32(scores), -1), vs));  // softmax in float32 under autocast
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
    const at::Tensor p = at::softmax(float32(at::cat({scores, own}, -1)), -1);
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

SubsampledKernelImpl::SubsampledKernelImpl(bool causal_, SsaSampling sampling_)
    : AttentionKernelImpl(causal_), sampling(sampling_) {}

at::Tensor SubsampledKernelImpl::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!(is_training() ? train : eval)) return AttentionKernelImpl::forward(q, k, v);
  return subsampled_attention(q, k, v, sample_keep_sets(q.size(2), sampling, causal), causal);
}

SsaOptions SsaOptions::from_config(ConfigReader& cfg) {
  SsaOptions o;
  o.sampling.ratio = cfg.get<int64_t>("ratio", o.sampling.ratio);
  cfg.check(o.sampling.ratio >= 1, "ratio", "must be >= 1 (keep about N / ratio keys)");
  o.sampling.pattern =
      cfg.one_of<KeyPattern>("pattern", o.sampling.pattern, {{"uniform", KeyPattern::Uniform}, {"local", KeyPattern::Local}});
  o.sampling.block = cfg.get<int64_t>("block", o.sampling.block);
  cfg.check(o.sampling.block >= 1, "block", "must be >= 1");
  o.finetune_fraction = cfg.get("finetune_fraction", o.finetune_fraction);
  cfg.check(o.finetune_fraction >= 0 && o.finetune_fraction <= 1, "finetune_fraction", "must be in [0, 1]");
  o.ensemble = cfg.one_of("eval", std::string("dense"), {"dense", "ensemble"}) == "ensemble";
  o.eval_passes = cfg.get<int64_t>("eval_passes", o.eval_passes);
  cfg.check(o.eval_passes >= 1, "eval_passes", "must be >= 1");
  return o;
}

int64_t ssa_dense_from(int64_t total_steps, double finetune_fraction) {
  return static_cast<int64_t>(std::floor(static_cast<double>(total_steps) * (1.0 - finetune_fraction)));
}

void StochasticSubsampledAttention::prepare_model(State& state) {
  kernels_.clear();
  replace_layers<AttentionKernelImpl>(*state.model, [&](AttentionKernelImpl& kernel, const std::string&) {
    auto k = std::make_shared<SubsampledKernelImpl>(kernel.causal, o_.sampling);
    k->eval = o_.ensemble;
    kernels_.push_back(k);
    return k;
  });
  if (kernels_.empty())
    throw ConfigError(key(), concat("the model (", state.model->kind(),
                                    ") has no attention layers; use model.name vit or transformer_lm"));
}

void StochasticSubsampledAttention::set_training_mode(const State& state) {
  const bool subsample = state.step < ssa_dense_from(state.max_steps, o_.finetune_fraction);
  for (auto& k : kernels_) k->train = subsample;
}

void StochasticSubsampledAttention::hooks(HookTable& table) {
  table.on(Phase::FitStart, [this](State& s) { set_training_mode(s); });
  table.on(Phase::BeforeForward, [this](State& s) { set_training_mode(s); });
}

at::Tensor StochasticSubsampledAttention::predict(Model& model, const at::Tensor& inputs) {
  if (!o_.ensemble || o_.eval_passes <= 1) return model.forward(inputs);
  at::Tensor probs;
  for (int64_t e = 0; e < o_.eval_passes; ++e) {
    const at::Tensor p = at::softmax(model.forward(inputs), -1);
    probs = probs.defined() ? probs + p : p;
  }
  return probs.div_(static_cast<double>(o_.eval_passes)).log_();
}

}  // namespace oodt
