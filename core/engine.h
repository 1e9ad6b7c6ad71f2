#pragma once
// Runs the plugins' hooks in order, enforces exclusive claims, and answers the trainer's
// questions about what the plugins do (typed capability queries).
#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/algorithm.h"

namespace oodt {

class Engine {
 public:
  // Collects every plugin's hooks and checks, before step 1 (ConfigError naming the plugins):
  // two plugins claiming the same resource (optional interfaces claim theirs implicitly), and
  // a plugin that hooks after_backward or before_averaging without saying it rewrites
  // gradients there (or says so without hooking either).
  explicit Engine(std::vector<std::unique_ptr<Algorithm>> algorithms);

  // Module surgery of every plugin, in config order.
  void prepare_model(State& state);
  // Runs every plugin that hooks `phase` and is active: config order, or reverse order on
  // After* phases.
  void run(Phase phase, State& state);

  // Capability queries.
  // The plugins (comma-separated names) whose capabilities say they rewrite gradients after
  // backward; "" when none does.
  std::string gradient_rewriters() const;
  // Under train.precision `precision` (bf16, fp16): a ConfigError at the key of the first plugin
  // whose capabilities refuse reduced precision, with its reason.
  void check_precision(const std::string& precision) const;
  // The plugin owning each optional interface, or nullptr (at most one each: a claim).
  AveragingOwner* averaging_owner() const { return find<AveragingOwner>(); }
  BatchDealer* batch_dealer() const { return find<BatchDealer>(); }
  EvaluationPredictor* predictor() const { return find<EvaluationPredictor>(); }
  BucketHookProvider* bucket_hook_provider() const { return find<BucketHookProvider>(); }

  const std::vector<std::unique_ptr<Algorithm>>& algorithms() const { return algorithms_; }
  // The resolved order per phase, one line each ("before_forward: a, b, ..."), and the
  // plugins owning optional interfaces.
  std::string describe_order() const;

 private:
  template <class T>
  T* find() const {
    for (const auto& a : algorithms_)
      if (auto* t = dynamic_cast<T*>(a.get())) return t;
    return nullptr;
  }

  std::vector<std::unique_ptr<Algorithm>> algorithms_;
  // Per phase, in dispatch order: the plugin and its handler.
  std::array<std::vector<std::pair<Algorithm*, HookTable::Handler>>, kNumPhases> dispatch_;
};

// Every claim of `algo`: its own and those implied by its optional interfaces.
std::vector<Claim> all_claims(const Algorithm& algo);

}  // namespace oodt
