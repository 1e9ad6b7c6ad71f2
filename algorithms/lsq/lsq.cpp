#include "algorithms/lsq/lsq.h"

#include <algorithm>
#include <cmath>

#include "core/buckets.h"
#include "core/config.h"
#include "core/data_source.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/precision.h"

namespace oodt {

std::pair<int64_t, int64_t> lsq_range(int64_t bits, bool is_signed) {
  OODT_CHECK(bits >= 2 && bits <= 16, "quantizer bits must be in [2, 16], got ", bits);
  if (is_signed) return {int64_t{1} << (bits - 1), (int64_t{1} << (bits - 1)) - 1};
  return {0, (int64_t{1} << bits) - 1};
}

double lsq_initial_step(const at::Tensor& x, int64_t qp) {
  return std::max(2.0 * x.detach().abs().mean().item<double>() / std::sqrt(static_cast<double>(qp)), 1e-8);
}

LsqLevels lsq_levels(const at::Tensor& x, const at::Tensor& step, int64_t qn, int64_t qp, double grad_scale) {
  // The step's value with its gradient scaled: s_g = s * g + (s - s * g).detach().
  const at::Tensor s_scaled = step * grad_scale;
  const at::Tensor s = s_scaled + (step - s_scaled).detach();
  const at::Tensor v = (x / s).clamp(static_cast<double>(-qn), static_cast<double>(qp));
  return {v + (v.round() - v).detach(), s};  // straight-through round
}

at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& step, int64_t qn, int64_t qp, double grad_scale) {
  const LsqLevels q = lsq_levels(x, step, qn, qp, grad_scale);
  return q.levels * q.step;
}

LsqLevels Quantizer::levels(const at::Tensor& x, int64_t per_sample) {
  if (!initialised) {
    at::NoGradGuard no_grad;
    step.fill_(lsq_initial_step(x, qp()));
    initialised = true;
  }
  const double g = 1.0 / std::sqrt(static_cast<double>(per_sample) * static_cast<double>(qp()));
  return lsq_levels(x, step, qn(), qp(), g);
}

at::Tensor Quantizer::apply(const at::Tensor& x, int64_t per_sample) {
  const LsqLevels q = levels(x, per_sample);
  return q.levels * q.step;
}

void LayerQuant::attach(torch::nn::Module& layer, int64_t wbits, int64_t ibits) {
  weight.bits = wbits;
  weight.is_signed = true;
  input.bits = ibits;
  input.is_signed = false;
  weight.step = layer.register_parameter("weight_step", at::zeros({}));
  input.step = layer.register_parameter("input_step", at::zeros({}));
  weight_bits = layer.register_buffer("weight_bits", at::full({}, wbits, at::kLong));
  input_bits = layer.register_buffer("input_bits", at::full({}, ibits, at::kLong));
  input_signed = layer.register_buffer("input_signed", at::zeros({}, at::kLong));
}

at::Tensor LayerQuant::weight_of(const at::Tensor& w) { return weight.apply(w, w.numel()); }

at::Tensor LayerQuant::input_of(const at::Tensor& x) {
  const LsqLevels q = input_levels(x);
  return q.levels * q.step;
}

LsqLevels LayerQuant::input_levels(const at::Tensor& x) {
  if (!input.initialised) {
    at::NoGradGuard no_grad;
    input.is_signed = x.min().item<double>() < 0;
    input_signed.fill_(static_cast<int64_t>(input.is_signed));
  }
  return input.levels(x, x.numel() / std::max<int64_t>(1, x.size(0)));
}

bool LayerQuant::on_integer_grid(const at::Tensor& x) const { return autocast_enabled(x.device().type()); }

LayerQuant::GridOperands LayerQuant::grid_operands(const at::Tensor& x, const at::Tensor& w) {
  const LsqLevels qx = input_levels(float32(x)), qw = weight.levels(w, w.numel());
  // Divided by 2^bits (exact): in [-1, 1], so a product summed over K terms stays within K,
  // inside float16's range, where the integers themselves (up to 255 x 127 per term) are not.
  const double ux = std::ldexp(1.0, static_cast<int>(-input.bits)), uw = std::ldexp(1.0, static_cast<int>(-weight.bits));
  return {qx.levels * ux, qw.levels * uw, qx.step * qw.step * (1.0 / (ux * uw))};
}

