#include "core/engine.h"

#include <map>

#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

bool is_after_phase(Phase p) {
  switch (p) {
    case Phase::AfterForward:
    case Phase::AfterLoss:
    case Phase::AfterBackward:
    case Phase::AfterAveraging:
    case Phase::AfterOptimizerStep:
    case Phase::FitEnd:  // pairs with FitStart: tear down in reverse
      return true;
    default:
      return false;
  }
}

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::FitStart: return "fit_start";
    case Phase::BeforeForward: return "before_forward";
    case Phase::AfterForward: return "after_forward";
    case Phase::BeforeLoss: return "before_loss";
    case Phase::AfterLoss: return "after_loss";
    case Phase::BeforeBackward: return "before_backward";
    case Phase::AfterBackward: return "after_backward";
    case Phase::BeforeAveraging: return "before_averaging";
    case Phase::AfterAveraging: return "after_averaging";
    case Phase::BeforeOptimizerStep: return "before_optimizer_step";
    case Phase::AfterOptimizerStep: return "after_optimizer_step";
    case Phase::EpochEnd: return "epoch_end";
    case Phase::Evaluation: return "evaluation";
    case Phase::Checkpoint: return "checkpoint";
    case Phase::FitEnd: return "fit_end";
    case Phase::kCount: break;
  }
  return "?";
}

const char* claim_name(Claim c) {
  switch (c) {
    case Claim::Averaging: return "averaging";
    case Claim::Batches: return "batches";
    case Claim::Prediction: return "prediction";
    case Claim::GradientCompression: return "gradient_compression";
    case Claim::LearningRate: return "learning_rate";
    case Claim::SecondPass: return "second_pass";
    case Claim::BatchNormStatistics: return "batch_norm_statistics";
    case Claim::Attention: return "attention";
    case Claim::LayerPrecision: return "layer_precision";
    case Claim::HeadSamples: return "head_samples";
  }
  return "?";
}

HookTable& HookTable::on(Phase phase, Handler fn) {
  OODT_CHECK(fn != nullptr, "a hook for ", phase_name(phase), " without a handler");
  Handler& slot = handlers_[static_cast<size_t>(phase)];
  OODT_CHECK(slot == nullptr, "two hooks for ", phase_name(phase), " in one plugin");
  slot = std::move(fn);
  return *this;
}

std::vector<Claim> all_claims(const Algorithm& algo) {
  std::vector<Claim> claims = algo.claims();
  if (dynamic_cast<const AveragingOwner*>(&algo)) claims.push_back(Claim::Averaging);
  if (dynamic_cast<const BatchDealer*>(&algo)) claims.push_back(Claim::Batches);
  if (dynamic_cast<const EvaluationPredictor*>(&algo)) claims.push_back(Claim::Prediction);
  if (dynamic_cast<const BucketHookProvider*>(&algo)) claims.push_back(Claim::GradientCompression);
  return claims;
}

Engine::Engine(std::vector<std::unique_ptr<Algorithm>> algorithms) : algorithms_(std::move(algorithms)) {
  std::map<Claim, std::string> owner;
  std::vector<HookTable> tables(algorithms_.size());
  for (size_t i = 0; i < algorithms_.size(); ++i) {
    Algorithm& a = *algorithms_[i];
    for (Claim claim : all_claims(a)) {
      auto [it, fresh] = owner.emplace(claim, a.name());
      if (!fresh && it->second != a.name())
        throw ConfigError("algorithms", concat("'", it->second, "' and '", a.name(), "' both claim ", claim_name(claim),
                                               "; at most one plugin may own it"));
    }
    a.hooks(tables[i]);
    const bool rewrites = tables[i].hooks(Phase::AfterBackward) || tables[i].hooks(Phase::BeforeAveraging);
    if (rewrites != a.capabilities().rewrites_gradients_after_backward)
      throw Error(concat("plugin '", a.name(), "' ", rewrites ? "hooks after_backward or before_averaging but does not"
                                                              : "says it rewrites gradients after backward but does not",
                         rewrites ? " declare Capabilities::rewrites_gradients_after_backward"
                                  : " hook after_backward or before_averaging"));
  }
  for (int p = 0; p < kNumPhases; ++p) {
    const Phase phase = static_cast<Phase>(p);
    auto add = [&](size_t i) {
      if (tables[i].hooks(phase)) dispatch_[p].emplace_back(algorithms_[i].get(), tables[i].at(phase));
    };
    if (is_after_phase(phase)) {
      for (size_t i = algorithms_.size(); i-- > 0;) add(i);
    } else {
      for (size_t i = 0; i < algorithms_.size(); ++i) add(i);
    }
  }
}

void Engine::prepare_model(State& state) {
  auto modules = [&] {
    std::vector<const torch::nn::Module*> out;
    for (const auto& m : state.model->modules(/*include_self=*/true)) out.push_back(m.get());
    return out;
  };
  for (auto& a : algorithms_) {
    CollectiveContext ctx(concat("prepare_model ", a->name()));
    const auto before = modules();
    a->prepare_model(state);
    if (!a->capabilities().swaps_layers && modules() != before)
      throw Error(concat("plugin '", a->name(), "' changed the model's layers without declaring ",
                         "Capabilities::swaps_layers"));
  }
}

void Engine::run(Phase phase, State& state) {
  for (auto& [algo, handler] : dispatch_[static_cast<size_t>(phase)]) {
    if (!algo->active(state)) continue;
    CollectiveContext ctx(concat(phase_name(phase), " ", algo->name()));
    handler(state);
  }
}

std::string Engine::gradient_rewriters() const {
  std::string names;
  for (const auto& a : algorithms_)
    if (a->capabilities().rewrites_gradients_after_backward) names += (names.empty() ? "" : ", ") + a->name();
  return names;
}

void Engine::check_precision(const std::string& precision) const {
  for (const auto& a : algorithms_) {
    const std::string why = a->capabilities().reduced_precision_refusal;
    if (!why.empty())
      throw ConfigError(a->key(), concat("cannot train under train.precision: ", precision, ": ", why,
                                         " (use train.precision: fp32)"));
  }
}

std::string Engine::describe_order() const {
  std::string out;
  for (int p = 0; p < kNumPhases; ++p) {
    std::string names;
    for (const auto& [algo, handler] : dispatch_[static_cast<size_t>(p)]) names += (names.empty() ? "" : ", ") + algo->name();
    if (!names.empty()) out += concat(phase_name(static_cast<Phase>(p)), ": ", names, "\n");
  }
  for (const auto& a : algorithms_) {
    std::string claims;
    for (Claim c : all_claims(*a)) claims += (claims.empty() ? "" : ", ") + std::string(claim_name(c));
    if (!claims.empty()) out += concat("claims of ", a->name(), ": ", claims, "\n");
  }
  return out;
}

}  // namespace oodt
