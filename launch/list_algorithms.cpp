// `oodtrain list-algorithms`
#include <cstdio>

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
    std::string hooks;
    for (int p = 0; p < kNumPhases; ++p)
      if (algo->hooks().test(p)) hooks += (hooks.empty() ? "" : ",") + std::string(phase_name(static_cast<Phase>(p)));
    if (algo->owns_averaging()) hooks += ",averaging";
    std::printf("%-22s %-42s %s\n", info.name.c_str(), hooks.c_str(), info.summary.c_str());
  }
  std::printf("\nconfigure under `algorithms:` in order, e.g.\n  algorithms:\n    - mixup: {alpha: 0.4}\n"
              "    - label_smoothing: {smoothing: 0.1}\ndocs: docs/algorithms/<name>.md\n");
  return 0;
}

}  // namespace oodt
