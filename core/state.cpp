#include "core/state.h"

#include "core/error.h"

namespace oodt {

Batch Batch::to(const at::Device& device) const {
  Batch b;
  auto move = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };
  b.inputs = move(inputs);
  b.labels = move(labels);
  b.domains = move(domains);
  b.soft_targets = move(soft_targets);
  return b;
}

Batch Batch::slice(int64_t start, int64_t count) const {
  Batch b;
  auto cut = [&](const at::Tensor& t) { return t.defined() ? t.narrow(0, start, count) : t; };
  b.inputs = cut(inputs);
  b.labels = cut(labels);
  b.domains = cut(domains);
  b.soft_targets = cut(soft_targets);
  return b;
}

at::Tensor classification_loss(const at::Tensor& logits, const Batch& batch) {
  // In float32 under autocast (bf16/fp16 logits), as float32() of core/precision.h would; written
  // out here so that the data layer's users (the fuzz targets) need no precision code.
  const bool half = logits.scalar_type() == at::kBFloat16 || logits.scalar_type() == at::kHalf;
  const at::Tensor logp = at::log_softmax(half ? logits.to(at::kFloat) : logits, 1);
  const int64_t n = batch.soft_targets.defined() ? batch.soft_targets.size(0) : batch.labels.size(0);
  OODT_CHECK(n > 0 && logits.dim() == 2 && logits.size(0) % n == 0, "logits ", logits.sizes(), " do not match ", n,
             " targets (expected N or a multiple M*N of rows)");
  const int64_t m = logits.size(0) / n;
  if (batch.soft_targets.defined()) {
    OODT_CHECK(batch.soft_targets.size(1) == logits.size(1), "soft targets ", batch.soft_targets.sizes(),
               " do not match logits ", logits.sizes());
    const at::Tensor t = m == 1 ? batch.soft_targets : batch.soft_targets.repeat({m, 1});
    return -(t * logp).sum(1).mean();
  }
  return at::nll_loss(logp, m == 1 ? batch.labels : batch.labels.repeat({m}));
}

}  // namespace oodt
