#include "core/models/layers.h"

#include "core/error.h"

namespace oodt {

at::Tensor multi_sample_logits(const at::Tensor& h, const at::Tensor& masks, const at::Tensor& weight,
                               const at::Tensor& bias) {
  OODT_CHECK(masks.dim() == 3 && masks.size(1) == h.size(0) && masks.size(2) == h.size(1),
             "masks must be [M, N, D] for features ", h.sizes(), ", got ", masks.sizes());
  const at::Tensor dropped = (h.unsqueeze(0) * masks).reshape({-1, h.size(1)});
  return at::linear(dropped, weight, bias);
}

HeadImpl::HeadImpl(int64_t features, int64_t classes, double p, bool signed_input) : dropout(p) {
  fc = register_module("fc", QLinear(features, classes, signed_input));
}

at::Tensor HeadImpl::forward(const at::Tensor& h) {
  if (!is_training() || (dropout == 0.0 && samples == 1)) return fc->forward(h);
  const double keep = 1.0 - dropout;
  const at::Tensor masks =
      at::bernoulli(at::full({samples, h.size(0), h.size(1)}, keep, h.options())).div_(keep);
  // With quantization the features are quantized before the dropout masks.
  return multi_sample_logits(fc->quant.input_of(h), masks, fc->quant.weight_of(fc->weight), fc->bias);
}

at::Tensor ghost_batch_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor& running_mean, at::Tensor& running_var, const GhostOptions& ghost,
                            double momentum, double eps) {
  const int64_t n = x.size(0);
  const int64_t groups = (n + ghost.size - 1) / ghost.size;
  const std::vector<at::Tensor> chunks = x.chunk(groups, 0);
  const double m = ghost.stats == GhostStats::Scaled ? momentum / static_cast<double>(chunks.size()) : momentum;
  std::vector<at::Tensor> out;
  out.reserve(chunks.size());
  for (const at::Tensor& c : chunks) {
    OODT_CHECK(c.size(0) > 1, "ghost batch norm: a chunk of one sample has no variance (batch ", n,
               ", ghost size ", ghost.size, ")");
    out.push_back(at::batch_norm(c, weight, bias, running_mean, running_var, /*training=*/true, m, eps,
                                 /*cudnn_enabled=*/true));
  }
  return at::cat(out, 0);
}

BatchNormImpl::BatchNormImpl(int64_t features, double momentum_, double eps_) : momentum(momentum_), eps(eps_) {
  weight = register_parameter("weight", at::ones({features}));
  bias = register_parameter("bias", at::zeros({features}));
  running_mean = register_buffer("running_mean", at::zeros({features}));
  running_var = register_buffer("running_var", at::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

at::Tensor BatchNormImpl::forward(const at::Tensor& x) {
  if (!is_training())
    return at::batch_norm(x, weight, bias, running_mean, running_var, false, momentum, eps, true);
  {
    at::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (ghost.size > 0 && x.size(0) > ghost.size)
    return ghost_batch_norm(x, weight, bias, running_mean, running_var, ghost, momentum, eps);
  return at::batch_norm(x, weight, bias, running_mean, running_var, true, momentum, eps, true);
}

}  // namespace oodt
