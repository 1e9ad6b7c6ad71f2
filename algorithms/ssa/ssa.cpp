#include "algorithms/ssa/ssa.h"

#include <cmath>

#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

int64_t apply_ssa(torch::nn::Module& module, const SsaOptions& options) {
  return for_each_layer<AttentionImpl>(module, [&](AttentionImpl& a) { a.ssa = options; });
}

int64_t ssa_dense_from(int64_t total_steps, double finetune_fraction) {
  return static_cast<int64_t>(std::floor(static_cast<double>(total_steps) * (1.0 - finetune_fraction)));
}

void StochasticSubsampledAttention::run(Phase phase, State& state) {
  Model& model = *state.model;
  SsaOptions o = o_.attention;
  switch (phase) {
    case Phase::FitStart:
      o.eval = o_.ensemble;
      subsampling_ = state.step < ssa_dense_from(state.max_steps, o_.finetune_fraction);
      o.train = subsampling_;
      if (apply_ssa(model, o) == 0)
        throw ConfigError("algorithms.ssa", concat("the model (", model.kind(),
                                                   ") has no attention layers; use model.name vit or transformer_lm"));
      model.eval_passes = o_.ensemble ? o_.eval_passes : 1;
      break;
    case Phase::BeforeForward: {
      const bool want = state.step < ssa_dense_from(state.max_steps, o_.finetune_fraction);
      if (want != subsampling_) {
        o.train = want;
        o.eval = o_.ensemble;
        apply_ssa(model, o);
        subsampling_ = want;
      }
      break;
    }
    case Phase::FitEnd:
      apply_ssa(model, SsaOptions{});
      model.eval_passes = 1;
      break;
    default:
      break;
  }
}

}  // namespace oodt
