#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace oodt {
namespace {

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// Records the origin of every leaf under `node`.
void record_origins(const YAML::Node& node, const std::string& path, const std::string& origin,
                    Origins& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) record_origins(kv.second, join_path(path, kv.first.Scalar()), origin, out);
  }
  out[path] = origin;
}

// Keys that select a variant of a section (model.name, optim.name, data.type, ...). A layer
// that selects a different variant replaces the section instead of merging into it: options
// of the old variant would not be valid for the new one.
bool selects_other_variant(const YAML::Node& base, const YAML::Node& over) {
  for (const char* selector : {"name", "type"}) {
    const YAML::Node a = base[selector], b = over[selector];
    if (a.IsDefined() && a.IsScalar() && b.IsDefined() && b.IsScalar() && a.Scalar() != b.Scalar()) return true;
  }
  return false;
}

void merge_into(YAML::Node base, const YAML::Node& over, const std::string& path,
                const std::string& origin, Origins& origins) {
  for (const auto& kv : over) {
    if (!kv.first.IsScalar())  // found by fuzz/config_fuzz: `? [a]: 1` escaped as YAML::InvalidNode
      throw ConfigError(path, concat(origin, ": keys must be plain names, not lists or maps"));
    const std::string key = kv.first.Scalar();
    const std::string sub = join_path(path, key);
    YAML::Node existing = base[key];
    if (existing.IsDefined() && existing.IsMap() && kv.second.IsMap() && !selects_other_variant(existing, kv.second)) {
      merge_into(existing, kv.second, sub, origin, origins);
      origins[sub] = origin;
    } else {
      base[key] = YAML::Clone(kv.second);
      record_origins(kv.second, sub, origin, origins);
    }
  }
}

bool is_integer(const std::string& s) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-') ? 1 : 0;
  if (i == s.size()) return false;
  return std::all_of(s.begin() + i, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The name of a list entry: a plain string, or the single key of a one-key map.
std::string entry_name(const YAML::Node& entry) {
  if (entry.IsScalar()) return entry.Scalar();
  if (entry.IsMap() && entry.size() == 1) return entry.begin()->first.Scalar();
  return "";
}

// Bounds on a parsed tree, aliases expanded: a config has no use for more, and a hostile file
// (an alias that refers to itself, or aliases of aliases growing exponentially) must fail
// here, before anything walks the tree.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 200000;

// Rejects what yaml-cpp accepts but a config must not have: an alias that contains itself (an
// endless tree), more than kMaxDepth levels or kMaxNodes nodes once aliases are expanded, and
// a key given twice in one map (yaml-cpp would keep both, and readers would see the first).
void check_tree(const YAML::Node& node, const std::string& origin, std::vector<YAML::Node>& ancestors, size_t& nodes) {
  const auto where = [&](const YAML::Node& n) { return concat(origin, ":", n.Mark().line + 1, ":", n.Mark().column + 1); };
  for (const YAML::Node& a : ancestors)
    if (node.is(a))
      throw ConfigError("", concat(where(node), ": a YAML alias refers to a node that contains it (an endless tree)"));
  if (++nodes > kMaxNodes)
    throw ConfigError("", concat(origin, ": more than ", kMaxNodes, " YAML nodes once aliases are expanded"));
  if (static_cast<int>(ancestors.size()) >= kMaxDepth)
    throw ConfigError("", concat(where(node), ": YAML nested deeper than ", kMaxDepth, " levels"));
  if (!node.IsMap() && !node.IsSequence()) return;
  ancestors.push_back(node);
  if (node.IsMap()) {
    std::set<std::string> keys;
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && !keys.insert(kv.first.Scalar()).second)
        throw ConfigError("", concat(where(kv.first), ": key '", kv.first.Scalar(), "' is given twice in one map"));
      check_tree(kv.first, origin, ancestors, nodes);
      check_tree(kv.second, origin, ancestors, nodes);
    }
  } else {
    for (const auto& item : node) check_tree(item, origin, ancestors, nodes);
  }
  ancestors.pop_back();
}

}  // namespace

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("", concat(origin, ":", e.mark.line + 1, ":", e.mark.column + 1,
                              ": invalid YAML: ", e.msg));
  }
  if (!node.IsDefined() || node.IsNull()) return YAML::Node(YAML::NodeType::Map);
  std::vector<YAML::Node> ancestors;
  size_t nodes = 0;
  check_tree(node, origin, ancestors, nodes);
  return node;
}

