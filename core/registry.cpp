#include "core/registry.h"

#include <set>

namespace oodt {

void Registry::add(AlgorithmInfo info) {
  for (const auto& e : entries_) OODT_CHECK(e.name != info.name, "algorithm registered twice: ", info.name);
  entries_.push_back(std::move(info));
}

const AlgorithmInfo& Registry::find(const std::string& name, const std::string& key) const {
  std::vector<std::string> names;
  for (const auto& e : entries_) {
    if (e.name == name) return e;
    names.push_back(e.name);
  }
  const std::string hint = nearest(name, names);
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw ConfigError(key, concat("unknown algorithm '", name, "'",
                             hint.empty() ? concat(" (registered: ", list, ")") : concat("; did you mean '", hint, "'?")));
}

std::vector<std::unique_ptr<Algorithm>> Registry::build(YAML::Node list,
                                                        std::shared_ptr<const Origins> origins) const {
  std::vector<std::unique_ptr<Algorithm>> out;
  if (!list.IsDefined() || list.IsNull()) return out;
  if (!list.IsSequence())
    throw ConfigError("algorithms", "expected a list of names or `name: {options}` maps (`oodtrain list-algorithms` lists the names)");
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    YAML::Node entry = list[i];
    const std::string where = concat("algorithms[", i, "]");
    std::string name;
    if (entry.IsScalar()) {
      name = entry.Scalar();
      YAML::Node promoted(YAML::NodeType::Map);  // resolved form: `- name: {options}`
      promoted[name] = YAML::Node(YAML::NodeType::Map);
      list[i] = promoted;
      entry = list[i];
    } else if (entry.IsMap() && entry.size() == 1) {
      name = entry.begin()->first.Scalar();
    } else {
      throw ConfigError(where, "each entry is a name or a one-key map `name: {options}`");
    }
    const AlgorithmInfo& info = find(name, where);
    if (!seen.insert(name).second) throw ConfigError(where, concat("algorithm '", name, "' is listed twice"));
    ConfigReader reader(entry[name], "algorithms." + name, origins);
    std::unique_ptr<Algorithm> algo = info.factory(reader);
    reader.finish();
    algo->set_name(name);
    out.push_back(std::move(algo));
  }
  return out;
}

}  // namespace oodt
