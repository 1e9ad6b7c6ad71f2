// `oodtrain list-algorithms`
#include <cstdio>

#include "core/engine.h"
#include "core/registry.h"
#include "launch/cli.h"

namespace oodt {

int cmd_list_algorithms(const Args& args) {
  po::options_description desc("list-algorithms options");
  po::variables_map vm;
  if (!parse_args("list-algorithms", "list-algorithms", args, desc, vm)) return 0;
  Registry registry;
  register_builtins(registry);
  std::printf("%-22s %-42s %s\n", "name", "phases", "summary");
  for (const auto& info : registry.entries()) {
    ConfigReader defaults(YAML::Node(YAML::NodeType::Map), "algorithms." + info.name, nullptr);
    const auto algo = info.factory(defaults);
    HookTable table;
    algo->hooks(table);
    std::string hooks;
    auto add = [&](const std::string& what) { hooks += (hooks.empty() ? "" : ",") + what; };
    if (algo->capabilities().swaps_layers) add("prepare_model");
    for (int p = 0; p < kNumPhases; ++p)
      if (table.hooks(static_cast<Phase>(p))) add(phase_name(static_cast<Phase>(p)));
    for (Claim c : all_claims(*algo))
      if (c == Claim::Averaging || c == Claim::Batches || c == Claim::Prediction) add(claim_name(c));
    std::printf("%-22s %-42s %s\n", info.name.c_str(), hooks.c_str(), info.summary.c_str());
  }
  std::printf("\nconfigure under `algorithms:` in order, e.g.\n  algorithms:\n    - mixup: {alpha: 0.4}\n"
              "    - label_smoothing: {smoothing: 0.1}\ndocs: docs/algorithms/<name>.md\n");
  return 0;
}

}  // namespace oodt