void LayerQuant::sync_from_buffers() {
  at::NoGradGuard no_grad;
  input.is_signed = input_signed.item<int64_t>() != 0;
  weight.initialised = weight.step.item<double>() != 0.0;
  input.initialised = input.step.item<double>() != 0.0;
  // The bits are this run's (a checkpoint may come from a run with other bits).
  weight_bits.fill_(weight.bits);
  input_bits.fill_(input.bits);
}

LsqLinearImpl::LsqLinearImpl(const LinearImpl& base, int64_t weight_bits, int64_t input_bits)
    : LinearImpl(base, Adopt{}) {
  quant.attach(*this, weight_bits, input_bits);
}

// Under autocast (train.precision bf16, fp16) a fake-quantized value s q rounded to 16 bits
// leaves the grid (bfloat16 keeps 8 significant bits: up to half a step off at 8-bit levels).
// The layer then multiplies the integer levels q (as q / 2^bits), exact in 16 bits for up to 8
// bits (the plugin refuses more), in the autocast dtype, and scales the product by s_x s_w
// 2^(bits_x + bits_w) in float32: the same function and gradients, y = (s_x q_x)(s_w q_w)^T =
// s_x s_w (q_x q_w^T). The quantizers themselves (x / s, rounding, the steps' gradients) always
// run in float32.
at::Tensor LsqLinearImpl::forward(const at::Tensor& x) {
  if (!quant.on_integer_grid(x)) return at::linear(quant.input_of(x), quant.weight_of(weight), bias);
  const LayerQuant::GridOperands g = quant.grid_operands(x, weight);
  const at::Tensor y = float32(at::linear(g.x, g.w)) * g.unscale;
  return bias.defined() ? y + bias : y;
}

LsqConv2dImpl::LsqConv2dImpl(const Conv2dImpl& base, int64_t weight_bits, int64_t input_bits)
    : Conv2dImpl(base, Adopt{}) {
  quant.attach(*this, weight_bits, input_bits);
}

at::Tensor LsqConv2dImpl::forward(const at::Tensor& x) {
  if (!quant.on_integer_grid(x)) return conv(quant.input_of(x), quant.weight_of(weight));
  // As LsqLinear under autocast: integer levels convolved, then scaled, then the bias.
  const LayerQuant::GridOperands g = quant.grid_operands(x, weight);
  const at::Tensor z = at::conv2d(g.x, g.w, {}, {options.stride, options.stride}, {options.padding, options.padding},
                                  {1, 1}, options.groups);
  const at::Tensor y = float32(z) * g.unscale;
  return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
}

void for_each_quantized_layer(torch::nn::Module& module, const std::function<void(const std::string&, LayerQuant&)>& fn) {
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    if (auto* l = dynamic_cast<LsqLinearImpl*>(item.value().get())) fn(item.key(), l->quant);
    else if (auto* c = dynamic_cast<LsqConv2dImpl*>(item.value().get())) fn(item.key(), c->quant);
  }
}

Capabilities Lsq::capabilities() const {
  Capabilities c = Capabilities::swapping_layers();
  const int64_t widest = std::max({o_.weight_bits, o_.input_bits, o_.first_last_bits});
  if (widest > 8)
    c.reduced_precision_refusal =
        concat(widest, "-bit levels are not exact in the 16-bit floats the quantized layers multiply under autocast "
               "(bfloat16 holds integers up to 256 exactly); use at most 8 bits");
  return c;
}

LsqOptions LsqOptions::from_config(ConfigReader& cfg) {
  LsqOptions o;
  o.weight_bits = cfg.get<int64_t>("weight_bits", o.weight_bits);
  cfg.check(o.weight_bits >= 2 && o.weight_bits <= 16, "weight_bits", "must be in [2, 16]");
  o.input_bits = cfg.get<int64_t>("input_bits", o.input_bits);
  cfg.check(o.input_bits >= 2 && o.input_bits <= 16, "input_bits", "must be in [2, 16]");
  o.first_last_bits = cfg.get<int64_t>("first_last_bits", o.first_last_bits);
  cfg.check(o.first_last_bits == 0 || (o.first_last_bits >= 2 && o.first_last_bits <= 16), "first_last_bits",
            "must be 0 (as the others) or in [2, 16]");
  return o;
}

