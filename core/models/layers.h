#pragma once
// Layers of the model zoo that algorithm plugins reconfigure in place (so parameter names,
// and therefore checkpoints, never change):
//   Head       dropout + linear classifier; multi-sample dropout sets `samples`.
//   BatchNorm  BatchNorm over dim 1 (1-d or 2-d inputs); ghost batch norm sets `ghost`.
// Each delegates to a functional core that tests call directly.
#include <cstdint>
#include <string>

#include "core/models/quant.h"
#include "core/torch_fwd.h"

namespace oodt {

// Logits of the head for M dropout masks: `masks` [M, N, D] already scaled by 1/(1-p);
// returns [M*N, K], mask-major (rows m*N .. m*N+N-1 use mask m).
at::Tensor multi_sample_logits(const at::Tensor& h, const at::Tensor& masks, const at::Tensor& weight,
                               const at::Tensor& bias);

class HeadImpl : public torch::nn::Module {
 public:
  // `signed_input`: the features can be negative (after a LayerNorm), for input quantization.
  HeadImpl(int64_t features, int64_t classes, double dropout, bool signed_input = false);
  // Eval: fc(h). Training: M = `samples` independent dropout masks over h, logits [M*N, K].
  at::Tensor forward(const at::Tensor& h);

  double dropout = 0.0;  // p
  int64_t samples = 1;   // M
  QLinear fc{nullptr};
};
TORCH_MODULE(Head);

enum class GhostStats { PerChunk, Scaled };

struct GhostOptions {
  int64_t size = 0;  // g: samples per ghost batch; 0 = ordinary batch norm
  GhostStats stats = GhostStats::PerChunk;
};

// Ghost batch norm in training mode: x is split with torch.chunk semantics into
// ceil(N / g) chunks, each normalised with its own mean and biased variance (gradients flow
// through each chunk's statistics); running statistics get one EMA update per chunk, in order,
// with `momentum` (PerChunk) or momentum / chunks (Scaled), using the unbiased chunk variance.
at::Tensor ghost_batch_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor& running_mean, at::Tensor& running_var, const GhostOptions& ghost,
                            double momentum, double eps);

class BatchNormImpl : public torch::nn::Module {
 public:
  explicit BatchNormImpl(int64_t features, double momentum = 0.1, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x);

  // Same names as torch.nn.BatchNorm*d.
  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double momentum, eps;
  GhostOptions ghost;
};
TORCH_MODULE(BatchNorm);

}  // namespace oodt
