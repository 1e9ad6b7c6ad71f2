#pragma once
// Learned step size quantization (LSQ; Esser et al., ICLR 2020) as fake quantization inside the
// models' conv and linear layers. Every conv/linear layer of the built-in models is a QConv2d or
// QLinear: exactly torch's layer (same parameter names, same result) until a plugin enables its
// quantizers (plugin `lsq`), which registers a learnable step per weight tensor and per layer
// input:
//   q(x) = round(clamp(x / s, -Qn, Qp)) * s,  signed b bits: Qn = 2^(b-1), Qp = 2^(b-1) - 1;
//                                             unsigned:      Qn = 0,        Qp = 2^b - 1
// with a straight-through round: dq/dx = 1 inside the range and 0 outside; dq/ds =
// round(x/s) - x/s inside, -Qn or Qp where clipped, times the gradient scale 1/sqrt(n * Qp)
// (n: the weight's elements, or an input's elements per sample).
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace oodt {

// Fake quantization with the LSQ gradients above.
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& step, int64_t qn, int64_t qp, double grad_scale);
// The integer range for `bits` bits.
std::pair<int64_t, int64_t> lsq_range(int64_t bits, bool is_signed);
// LSQ's initial step for data x: 2 * mean|x| / sqrt(Qp).
double lsq_initial_step(const at::Tensor& x, int64_t qp);

struct Quantizer {
  int64_t bits = 0;  // 0: off
  bool is_signed = false;
  at::Tensor step;   // scalar parameter, registered on the layer
  bool initialised = false;
  int64_t qn() const { return lsq_range(bits, is_signed).first; }
  int64_t qp() const { return lsq_range(bits, is_signed).second; }
  // Quantizes x (per-sample size `per_sample` for the gradient scale); initialises the step
  // from x first if needed.
  at::Tensor apply(const at::Tensor& x, int64_t per_sample);
};

struct LayerQuant {
  Quantizer weight, input;
  bool signed_input = false;  // the layer's input can be negative (not after a ReLU)
  bool enabled() const { return weight.bits > 0; }
  // Registers `weight_step`, `input_step` (parameters) and `weight_bits`, `input_bits`,
  // `input_signed` (buffers).
  void enable(torch::nn::Module& layer, int64_t weight_bits, int64_t input_bits);
  at::Tensor weight_of(const at::Tensor& w);
  at::Tensor input_of(const at::Tensor& x);
};

class QConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  explicit QConv2dImpl(const torch::nn::Conv2dOptions& o, bool signed_input = false) : Conv2dImpl(o) {
    quant.signed_input = signed_input;
  }
  at::Tensor forward(const at::Tensor& x);
  LayerQuant quant;
};
TORCH_MODULE(QConv2d);

class QLinearImpl : public torch::nn::LinearImpl {
 public:
  QLinearImpl(int64_t in, int64_t out, bool signed_input = false) : LinearImpl(in, out) {
    quant.signed_input = signed_input;
  }
  at::Tensor forward(const at::Tensor& x);
  LayerQuant quant;
};
TORCH_MODULE(QLinear);

// Enables the quantizers a checkpoint's model state records (`<layer>.weight_bits` etc.), so
// a model built from config can load an LSQ-trained checkpoint. Returns how many layers.
int64_t enable_recorded_quantizers(torch::nn::Module& model, const std::map<std::string, at::Tensor>& state);

// Calls fn(path, layer, quant) for every quantizable layer in registration order (the first is
// the model's first layer, the last its classifier).
void for_each_quant_layer(torch::nn::Module& module,
                          const std::function<void(const std::string&, torch::nn::Module&, LayerQuant&)>& fn);

}  // namespace oodt
