#include "core/models/layers.h"

#include <cmath>

#include <torch/nn/init.h>

#include "core/error.h"
#include "core/precision.h"

namespace oodt {
namespace {

// torch.nn's initialisation of conv and linear layers: kaiming_uniform_(a = sqrt(5)) for the
// weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias, in that order.
void torch_init(at::Tensor& weight, at::Tensor& bias) {
  at::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

}  // namespace

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  OODT_CHECK(in > 0 && out > 0, "linear layer of ", in, " -> ", out, " features");
  weight = register_parameter("weight", at::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", at::empty({out}));
  torch_init(weight, bias);
}

LinearImpl::LinearImpl(const LinearImpl& base, Adopt)
    : in_features(base.in_features), out_features(base.out_features) {
  weight = register_parameter("weight", base.weight);
  if (base.bias.defined()) bias = register_parameter("bias", base.bias);
}

Conv2dImpl::Conv2dImpl(const ConvOptions& o) : options(o) {
  OODT_CHECK(o.in > 0 && o.out > 0 && o.kernel > 0 && o.groups > 0 && o.in % o.groups == 0 && o.out % o.groups == 0,
             "conv layer ", o.in, " -> ", o.out, " channels, kernel ", o.kernel, ", groups ", o.groups);
  weight = register_parameter("weight", at::empty({o.out, o.in / o.groups, o.kernel, o.kernel}));
  if (o.bias) bias = register_parameter("bias", at::empty({o.out}));
  torch_init(weight, bias);
}

Conv2dImpl::Conv2dImpl(const Conv2dImpl& base, Adopt) : options(base.options) {
  weight = register_parameter("weight", base.weight);
  if (base.bias.defined()) bias = register_parameter("bias", base.bias);
}

at::Tensor Conv2dImpl::conv(const at::Tensor& x, const at::Tensor& w) const {
  return at::conv2d(x, w, bias, {options.stride, options.stride}, {options.padding, options.padding}, {1, 1},
                    options.groups);
}

BatchNormImpl::BatchNormImpl(int64_t features, double momentum_, double eps_) : momentum(momentum_), eps(eps_) {
  weight = register_parameter("weight", at::ones({features}));
  bias = register_parameter("bias", at::zeros({features}));
  running_mean = register_buffer("running_mean", at::zeros({features}));
  running_var = register_buffer("running_var", at::ones({features}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

BatchNormImpl::BatchNormImpl(const BatchNormImpl& base, Adopt) : momentum(base.momentum), eps(base.eps) {
  weight = register_parameter("weight", base.weight);
  bias = register_parameter("bias", base.bias);
  running_mean = register_buffer("running_mean", base.running_mean);
  running_var = register_buffer("running_var", base.running_var);
  num_batches_tracked = register_buffer("num_batches_tracked", base.num_batches_tracked);
  calibrated_ = base.calibrated_;
}

at::Tensor BatchNormImpl::forward(const at::Tensor& input) {
  // Under autocast (train.precision) the statistics are float32 and the output takes the
  // input's dtype, as cuDNN's batch norm does for half inputs; otherwise nothing is cast.
  const at::Tensor x = float32(input);
  const at::Tensor y = [&] {
    if (!is_training() && calibrated_ < 0)
      return at::batch_norm(x, weight, bias, running_mean, running_var, false, momentum, eps, true);
    {
      at::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
    }
    if (calibrated_ < 0) return train_forward(x);
    // Momentum 1/(k+1) for the k-th batch: the running statistics are the plain mean over them.
    ++calibrated_;
    return at::batch_norm(x, weight, bias, running_mean, running_var, true, 1.0 / static_cast<double>(calibrated_), eps,
                          true);
  }();
  return y.to(input.scalar_type());
}

at::Tensor BatchNormImpl::train_forward(const at::Tensor& x) {
  return at::batch_norm(x, weight, bias, running_mean, running_var, true, momentum, eps, true);
}

FreezeBatchNormStatistics::FreezeBatchNormStatistics(torch::nn::Module& module) {
  for_each_layer<BatchNormImpl>(module, [&](BatchNormImpl& bn) {
    saved_.emplace_back(&bn, bn.momentum);
    bn.momentum = 0.0;
  });
}

FreezeBatchNormStatistics::~FreezeBatchNormStatistics() {
  for (auto& [bn, m] : saved_) bn->momentum = m;
}

LayerNormImpl::LayerNormImpl(int64_t features, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({features}));
  bias = register_parameter("bias", at::zeros({features}));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) {
  // Statistics in float32 under autocast, the output in the input's dtype (as batch norm).
  return at::layer_norm(float32(x), {weight.size(0)}, weight, bias, eps).to(x.scalar_type());
}

HeadImpl::HeadImpl(int64_t features, int64_t classes, double p) : dropout(p) {
  OODT_CHECK(p >= 0 && p < 1, "head dropout ", p, " is not in [0, 1)");
  bind(fc, "fc", std::make_shared<LinearImpl>(features, classes));
}

HeadImpl::HeadImpl(const HeadImpl& base, Adopt) : dropout(base.dropout) { adopt(fc, base.fc); }

at::Tensor HeadImpl::dropout_masks(const at::Tensor& h, int64_t count) const {
  const double keep = 1.0 - dropout;
  // float32 masks under autocast too: 1 / keep is not exact in 16 bits.
  return at::bernoulli(at::full({count, h.size(0), h.size(1)}, keep, h.options().dtype(float32_dtype(h)))).div_(keep);
}

at::Tensor HeadImpl::forward(const at::Tensor& h) {
  if (!is_training() || dropout == 0.0) return fc->forward(h);
  return fc->forward(h * dropout_masks(h, 1)[0]);
}

std::vector<std::pair<std::string, at::Tensor>> weight_layers(torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    if (auto* l = dynamic_cast<LinearImpl*>(item.value().get())) out.emplace_back(prefix + "weight", l->weight);
    else if (auto* c = dynamic_cast<Conv2dImpl*>(item.value().get())) out.emplace_back(prefix + "weight", c->weight);
  }
  return out;
}

at::Tensor NormalizeImpl::forward(const at::Tensor& x) {
  OODT_CHECK(x.dim() == 4 && x.size(1) == static_cast<int64_t>(mean_.size()), "input normalisation expects [N, ",
             mean_.size(), ", H, W] images, got ", x.sizes());
  const auto opts = x.options();
  const int64_t c = static_cast<int64_t>(mean_.size());
  const at::Tensor mean = at::tensor(mean_, opts.dtype(at::kDouble)).to(opts).view({1, c, 1, 1});
  const at::Tensor std = at::tensor(std_, opts.dtype(at::kDouble)).to(opts).view({1, c, 1, 1});
  return (x - mean) / std;
}

}  // namespace oodt
