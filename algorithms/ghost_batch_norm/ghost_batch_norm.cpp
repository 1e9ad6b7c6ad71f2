#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"

#include "core/config.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/precision.h"

namespace oodt {

GhostOptions GhostOptions::from_config(ConfigReader& cfg) {
  GhostOptions o;
  o.size = cfg.get<int64_t>("size", o.size);
  cfg.check(o.size >= 2, "size", "must be >= 2 (a ghost batch needs a variance)");
  o.stats = cfg.one_of<GhostStats>("running_stats", o.stats,
                                   {{"per_chunk", GhostStats::PerChunk}, {"scaled", GhostStats::Scaled}});
  return o;
}

at::Tensor ghost_batch_norm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor& running_mean, at::Tensor& running_var, const GhostOptions& ghost,
                            double momentum, double eps) {
  // Each ghost batch's statistics in float32 (under autocast), the output in the input's dtype.
  const at::Tensor x = float32(input);
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
  return at::cat(out, 0).to(input.scalar_type());
}

GhostBatchNormImpl::GhostBatchNormImpl(const BatchNormImpl& base, GhostOptions options)
    : BatchNormImpl(base, Adopt{}), ghost(options) {}

at::Tensor GhostBatchNormImpl::train_forward(const at::Tensor& x) {
  if (x.size(0) <= ghost.size) return BatchNormImpl::train_forward(x);
  return ghost_batch_norm(x, weight, bias, running_mean, running_var, ghost, momentum, eps);
}

int64_t apply_ghost_batch_norm(torch::nn::Module& module, const GhostOptions& options) {
  return replace_layers<BatchNormImpl>(module, [&](BatchNormImpl& bn, const std::string&) {
    return std::make_shared<GhostBatchNormImpl>(bn, options);
  });
}

void GhostBatchNorm::prepare_model(State& state) {
  if (options_.size > state.batch_size)
    throw ConfigError(key() + ".size", concat("ghost batch size ", options_.size,
                                              " exceeds the per-rank batch (data.batch_size = ", state.batch_size, ")"));
  if (apply_ghost_batch_norm(*state.model, options_) == 0)
    throw ConfigError(key(), concat("the model (", state.model->kind(), ") has no BatchNorm layer to make ghost"));
}

}  // namespace oodt
