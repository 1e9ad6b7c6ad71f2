#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"

#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

int64_t apply_ghost_batch_norm(torch::nn::Module& module, const GhostOptions& options) {
  return for_each_layer<BatchNormImpl>(module, [&](BatchNormImpl& bn) { bn.ghost = options; });
}

void GhostBatchNorm::run(Phase phase, State& state) {
  if (phase == Phase::FitEnd) {
    apply_ghost_batch_norm(*state.model, GhostOptions{});
    return;
  }
  if (options_.size > state.batch_size)
    throw ConfigError("algorithms.ghost_batch_norm.size",
                      concat("ghost batch size ", options_.size, " exceeds the per-rank batch (data.batch_size = ",
                             state.batch_size, ")"));
  if (apply_ghost_batch_norm(*state.model, options_) == 0)
    throw ConfigError("algorithms.ghost_batch_norm",
                      concat("the model (", state.model->kind(), ") has no BatchNorm layer to make ghost"));
}

}  // namespace oodt
