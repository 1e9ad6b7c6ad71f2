#include "algorithms/mixup/mixup.h"

#include "core/config.h"

namespace oodt {

void mix_batch(Batch& batch, double lam, const at::Tensor& perm, int64_t num_classes) {
  const at::Tensor p = perm.to(batch.inputs.device());
  batch.inputs = batch.inputs.mul(lam).add_(batch.inputs.index_select(0, p), 1.0 - lam);
  const at::Tensor t = batch.soft_targets.defined()
                           ? batch.soft_targets
                           : at::one_hot(batch.labels, num_classes).to(batch.inputs.scalar_type());
  batch.soft_targets = t.mul(lam).add_(t.index_select(0, p), 1.0 - lam);
}

MixupOptions MixupOptions::from_config(ConfigReader& cfg) {
  MixupOptions o;
  o.alpha = cfg.get("alpha", o.alpha);
  cfg.check(o.alpha > 0, "alpha", "must be > 0 (Beta(alpha, alpha))");
  return o;
}

void Mixup::hooks(HookTable& table) {
  table.on(Phase::BeforeForward, [this](State& s) { mix(s); });
}

void Mixup::mix(State& state) {
  // lam ~ Beta(a, a) as the first coordinate of a Dirichlet(a, a) draw.
  const at::Tensor conc = at::full({2}, o_.alpha, at::kDouble);
  last_lambda_ = at::_sample_dirichlet(conc)[0].item<double>();
  const at::Tensor perm = at::randperm(state.batch.size(), at::kLong);
  mix_batch(state.batch, last_lambda_, perm, state.num_classes);
}

}  // namespace oodt
