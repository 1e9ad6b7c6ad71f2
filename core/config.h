#pragma once
// The one config flow: built-in defaults < config files in order < `--set key=value`
// overrides, resolved into a single YAML tree. Typed options are read from that tree with a
// ConfigReader, which fills in defaults (so the resolved tree is complete and can be dumped
// and saved), checks types and ranges, and rejects unknown keys naming the key path, the file
// it came from, and the nearest valid key.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace oodt {

// Where each key of the resolved tree was last set: a file name or "--set".
using Origins = std::map<std::string, std::string>;

// A resolved configuration: the tree plus where each value came from.
struct ConfigTree {
  YAML::Node root = YAML::Node(YAML::NodeType::Map);
  std::shared_ptr<Origins> origins = std::make_shared<Origins>();

  // Merges a YAML file on top (maps merge key by key, everything else is replaced).
  void merge_file(const std::string& path);
  // Merges an already parsed tree on top; `origin` names it in error messages.
  void merge(const YAML::Node& over, const std::string& origin);
  // Applies one `dotted.key=value` override; value is parsed as YAML. A path segment that
  // meets a list selects an element by index or, for lists of named entries such as
  // `algorithms`, by name (`algorithms.<name>.alpha=0.2`).
  void set(const std::string& assignment);
  // The resolved tree as YAML text.
  std::string dump() const;
};

// Parses YAML text; errors name `origin` with line and column.
YAML::Node parse_yaml(const std::string& text, const std::string& origin);

// Levenshtein distance, used to suggest the nearest valid key or name.
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `word`, or "" when none is close enough to be a likely typo.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// Reads one map of the tree into typed values. Every key a component knows is read through
// get()/child(); finish() then rejects whatever is left.
class ConfigReader {
 public:
  ConfigReader(YAML::Node node, std::string path, std::shared_ptr<const Origins> origins);

  // Value at `key`, or `fallback` (which is then written into the tree) when absent.
  template <typename T>
  T get(const std::string& key, const T& fallback);
  // Value at `key`; a ConfigError when absent.
  template <typename T>
  T require(const std::string& key);
  bool has(const std::string& key) const;
  // A nested map (created empty when absent).
  ConfigReader child(const std::string& key);
  // The raw node at key (marked as known). Used for lists of plugins.
  YAML::Node raw(const std::string& key);
  // A list of maps under `key` (absent: empty), each read as `<key>.<i>`.
  std::vector<ConfigReader> children(const std::string& key);
  // Marks a key as known without reading it (e.g. a selector already read elsewhere).
  void allow(const std::string& key) { known_.insert(key); }

  // Range and choice checks, raising ConfigError on the key.
  void check(bool ok, const std::string& key, const std::string& message) const;
  std::string one_of(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& choices);
  // The same for an enum: `choices` names every value; the fallback's name is written back.
  template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
  E one_of(const std::string& key, E fallback, const std::vector<std::pair<std::string, E>>& choices) {
    std::vector<std::string> names;
    std::string fallback_name;
    for (const auto& [name, value] : choices) {
      names.push_back(name);
      if (value == fallback && fallback_name.empty()) fallback_name = name;
    }
    const std::string chosen = one_of(key, fallback_name, names);
    for (const auto& [name, value] : choices)
      if (name == chosen) return value;
    return fallback;
  }

  // Fails on any key that was never read, suggesting the nearest known key.
  void finish() const;

  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  std::string key_path(const std::string& key) const;
  const std::string& path() const { return path_; }
  YAML::Node node() const { return node_; }

 private:
  YAML::Node node_;
  std::string path_;
  std::shared_ptr<const Origins> origins_;
  std::set<std::string> known_;
};

// Type names used in error messages.
template <typename T>
const char* yaml_type_name();

}  // namespace oodt
