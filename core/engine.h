#pragma once
// Runs the plugins' hooks in order and enforces exclusive claims.
#include <memory>
#include <string>
#include <vector>

#include "core/algorithm.h"

namespace oodt {

class Engine {
 public:
  // Checks claims: two plugins claiming the same resource is a ConfigError naming both.
  explicit Engine(std::vector<std::unique_ptr<Algorithm>> algorithms);

  // Runs every plugin that hooks `phase` and is active: config order, or reverse order on
  // After* phases.
  void run(Phase phase, State& state);

  // The averaging strategy owned by a plugin, or `fallback` when none claims averaging.
  std::unique_ptr<AveragingStrategy> take_averaging(std::unique_ptr<AveragingStrategy> fallback);

  // The plugin that deals training batches, or nullptr (the data source deals them).
  Algorithm* batch_provider() const;

  const std::vector<std::unique_ptr<Algorithm>>& algorithms() const { return algorithms_; }
  // The resolved order per phase, one line each ("before_forward: mixup, ...").
  std::string describe_order() const;

 private:
  std::vector<std::unique_ptr<Algorithm>> algorithms_;
};

}  // namespace oodt
