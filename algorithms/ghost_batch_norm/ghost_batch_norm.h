#pragma once
// Ghost batch norm (Hoffer et al. 2017, arXiv 1705.08741): in training, every BatchNorm layer
// normalises chunks of `size` samples of the rank's batch separately (see
// core/models/layers.h: ghost_batch_norm). Eval uses the running statistics, any batch size.
#include "core/algorithm.h"
#include "core/models/layers.h"

namespace oodt {

// Sets ghost options on every BatchNorm layer of `module`; returns how many it configured.
int64_t apply_ghost_batch_norm(torch::nn::Module& module, const GhostOptions& options);

class GhostBatchNorm final : public Algorithm {
 public:
  explicit GhostBatchNorm(GhostOptions options) : options_(options) {}
  PhaseSet hooks() const override { return phases({Phase::FitStart, Phase::FitEnd}); }
  void run(Phase phase, State& state) override;
  // Never with another plugin that changes how BatchNorm computes its statistics.
  std::vector<std::string> claims() const override { return {"batch_norm_statistics"}; }

 private:
  GhostOptions options_;
};

}  // namespace oodt