void ConfigTree::merge_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError("", concat(path, ": is a directory, not a config file"));
  std::ifstream in(path);
  if (!in) throw ConfigError("", concat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  YAML::Node node = parse_yaml(ss.str(), path);
  if (!node.IsMap()) throw ConfigError("", concat(path, ": a config file must be a YAML map at top level"));
  merge(node, path);
}

void ConfigTree::merge(const YAML::Node& over, const std::string& origin) {
  if (!over.IsMap()) throw ConfigError("", concat(origin, ": a config must be a YAML map at top level"));
  merge_into(root, over, "", origin, *origins);
}

void ConfigTree::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("", concat("--set ", assignment, ": expected key=value"));
  const std::string key = assignment.substr(0, eq);
  const YAML::Node value = parse_yaml(assignment.substr(eq + 1), "--set " + key);

  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) throw ConfigError(key, "--set: empty path segment");
    parts.push_back(part);
  }
  YAML::Node node = root;
  std::string path;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& part = parts[i];
    path = join_path(path, part);
    if (node.IsSequence()) {
      size_t index = node.size();
      std::vector<std::string> names;
      if (is_integer(part)) {
        // Compared as text first: an index of 20 digits does not fit a long.
        const bool in_range = part[0] != '-' && part.size() <= 9 && std::stoll(part) < static_cast<long long>(node.size());
        if (!in_range)
          throw ConfigError(path, concat("--set: index ", part, " is out of range (the list has ", node.size(), " entries)"));
        index = static_cast<size_t>(std::stoll(part));
      } else {
        for (size_t j = 0; j < node.size() && index == node.size(); ++j) {
          names.push_back(entry_name(node[j]));
          if (names.back() == part) index = j;
        }
        if (index == node.size()) {
          const std::string hint = nearest(part, names);
          throw ConfigError(path, concat("--set: no entry named '", part, "' in this list",
                                         hint.empty() ? "" : concat(" (did you mean '", hint, "'?)")));
        }
      }
      YAML::Node entry = node[index];
      const std::string name = entry_name(entry);
      if (entry.IsScalar()) {  // promote `- name` to `- name: {}` so it can hold keys
        YAML::Node promoted(YAML::NodeType::Map);
        promoted[name] = YAML::Node(YAML::NodeType::Map);
        node[index] = promoted;
        entry = node[index];
      }
      // A named entry `- name: {options}` is addressed through to its options.
      YAML::Node next = (entry.IsMap() && entry.size() == 1) ? entry[name] : entry;
      if (next.IsNull()) {
        entry[name] = YAML::Node(YAML::NodeType::Map);
        next = entry[name];
      }
      node.reset(next);
      continue;
    }
    if (!node.IsMap())
      throw ConfigError(path, "--set: cannot descend into a value that is not a map");
    YAML::Node next = node[part];
    if (!next.IsDefined() || next.IsNull()) {
      node[part] = YAML::Node(YAML::NodeType::Map);
      next = node[part];
      (*origins)[path] = "--set";
    }
    node.reset(next);
  }
  if (!node.IsMap() && !node.IsNull())
    throw ConfigError(key, "--set: the parent of this key is not a map");
  YAML::Node probe(YAML::NodeType::Map);
  probe[parts.back()] = value;
  if (node.IsMap() && selects_other_variant(node, probe)) {
    // Selecting another variant (e.g. --set model.name=vit) starts that section afresh.
    std::vector<std::string> keys;
    for (const auto& kv : node) keys.push_back(kv.first.Scalar());
    for (const auto& k : keys) node.remove(k);
  }
  node[parts.back()] = YAML::Clone(value);
  record_origins(value, key, "--set", *origins);
}

