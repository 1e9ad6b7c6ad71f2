#pragma once
// SAGM's flatness term (Wang et al., CVPR 2023) as a two-pass update: g1 = grad L(w);
// e = (rho / ||g1|| - alpha) g1; g2 = grad L(w + e) with BatchNorm statistics frozen; the step
// follows (g1 + g2) / 2. Both passes are local to the rank; the averaging phase then
// all-reduces the combined gradient once. The second pass scores the model's output the way
// the trainer's loss does (core/state.h, classification_loss), so it composes with plugins
// that change the output (several head samples) or the targets (mixup, label smoothing).
#include <vector>

#include "core/algorithm.h"

namespace oodt {

class ConfigReader;

struct SagmOptions {
  double rho = 0.05;
  double alpha = 0.001;
  static SagmOptions from_config(ConfigReader& cfg);
};

// The SAGM second pass. On entry the parameters hold g1 (the step's gradients); on return they
// hold (g1 + g2) / 2 and the parameters are unchanged. Returns g1 and g2 per parameter of
// `params` (undefined where a parameter got no gradient).
// When g1 is not finite (fp16's loss scale overflowed, or a NaN) there is no second pass:
// `finite` is false, g2 is all undefined and the gradients stay g1 for the step agreement to drop.
struct SagmGradients {
  std::vector<at::Tensor> g1, g2;
  bool finite = true;
};
SagmGradients sagm_second_pass(State& state, const std::vector<at::Tensor>& params, double rho, double alpha);

// The model's parameters that require gradients, in registration order.
std::vector<at::Tensor> trainable_parameters(torch::nn::Module& model);

class Sagm final : public Algorithm {
 public:
  static constexpr const char* kName = "sagm";
  static constexpr const char* kSummary = "backward: SAGM flatness term, a second pass at w + (rho/|g| - alpha) g (Wang et al. 2023)";
  using Options = SagmOptions;

  explicit Sagm(Options o) : o_(o) {}
  void hooks(HookTable& table) override;
  std::vector<Claim> claims() const override { return {Claim::SecondPass}; }
  Capabilities capabilities() const override { return Capabilities::rewriting_gradients(); }

 private:
  Options o_;
};

}  // namespace oodt
