#pragma once
// Learned step size quantization (LSQ; Esser et al., ICLR 2020) as fake quantization of conv
// and linear layers. The plugin swaps every Linear and Conv2d of the model for an LsqLinear /
// LsqConv2d (module surgery: the same weight and bias tensors under the same names), which
// registers a learnable step per weight tensor and per layer input:
//   q(x) = round(clamp(x / s, -Qn, Qp)) * s,  signed b bits: Qn = 2^(b-1), Qp = 2^(b-1) - 1;
//                                             unsigned:      Qn = 0,        Qp = 2^b - 1
// with a straight-through round: dq/dx = 1 inside the range and 0 outside; dq/ds =
// round(x/s) - x/s inside, -Qn or Qp where clipped, times the gradient scale 1/sqrt(n * Qp)
// (n: the weight's elements, or an input's elements per sample). Weights are signed; a layer's
// input is signed when the first training batch gives it a negative value (after a LayerNorm
// or GELU), unsigned otherwise (images in [0, 1], after a ReLU): rank 0's decision, recorded
// in the layer's `input_signed` buffer. Steps start at LSQ's 2 mean|x| / sqrt(Qp) from that
// batch. The first and the last layer (the classifier) get `first_last_bits`.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "core/algorithm.h"
#include "core/models/layers.h"

namespace oodt {

class ConfigReader;

// Fake quantization with the LSQ gradients above.
at::Tensor lsq_quantize(const at::Tensor& x, const at::Tensor& step, int64_t qn, int64_t qp, double grad_scale);
// Its two factors: q(x) = levels * step, levels the (straight-through) rounded integers, step
// the step with its gradient scaled.
struct LsqLevels {
  at::Tensor levels, step;
};
LsqLevels lsq_levels(const at::Tensor& x, const at::Tensor& step, int64_t qn, int64_t qp, double grad_scale);
// The integer range for `bits` bits.
std::pair<int64_t, int64_t> lsq_range(int64_t bits, bool is_signed);
// LSQ's initial step for data x: 2 * mean|x| / sqrt(Qp).
double lsq_initial_step(const at::Tensor& x, int64_t qp);

struct Quantizer {
  int64_t bits = 0;
  bool is_signed = false;
  at::Tensor step;  // scalar parameter, registered on the layer
  bool initialised = false;
  int64_t qn() const { return lsq_range(bits, is_signed).first; }
  int64_t qp() const { return lsq_range(bits, is_signed).second; }
  // Quantizes x (per-sample size `per_sample` for the gradient scale); initialises the step
  // from x first if needed.
  at::Tensor apply(const at::Tensor& x, int64_t per_sample);
  // The same, as its two factors.
  LsqLevels levels(const at::Tensor& x, int64_t per_sample);
};

// A layer's two quantizers and what checkpoints record of them.
struct LayerQuant {
  Quantizer weight, input;
  at::Tensor weight_bits, input_bits, input_signed;  // int64 scalar buffers
  // Registers on `layer`: parameters `weight_step`, `input_step`; buffers `weight_bits`,
  // `input_bits`, `input_signed` (the names checkpoints and `export --quantized` use).
  void attach(torch::nn::Module& layer, int64_t weight_bits, int64_t input_bits);
  at::Tensor weight_of(const at::Tensor& w);
  // The first call decides the input's sign from x, then initialises the step.
  at::Tensor input_of(const at::Tensor& x);
  LsqLevels input_levels(const at::Tensor& x);
  // Under autocast (train.precision) the layers multiply integer levels and scale the result
  // (lsq.cpp): whether that applies to input x; the levels of x and of the weight w, divided by
  // 2^bits, and the float32 factor that turns their product into the layer's.
  bool on_integer_grid(const at::Tensor& x) const;
  struct GridOperands {
    at::Tensor x, w, unscale;
  };
  GridOperands grid_operands(const at::Tensor& x, const at::Tensor& w);
  // Bits and sign from the buffers, initialised where the steps are not 0 (after a checkpoint
  // was loaded, or buffers were broadcast).
  void sync_from_buffers();
};

class LsqLinearImpl final : public LinearImpl {
 public:
  LsqLinearImpl(const LinearImpl& base, int64_t weight_bits, int64_t input_bits);
  at::Tensor forward(const at::Tensor& x) override;
  LayerQuant quant;
};

class LsqConv2dImpl final : public Conv2dImpl {
 public:
  LsqConv2dImpl(const Conv2dImpl& base, int64_t weight_bits, int64_t input_bits);
  at::Tensor forward(const at::Tensor& x) override;
  LayerQuant quant;
};

// Calls fn(path, quant) for every quantized layer of `module`, in registration order.
void for_each_quantized_layer(torch::nn::Module& module, const std::function<void(const std::string&, LayerQuant&)>& fn);

struct LsqOptions {
  int64_t weight_bits = 4;
  int64_t input_bits = 4;
  int64_t first_last_bits = 8;  // 0: the same as the others
  static LsqOptions from_config(ConfigReader& cfg);
};

// Swaps every Linear and Conv2d of `module` for its quantized form (bits as `o` says);
// returns how many.
int64_t quantize_layers(torch::nn::Module& module, const LsqOptions& o);

// Quantizes the layers a checkpoint's model state records (`<layer>.weight_bits` etc.), so a
// model built from config can load an LSQ-trained checkpoint. Returns how many layers.
int64_t restore_recorded_quantizers(torch::nn::Module& model, const TensorMap& state);

class Lsq final : public Algorithm {
 public:
  static constexpr const char* kName = "lsq";
  static constexpr const char* kSummary =
      "model: LSQ fake quantization of conv/linear weights and inputs with learned steps (Esser et al. 2020)";
  using Options = LsqOptions;

  explicit Lsq(Options o) : o_(o) {}
  void prepare_model(State& state) override;
  // fit_start: steps and input signs from one training batch (unless a checkpoint had them).
  void hooks(HookTable& table) override;
  std::vector<Claim> claims() const override { return {Claim::LayerPrecision}; }
  // Refuses train.precision bf16/fp16 with levels wider than 8 bits (lsq.cpp).
  Capabilities capabilities() const override;

 private:
  void fit_start(State& state);
  Options o_;
};

}  // namespace oodt