std::string ConfigTree::dump() const {
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = static_cast<size_t>(-1);
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

// --- ConfigReader ------------------------------------------------------------------------

ConfigReader::ConfigReader(YAML::Node node, std::string path, std::shared_ptr<const Origins> origins)
    : node_(node), path_(std::move(path)), origins_(std::move(origins)) {
  if (!node_.IsDefined() || node_.IsNull()) node_ = YAML::Node(YAML::NodeType::Map);
  if (!node_.IsMap()) fail("", "expected a map of settings");
}

std::string ConfigReader::key_path(const std::string& key) const {
  return key.empty() ? path_ : join_path(path_, key);
}

void ConfigReader::fail(const std::string& key, const std::string& message) const {
  const std::string full = key_path(key);
  std::string origin;
  if (origins_) {
    // The most specific recorded origin along the path.
    for (std::string p = full;; ) {
      auto it = origins_->find(p);
      if (it != origins_->end()) { origin = it->second; break; }
      const auto dot = p.rfind('.');
      if (dot == std::string::npos) break;
      p = p.substr(0, dot);
    }
  }
  throw ConfigError(full, origin.empty() || origin == "defaults" ? message
                                                                : concat(message, " [set in ", origin, "]"));
}

void ConfigReader::check(bool ok, const std::string& key, const std::string& message) const {
  if (!ok) fail(key, message);
}

bool ConfigReader::has(const std::string& key) const {
  YAML::Node n = node_[key];
  return n.IsDefined() && !n.IsNull();
}

template <> const char* yaml_type_name<bool>() { return "a boolean (true/false)"; }
template <> const char* yaml_type_name<int64_t>() { return "an integer"; }
template <> const char* yaml_type_name<double>() { return "a number"; }
template <> const char* yaml_type_name<std::string>() { return "a string"; }
template <> const char* yaml_type_name<std::vector<int64_t>>() { return "a list of integers"; }
template <> const char* yaml_type_name<std::vector<double>>() { return "a list of numbers"; }
template <> const char* yaml_type_name<std::vector<std::string>>() { return "a list of strings"; }

namespace {
template <typename T>
bool convert_scalar(const YAML::Node& n, T& out) {
  if (!n.IsScalar()) return false;
  if constexpr (std::is_same_v<T, std::string>) {
    out = n.Scalar();
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    double v;
    if (!YAML::convert<double>::decode(n, v)) return false;
    out = v;
    return true;
  } else if constexpr (std::is_same_v<T, int64_t>) {
    // Accept 1000 and 1e3 alike, but never silently truncate 0.5.
    long long v;
    if (YAML::convert<long long>::decode(n, v)) { out = v; return true; }
    double d;
    if (YAML::convert<double>::decode(n, d) && std::isfinite(d) && d == std::floor(d) &&
        std::fabs(d) < 9.0e15) {
      out = static_cast<int64_t>(d);
      return true;
    }
    return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    bool v;
    if (!YAML::convert<bool>::decode(n, v)) return false;
    out = v;
    return true;
  }
  return false;
}

template <typename T>
bool convert(const YAML::Node& n, T& out) {
  if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>> ||
                std::is_same_v<T, std::vector<std::string>>) {
    if (!n.IsSequence()) return false;
    out.clear();
    for (const auto& e : n) {
      typename T::value_type v;
      if (!convert_scalar(e, v)) return false;
      out.push_back(v);
    }
    return true;
  } else {
    return convert_scalar(n, out);
  }
}

template <typename T>
YAML::Node to_node(const T& v) {
  YAML::Node n(v);
  if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>> ||
                std::is_same_v<T, std::vector<std::string>>) {
    if (v.empty()) n = YAML::Node(YAML::NodeType::Sequence);
    n.SetStyle(YAML::EmitterStyle::Flow);
  }
  return n;
}

