#include "core/state.h"

#include "core/data_source.h"
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
  const at::Tensor logp = at::log_softmax(logits, 1);
  if (batch.soft_targets.defined()) {
    OODT_CHECK(batch.soft_targets.sizes() == logits.sizes(), "soft targets ", batch.soft_targets.sizes(),
               " do not match logits ", logits.sizes());
    return -(batch.soft_targets * logp).sum(1).mean();
  }
  return at::nll_loss(logp, batch.labels);
}

const TrainPool& DataSource::train_pool() {
  throw ConfigError("data", "this data source has no training pool to deal to clients");
}

Batch DataSource::read_pool(const std::vector<int64_t>&) {
  throw ConfigError("data", "this data source has no training pool to deal to clients");
}

}  // namespace oodt
