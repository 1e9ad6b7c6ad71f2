#pragma once
// Quantization-aware training for domain generalization, as three composable plugins:
//   lsq    LSQ fake quantization of every conv/linear weight and input (core/models/quant.h):
//          bits per layer, the first and last layer at `first_last_bits`; steps initialised by
//          LSQ's rule from the first training batch (rank 0's, broadcast to every rank).
//   sagm   SAGM's flatness term (Wang et al., CVPR 2023) as a two-pass update: g1 = grad L(w);
//          e = (rho / ||g1|| - alpha) g1; g2 = grad L(w + e) with BatchNorm statistics frozen;
//          the step follows (g1 + g2) / 2. Both passes are local; the averaging phase then
//          all-reduces the combined gradient once.
//   gaqat  sagm plus scale-gradient conflict tracking and freezing (GAQAT, arXiv 2412.05551; no
//          code published, so the rule below is our reading, with its choices as flags): for
//          each quantizer step s_l, the task part gt = dL(w)/ds_l and the smoothness part
//          gs = dL(w + e)/ds_l - gt are all-reduced (one small extra collective of 2 scalars per
//          quantizer) so every rank decides alike. The last `window` signs of gt are kept; every
//          `interval` steps the disorder D_l (fraction of sign flips between consecutive entries
//          of a full window) is computed, and where D_l < tau the task part of s_l's gradient is
//          frozen (`freeze_target: task`: the gradient becomes gs / 2; `all`: 0). Frozen scales
//          stay frozen (`unfreeze: never`) or are re-decided at every interval (`reevaluate`).
//          Weights are never frozen.
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/algorithm.h"

namespace oodt {

struct LsqOptions {
  int64_t weight_bits = 4;
  int64_t input_bits = 4;
  int64_t first_last_bits = 8;  // 0: the same as the others
};

class Lsq final : public Algorithm {
 public:
  explicit Lsq(LsqOptions o) : o_(o) {}
  void prepare_model(Model& model) override;
  PhaseSet hooks() const override { return phases({Phase::FitStart}); }
  void run(Phase phase, State& state) override;
  std::vector<std::string> claims() const override { return {"quantization"}; }

 private:
  LsqOptions o_;
};

// The SAGM second pass. On entry the parameters hold g1 (the step's gradients); on return they
// hold (g1 + g2) / 2 and the parameters are unchanged. Returns g1 and g2 per parameter of
// `params` (undefined where a parameter got no gradient).
struct SagmGradients {
  std::vector<at::Tensor> g1, g2;
};
SagmGradients sagm_second_pass(State& state, const std::vector<at::Tensor>& params, double rho, double alpha);

// Fraction of sign changes between consecutive entries (0 for fewer than two).
double sign_disorder(const std::deque<int>& signs);

struct SagmOptions {
  double rho = 0.05;
  double alpha = 0.001;
};

class Sagm final : public Algorithm {
 public:
  explicit Sagm(SagmOptions o) : o_(o) {}
  PhaseSet hooks() const override { return phases({Phase::AfterBackward}); }
  void run(Phase phase, State& state) override;
  std::vector<std::string> claims() const override { return {"second_pass"}; }

 private:
  SagmOptions o_;
};

struct GaqatOptions {
  SagmOptions sagm;
  int64_t window = 10;      // n signs kept per quantizer
  int64_t interval = 10;    // K: steps between freezing decisions
  double tau = 0.3;         // freeze where disorder < tau
  bool freeze_all = false;  // freeze_target: task (false) | all
  bool reevaluate = false;  // unfreeze: never (false) | reevaluate
};

class Gaqat final : public Algorithm {
 public:
  explicit Gaqat(GaqatOptions o) : o_(o) {}
  PhaseSet hooks() const override { return phases({Phase::FitStart, Phase::AfterBackward, Phase::Evaluation}); }
  void run(Phase phase, State& state) override;
  std::vector<std::string> claims() const override { return {"second_pass"}; }
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override { loaded_ = in; }

 private:
  GaqatOptions o_;
  std::vector<std::pair<std::string, at::Tensor>> steps_;  // quantizer step parameters
  std::vector<size_t> step_index_;                         // [quantizer] index among trainable parameters
  std::vector<std::deque<int>> signs_, conflicts_;         // [quantizer] last `window` entries
  std::vector<bool> frozen_;
  std::vector<double> disorder_;
  TensorMap loaded_;
};

}  // namespace oodt