namespace {

// Replaces every plain Linear and Conv2d by make(layer, path) (nullptr keeps it).
int64_t quantize_each(torch::nn::Module& module,
                      const std::function<std::pair<int64_t, int64_t>(const std::string&)>& bits_of) {
  int64_t n = replace_layers<LinearImpl>(module, [&](LinearImpl& l, const std::string& path) -> std::shared_ptr<torch::nn::Module> {
    if (dynamic_cast<LsqLinearImpl*>(&l)) return nullptr;
    const auto [wb, ib] = bits_of(path);
    return wb > 0 ? std::make_shared<LsqLinearImpl>(l, wb, ib) : nullptr;
  });
  n += replace_layers<Conv2dImpl>(module, [&](Conv2dImpl& c, const std::string& path) -> std::shared_ptr<torch::nn::Module> {
    if (dynamic_cast<LsqConv2dImpl*>(&c)) return nullptr;
    const auto [wb, ib] = bits_of(path);
    return wb > 0 ? std::make_shared<LsqConv2dImpl>(c, wb, ib) : nullptr;
  });
  return n;
}

}  // namespace

int64_t quantize_layers(torch::nn::Module& module, const LsqOptions& o) {
  const auto layers = weight_layers(module);
  if (layers.empty()) return 0;
  const std::string first = layers.front().first, last = layers.back().first;
  return quantize_each(module, [&](const std::string& path) {
    const std::string w = path + ".weight";
    const bool wide = (w == first || w == last) && o.first_last_bits > 0;
    return std::make_pair(wide ? o.first_last_bits : o.weight_bits, wide ? o.first_last_bits : o.input_bits);
  });
}

int64_t restore_recorded_quantizers(torch::nn::Module& model, const TensorMap& state) {
  const int64_t n = quantize_each(model, [&](const std::string& path) {
    auto wb = state.find(path + ".weight_bits"), ib = state.find(path + ".input_bits");
    if (wb == state.end() || ib == state.end()) return std::make_pair(int64_t{0}, int64_t{0});
    return std::make_pair(wb->second.item<int64_t>(), ib->second.item<int64_t>());
  });
  for_each_quantized_layer(model, [&](const std::string& path, LayerQuant& q) {
    if (auto s = state.find(path + ".input_signed"); s != state.end()) {
      q.input.is_signed = s->second.item<int64_t>() != 0;
      q.input_signed.fill_(static_cast<int64_t>(q.input.is_signed));
    }
    q.weight.initialised = q.input.initialised = true;  // the steps come with the state
  });
  return n;
}

void Lsq::prepare_model(State& state) {
  if (quantize_layers(*state.model, o_) == 0)
    throw ConfigError(key(), concat("the model (", state.model->kind(), ") has no conv or linear layers"));
}

void Lsq::hooks(HookTable& table) {
  table.on(Phase::FitStart, [this](State& s) { fit_start(s); });
}

void Lsq::fit_start(State& state) {
  Model& model = *state.model;
  bool fresh = false;
  std::vector<at::Tensor> signs;
  for_each_quantized_layer(model, [&](const std::string&, LayerQuant& q) {
    q.sync_from_buffers();  // a resumed or --init-from quantized model has its steps
    fresh = fresh || !q.weight.initialised || !q.input.initialised;
    signs.push_back(q.input_signed);
  });
  if (!fresh) return;
  // LSQ initialisation from one training batch, BatchNorm statistics untouched. Ranks see
  // different batches: rank 0's input signs are taken everywhere, and the averaging set-up
  // then gives every rank rank 0's steps.
  {
    at::NoGradGuard no_grad;
    const bool was_training = model.is_training();
    model.train();
    const Batch batch = state.data->train_batch(state.step).to(state.device);
    FreezeBatchNormStatistics frozen(model);
    model.forward(batch.inputs);
    model.train(was_training);
  }
  broadcast_tensors(signs, *state.comm, 0, state.dist.bucket_bytes());
  for_each_quantized_layer(model, [&](const std::string&, LayerQuant& q) {
    q.input.is_signed = q.input_signed.item<int64_t>() != 0;
  });
}

}  // namespace oodt
