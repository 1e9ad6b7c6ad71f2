#pragma once
// The one algorithm registry: name -> factory(config). Filled explicitly by
// oodt::register_builtins() (algorithms/builtins.cpp), never by static initialisers, which the
// linker drops from static libraries.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/algorithm.h"
#include "core/config.h"

namespace oodt {

struct AlgorithmInfo {
  std::string name;
  std::string summary;  // one line for `oodtrain list-algorithms`
  // Reads the plugin's options (every key, defaults filled in) and builds it.
  std::function<std::unique_ptr<Algorithm>(ConfigReader&)> factory;
};

class Registry {
 public:
  void add(AlgorithmInfo info);
  // A plugin class P with kName, kSummary and Options::from_config(ConfigReader&), the
  // options read beside the plugin.
  template <class P>
  void add() {
    add({P::kName, P::kSummary, [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           return std::make_unique<P>(P::Options::from_config(cfg));
         }});
  }
  // The entry for `name`; a ConfigError at `key` naming the nearest registered name if unknown.
  const AlgorithmInfo& find(const std::string& name, const std::string& key = "algorithms") const;
  const std::vector<AlgorithmInfo>& entries() const { return entries_; }

  // Builds the plugins listed under `algorithms:` in order. Each entry is a name or a
  // one-key map `name: {options}`; options are validated and filled with defaults in place.
  std::vector<std::unique_ptr<Algorithm>> build(YAML::Node list,
                                                std::shared_ptr<const Origins> origins) const;

 private:
  std::vector<AlgorithmInfo> entries_;
};

// Fills `registry` with every plugin shipped in algorithms/ (defined there).
void register_builtins(Registry& registry);

}  // namespace oodt
