#pragma once
// GAQAT (quantization-aware training for domain generalization, arXiv 2412.05551; no code
// published, so the rule below is our reading, with its choices as flags): SAGM's two-pass
// update (algorithms/sagm) plus scale-gradient conflict tracking and freezing of the LSQ
// quantizer steps (algorithms/lsq: `algorithms: [lsq, gaqat]`). For each quantizer step s_l,
// the task part gt = dL(w)/ds_l and the smoothness part gs = dL(w + e)/ds_l - gt are
// all-reduced (one small extra collective of 2 scalars per quantizer, over the ranks holding
// this model) so every rank decides alike. The last `window` signs of gt are kept; every
// `interval` steps the disorder D_l (fraction of sign flips between consecutive entries of a
// full window) is computed, and where D_l < tau the task part of s_l's gradient is frozen
// (`freeze_target: task`: the gradient becomes gs / 2; `all`: 0). Frozen scales stay frozen
// (`unfreeze: never`) or are re-decided at every interval (`reevaluate`). Weights are never
// frozen.
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/sagm/sagm.h"
#include "core/algorithm.h"

namespace oodt {

class ConfigReader;

// Fraction of sign changes between consecutive entries (0 for fewer than two).
double sign_disorder(const std::deque<int>& signs);

struct GaqatOptions {
  SagmOptions sagm;
  int64_t window = 10;      // n signs kept per quantizer
  int64_t interval = 10;    // K: steps between freezing decisions
  double tau = 0.3;         // freeze where disorder < tau
  bool freeze_all = false;  // freeze_target: task (false) | all
  bool reevaluate = false;  // unfreeze: never (false) | reevaluate
  static GaqatOptions from_config(ConfigReader& cfg);
};

class Gaqat final : public Algorithm {
 public:
  static constexpr const char* kName = "gaqat";
  static constexpr const char* kSummary =
      "backward: SAGM plus scale-gradient conflict tracking and freezing of quantizer steps (arXiv 2412.05551)";
  using Options = GaqatOptions;

  explicit Gaqat(Options o) : o_(o) {}
  void hooks(HookTable& table) override;
  std::vector<Claim> claims() const override { return {Claim::SecondPass}; }
  Capabilities capabilities() const override { return Capabilities::rewriting_gradients(); }
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override { loaded_ = in; }

 private:
  void fit_start(State& state);
  void after_backward(State& state);
  void evaluation(State& state);

  Options o_;
  std::vector<std::pair<std::string, at::Tensor>> steps_;  // quantizer step parameters
  std::vector<size_t> step_index_;                         // [quantizer] index among trainable parameters
  std::vector<std::deque<int>> signs_, conflicts_;         // [quantizer] last `window` entries
  std::vector<bool> frozen_;
  std::vector<double> disorder_;
  TensorMap loaded_;
};

}  // namespace oodt
