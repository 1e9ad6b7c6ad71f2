#include "algorithms/sagm/sagm.h"

#include <cmath>

#include "core/config.h"
#include "core/models/model.h"
#include "core/precision.h"

namespace oodt {

SagmOptions SagmOptions::from_config(ConfigReader& cfg) {
  SagmOptions o;
  o.rho = cfg.get("rho", o.rho);
  cfg.check(o.rho >= 0, "rho", "must be >= 0");
  o.alpha = cfg.get("alpha", o.alpha);
  cfg.check(o.alpha >= 0, "alpha", "must be >= 0");
  return o;
}

std::vector<at::Tensor> trainable_parameters(torch::nn::Module& model) {
  std::vector<at::Tensor> out;
  for (auto& p : model.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

SagmGradients sagm_second_pass(State& state, const std::vector<at::Tensor>& params, double rho, double alpha) {
  SagmGradients r;
  // The weights are restored from a copy, not by subtracting e: (w + e) - e can differ from w in
  // the last bit, differently on every rank, and ranks must hold identical weights.
  std::vector<at::Tensor> e(params.size()), saved(params.size());
  {
    at::NoGradGuard no_grad;
    double sq = 0;
    for (const auto& p : params) {
      r.g1.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
      if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
    }
    // A non-finite g1 (fp16's loss scale overflowed, or a NaN) is left for the step agreement to
    // drop: a pass at w + NaN would only write NaN into the BatchNorm statistics.
    if (!std::isfinite(sq)) {
      r.g2.assign(params.size(), at::Tensor());
      r.finite = false;
      return r;
    }
    // Gradients carry fp16's loss scale S until the step agreement (1 otherwise): g1 = S g, so
    // e = (rho / |g| - alpha) g = (rho / |g1| - alpha / S) g1.
    const double coef = rho / (std::sqrt(sq) + 1e-12) - alpha / loss_scale(state);
    for (size_t j = 0; j < params.size(); ++j) {
      if (!r.g1[j].defined()) continue;
      e[j] = r.g1[j] * coef;
      saved[j] = params[j].detach().clone();
      const_cast<at::Tensor&>(params[j]).add_(e[j]);
      const_cast<at::Tensor&>(params[j]).mutable_grad().reset();
    }
  }
  {
    FreezeBatchNormStatistics frozen(*state.model);
    extra_backward(state);  // under the run's autocast and loss scale, as the trainer's pass
  }
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < params.size(); ++j) {
    at::Tensor& p = const_cast<at::Tensor&>(params[j]);
    if (saved[j].defined()) p.copy_(saved[j]);
    r.g2.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    if (r.g1[j].defined() && p.grad().defined()) p.mutable_grad().add_(r.g1[j]).mul_(0.5);
    else if (r.g1[j].defined()) p.mutable_grad() = r.g1[j] * 0.5;
    else if (p.grad().defined()) p.mutable_grad().mul_(0.5);
  }
  return r;
}

void Sagm::hooks(HookTable& table) {
  table.on(Phase::AfterBackward,
           [this](State& s) { sagm_second_pass(s, trainable_parameters(*s.model), o_.rho, o_.alpha); });
}

}  // namespace oodt
