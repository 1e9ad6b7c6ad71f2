#pragma once
// Ghost batch norm (Hoffer et al. 2017, arXiv 1705.08741): in training, every BatchNorm layer
// normalises chunks of `size` samples of the rank's batch separately. The plugin swaps every
// BatchNorm for a GhostBatchNorm (module surgery: same names, same tensors). Eval uses the
// running statistics, any batch size; re-estimating statistics (a soup's recalibration) uses
// whole batches (core/models/layers.h: BatchNorm's calibrating mode).
#include <cstdint>

#include "core/algorithm.h"
#include "core/models/layers.h"

namespace oodt {

class ConfigReader;

enum class GhostStats { PerChunk, Scaled };

struct GhostOptions {
  int64_t size = 32;  // g: samples per ghost batch
  GhostStats stats = GhostStats::PerChunk;
  static GhostOptions from_config(ConfigReader& cfg);
};

// Ghost batch norm in training mode: x is split with torch.chunk semantics into
// ceil(N / g) chunks, each normalised with its own mean and biased variance (gradients flow
// through each chunk's statistics); running statistics get one EMA update per chunk, in order,
// with `momentum` (PerChunk) or momentum / chunks (Scaled), using the unbiased chunk variance.
at::Tensor ghost_batch_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor& running_mean, at::Tensor& running_var, const GhostOptions& ghost,
                            double momentum, double eps);

class GhostBatchNormImpl final : public BatchNormImpl {
 public:
  // Takes over `base`'s parameters, buffers, momentum and eps.
  GhostBatchNormImpl(const BatchNormImpl& base, GhostOptions options);
  GhostOptions ghost;

 protected:
  // Batches of at most `ghost.size` samples are normalised whole.
  at::Tensor train_forward(const at::Tensor& x) override;
};

// Swaps every BatchNorm layer of `module` for a GhostBatchNorm; returns how many.
int64_t apply_ghost_batch_norm(torch::nn::Module& module, const GhostOptions& options);

class GhostBatchNorm final : public Algorithm {
 public:
  static constexpr const char* kName = "ghost_batch_norm";
  static constexpr const char* kSummary = "model: BatchNorm statistics per ghost batch of g samples (Hoffer et al. 2017)";
  using Options = GhostOptions;

  explicit GhostBatchNorm(GhostOptions options) : options_(options) {}
  // Checks the ghost size against the per-rank batch, then swaps the layers.
  void prepare_model(State& state) override;
  void hooks(HookTable&) override {}
  std::vector<Claim> claims() const override { return {Claim::BatchNormStatistics}; }
  Capabilities capabilities() const override { return Capabilities::swapping_layers(); }

 private:
  GhostOptions options_;
};

}  // namespace oodt
