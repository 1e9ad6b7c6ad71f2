#include "core/models/quant.h"

#include <cmath>

#include "core/error.h"

namespace oodt {

std::pair<int64_t, int64_t> lsq_range(int64_t bits, bool is_signed) {
  OODT_CHECK(bits >= 2 && bits <= 16, "quantizer bits must be in [2, 16], got ", bits);
  if (is_signed) return {int64_t{1} << (bits - 1), (int64_t{1} << (bits - 1)) - 1};
  return {0, (int64_t{1} << bits) - 1};
}

double lsq_initial_step(const at::Tensor& x, int64_t qp) {
  return std::max(2.0 * x.detach().abs().mean().item<double>() / std::sqrt(static_cast<double>(qp)), 1e-8);
}

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& step, int64_t qn, int64_t qp, double grad_scale) {
  // The step's value with its gradient scaled: s_g = s * g + (s - s * g).detach().
  const at::Tensor s_scaled = step * grad_scale;
  const at::Tensor s = s_scaled + (step - s_scaled).detach();
  const at::Tensor v = (x / s).clamp(static_cast<double>(-qn), static_cast<double>(qp));
  const at::Tensor rounded = v + (v.round() - v).detach();  // straight-through round
  return rounded * s;
}

at::Tensor Quantizer::apply(const at::Tensor& x, int64_t per_sample) {
  if (!initialised) {
    at::NoGradGuard no_grad;
    step.fill_(lsq_initial_step(x, qp()));
    initialised = true;
  }
  const double g = 1.0 / std::sqrt(static_cast<double>(per_sample) * static_cast<double>(qp()));
  return lsq_quantize(x, step, qn(), qp(), g);
}

void LayerQuant::enable(torch::nn::Module& layer, int64_t weight_bits, int64_t input_bits) {
  weight.bits = weight_bits;
  weight.is_signed = true;
  input.bits = input_bits;
  input.is_signed = signed_input;
  weight.step = layer.register_parameter("weight_step", at::zeros({}));
  input.step = layer.register_parameter("input_step", at::zeros({}));
  layer.register_buffer("weight_bits", at::full({}, weight_bits, at::kLong));
  layer.register_buffer("input_bits", at::full({}, input_bits, at::kLong));
  layer.register_buffer("input_signed", at::full({}, static_cast<int64_t>(signed_input), at::kLong));
}

at::Tensor LayerQuant::weight_of(const at::Tensor& w) {
  return enabled() ? weight.apply(w, w.numel()) : w;
}

at::Tensor LayerQuant::input_of(const at::Tensor& x) {
  if (!enabled()) return x;
  return input.apply(x, x.numel() / std::max<int64_t>(1, x.size(0)));
}

at::Tensor QConv2dImpl::forward(const at::Tensor& x) {
  if (!quant.enabled()) return Conv2dImpl::forward(x);
  return _conv_forward(quant.input_of(x), quant.weight_of(weight));
}

at::Tensor QLinearImpl::forward(const at::Tensor& x) {
  if (!quant.enabled()) return LinearImpl::forward(x);
  return at::linear(quant.input_of(x), quant.weight_of(weight), bias);
}

int64_t enable_recorded_quantizers(torch::nn::Module& model, const std::map<std::string, at::Tensor>& state) {
  int64_t n = 0;
  for_each_quant_layer(model, [&](const std::string& path, torch::nn::Module& layer, LayerQuant& q) {
    const std::string prefix = path.empty() ? "" : path + ".";
    auto wb = state.find(prefix + "weight_bits"), ib = state.find(prefix + "input_bits");
    if (wb == state.end() || ib == state.end() || q.enabled()) return;
    if (auto s = state.find(prefix + "input_signed"); s != state.end()) q.signed_input = s->second.item<int64_t>() != 0;
    q.enable(layer, wb->second.item<int64_t>(), ib->second.item<int64_t>());
    q.weight.initialised = q.input.initialised = true;  // the steps come with the state
    ++n;
  });
  return n;
}

void for_each_quant_layer(torch::nn::Module& module,
                          const std::function<void(const std::string&, torch::nn::Module&, LayerQuant&)>& fn) {
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    if (auto* c = dynamic_cast<QConv2dImpl*>(item.value().get())) fn(item.key(), *c, c->quant);
    else if (auto* l = dynamic_cast<QLinearImpl*>(item.value().get())) fn(item.key(), *l, l->quant);
  }
}

}  // namespace oodt
