#include "core/engine.h"

#include <map>

#include "core/averaging.h"
#include "core/comm.h"
#include "core/error.h"

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

Engine::Engine(std::vector<std::unique_ptr<Algorithm>> algorithms) : algorithms_(std::move(algorithms)) {
  std::map<std::string, std::string> owner;  // claim -> plugin
  for (const auto& a : algorithms_) {
    std::vector<std::string> claims = a->claims();
    if (a->owns_averaging()) claims.push_back("averaging");
    if (a->provides_batches()) claims.push_back("batches");
    for (const auto& claim : claims) {
      auto [it, fresh] = owner.emplace(claim, a->name());
      if (!fresh)
        throw ConfigError("algorithms", concat("'", it->second, "' and '", a->name(), "' both claim ", claim,
                                            "; at most one plugin may own it"));
    }
  }
}

void Engine::run(Phase phase, State& state) {
  const int idx = static_cast<int>(phase);
  auto call = [&](Algorithm& a) {
    if (a.hooks().test(idx) && a.active(state)) {
      CollectiveContext ctx(concat(phase_name(phase), " ", a.name()));
      a.run(phase, state);
    }
  };
  if (is_after_phase(phase)) {
    for (auto it = algorithms_.rbegin(); it != algorithms_.rend(); ++it) call(**it);
  } else {
    for (auto& a : algorithms_) call(*a);
  }
}

Algorithm* Engine::batch_provider() const {
  for (const auto& a : algorithms_)
    if (a->provides_batches()) return a.get();  // at most one: a claim
  return nullptr;
}

std::unique_ptr<AveragingStrategy> Engine::take_averaging(std::unique_ptr<AveragingStrategy> fallback) {
  for (auto& a : algorithms_) {
    if (a->owns_averaging()) {  // the constructor guarantees at most one owner
      auto s = a->make_averaging();
      OODT_CHECK(s != nullptr, "plugin '", a->name(), "' owns averaging but made no strategy");
      return s;
    }
  }
  return fallback;
}

std::string Engine::describe_order() const {
  std::string out;
  for (int p = 0; p < kNumPhases; ++p) {
    const Phase phase = static_cast<Phase>(p);
    std::string names;
    auto add = [&](const Algorithm& a) {
      if (a.hooks().test(p)) names += (names.empty() ? "" : ", ") + a.name();
    };
    if (is_after_phase(phase)) {
      for (auto it = algorithms_.rbegin(); it != algorithms_.rend(); ++it) add(**it);
    } else {
      for (const auto& a : algorithms_) add(*a);
    }
    if (!names.empty()) out += concat(phase_name(phase), ": ", names, "\n");
  }
  return out;
}

}  // namespace oodt