std::string describe(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  return "nothing";
}
}  // namespace

template <typename T>
T ConfigReader::get(const std::string& key, const T& fallback) {
  known_.insert(key);
  YAML::Node n = node_[key];
  if (!n.IsDefined() || n.IsNull()) {
    node_[key] = to_node(fallback);
    return fallback;
  }
  T out;
  if (!convert(n, out)) fail(key, concat("expected ", yaml_type_name<T>(), ", got ", describe(n)));
  return out;
}

template <typename T>
T ConfigReader::require(const std::string& key) {
  known_.insert(key);
  YAML::Node n = node_[key];
  if (!n.IsDefined() || n.IsNull()) fail(key, "required key is missing");
  T out;
  if (!convert(n, out)) fail(key, concat("expected ", yaml_type_name<T>(), ", got ", describe(n)));
  return out;
}

#define OODT_INSTANTIATE(T) \
  template T ConfigReader::get<T>(const std::string&, const T&); \
  template T ConfigReader::require<T>(const std::string&);
OODT_INSTANTIATE(bool)
OODT_INSTANTIATE(int64_t)
OODT_INSTANTIATE(double)
OODT_INSTANTIATE(std::string)
OODT_INSTANTIATE(std::vector<int64_t>)
OODT_INSTANTIATE(std::vector<double>)
OODT_INSTANTIATE(std::vector<std::string>)
#undef OODT_INSTANTIATE

ConfigReader ConfigReader::child(const std::string& key) {
  known_.insert(key);
  YAML::Node n = node_[key];
  if (!n.IsDefined() || n.IsNull()) {
    node_[key] = YAML::Node(YAML::NodeType::Map);
    n = node_[key];
  }
  if (!n.IsMap()) fail(key, concat("expected a map, got ", describe(n)));
  return ConfigReader(n, key_path(key), origins_);
}

std::vector<ConfigReader> ConfigReader::children(const std::string& key) {
  known_.insert(key);
  YAML::Node n = node_[key];
  std::vector<ConfigReader> out;
  if (!n.IsDefined() || n.IsNull()) return out;
  if (!n.IsSequence()) fail(key, concat("expected a list of maps, got ", describe(n)));
  for (size_t i = 0; i < n.size(); ++i) {
    if (!n[i].IsMap()) fail(key, concat("entry ", i, ": expected a map, got ", describe(n[i])));
    out.emplace_back(n[i], key_path(key) + "." + std::to_string(i), origins_);
  }
  return out;
}

YAML::Node ConfigReader::raw(const std::string& key) {
  known_.insert(key);
  return node_[key];
}

std::string ConfigReader::one_of(const std::string& key, const std::string& fallback,
                                 const std::vector<std::string>& choices) {
  const std::string v = get<std::string>(key, fallback);
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    const std::string hint = nearest(v, choices);
    fail(key, concat("'", v, "' is not one of: ", list, hint.empty() ? "" : concat(" (did you mean '", hint, "'?)")));
  }
  return v;
}

void ConfigReader::finish() const {
  std::vector<std::string> valid(known_.begin(), known_.end());
  for (const auto& kv : node_) {
    const std::string key = kv.first.Scalar();
    if (known_.count(key)) continue;
    const std::string hint = nearest(key, valid);
    std::string list;
    for (const auto& k : valid) list += (list.empty() ? "" : ", ") + k;
    fail(key, hint.empty() ? concat("unknown key (valid keys here: ", list, ")")
                           : concat("unknown key; did you mean '", key_path(hint), "'?"));
  }
}

}  // namespace oodt
