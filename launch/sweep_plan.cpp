#include "launch/sweep_plan.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/random.h"
#include "core/seed.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

std::string flow(const YAML::Node& n) {
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << n;
  return e.c_str();
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// A config file named in the sweep: as given (relative to the working directory), else
// relative to the sweep file's folder.
std::string locate(const std::string& path, const std::string& sweep_file) {
  if (fs::exists(path)) return path;
  const fs::path beside = fs::path(sweep_file).parent_path() / path;
  if (fs::exists(beside)) return beside.string();
  throw ConfigError("base", concat("config file '", path, "' not found (relative to the working directory or to ",
                                   sweep_file, ")"));
}

// One value drawn from a `random.params` entry: {uniform: [a, b]}, {log_uniform: [a, b]},
// {int_uniform: [a, b]} or {choice: [...]}.
std::string draw(ConfigReader& spec, const std::string& key, SeededRng& rng) {
  const YAML::Node n = spec.raw(key);
  if (!n.IsMap() || n.size() != 1)
    spec.fail(key, "must be one of {uniform: [a, b]}, {log_uniform: [a, b]}, {int_uniform: [a, b]}, {choice: [...]}");
  const std::string kind = n.begin()->first.as<std::string>();
  const YAML::Node args = n.begin()->second;
  if (kind == "choice") {
    if (!args.IsSequence() || args.size() == 0) spec.fail(key, "choice needs a non-empty list");
    return flow(args[rng.below(args.size())]);
  }
  if (!args.IsSequence() || args.size() != 2) spec.fail(key, concat(kind, " needs [low, high]"));
  const double a = args[0].as<double>(), b = args[1].as<double>();
  if (!(a <= b)) spec.fail(key, concat(kind, ": low must not exceed high"));
  if (kind == "uniform") return concat(a + (b - a) * rng.uniform());
  if (kind == "log_uniform") {
    if (a <= 0) spec.fail(key, "log_uniform needs positive bounds");
    return concat(std::exp(std::log(a) + (std::log(b) - std::log(a)) * rng.uniform()));
  }
  if (kind == "int_uniform")
    return concat(static_cast<int64_t>(a) + static_cast<int64_t>(rng.below(static_cast<uint64_t>(b - a + 1))));
  spec.fail(key, concat("unknown distribution '", kind, "'"));
}

}  // namespace

SweepPlan plan_sweep(const std::string& file, const std::function<void(ConfigTree&)>& resolve) {
  SweepPlan sw;
  sw.file = file;
  ConfigTree tree;
  tree.merge_file(file);
  ConfigReader root(tree.root, "", tree.origins);
  sw.out = root.get<std::string>("out", (fs::path("runs/sweeps") / fs::path(file).stem()).string());
  const auto base = root.get<std::vector<std::string>>("base", {});
  root.check(!base.empty(), "base", "list at least one config file");
  auto map_or_empty = [&](const std::string& key) {
    const YAML::Node n = root.raw(key);
    if (n.IsDefined() && !n.IsNull() && !n.IsMap()) throw ConfigError(key, "must be a map of dotted keys");
    return n.IsMap() ? n : YAML::Node(YAML::NodeType::Map);
  };
  std::vector<std::string> fixed;
  for (const auto& kv : map_or_empty("set")) fixed.push_back(concat(kv.first.as<std::string>(), "=", flow(kv.second)));
  // Grid: the cartesian product, the first key varying slowest.
  std::vector<std::vector<std::string>> points = {{}};
  for (const auto& kv : map_or_empty("grid")) {
    const std::string key = kv.first.as<std::string>();
    if (!kv.second.IsSequence() || kv.second.size() == 0)
      throw ConfigError("grid." + key, "must be a non-empty list of values");
    if (points.size() * kv.second.size() > kMaxSweepRuns)
      throw ConfigError("grid." + key, concat("the grid grows past ", kMaxSweepRuns, " points"));
    std::vector<std::vector<std::string>> next;
    for (const auto& p : points)
      for (const auto& v : kv.second) {
        auto q = p;
        q.push_back(concat("G", key, "=", flow(v)));
        next.push_back(q);
      }
    points = next;
  }
  // Random: `count` draws per grid point.
  {
    ConfigReader random = root.child("random");
    const auto count = random.get<int64_t>("count", 0);
    random.check(count >= 0 && count <= static_cast<int64_t>(kMaxSweepRuns), "count",
                 concat("must be in [0, ", kMaxSweepRuns, "]"));
    random.check(static_cast<size_t>(count) * points.size() <= kMaxSweepRuns, "count",
                 concat("gives ", count * static_cast<int64_t>(points.size()), " draws over the grid; at most ", kMaxSweepRuns));
    const auto seed = random.get<int64_t>("seed", 0);
    if (count > 0) {
      ConfigReader params = random.child("params");
      std::vector<std::string> keys;
      for (const auto& kv : params.node()) keys.push_back(kv.first.as<std::string>());
      random.check(!keys.empty(), "params", "list the keys to draw");
      std::vector<std::vector<std::string>> next;
      for (size_t g = 0; g < points.size(); ++g)
        for (int64_t d = 0; d < count; ++d) {
          SeededRng rng(mix_seed(static_cast<uint64_t>(seed), static_cast<uint64_t>(g), static_cast<uint64_t>(d)));
          auto q = points[g];
          for (const auto& k : keys) q.push_back(concat("R", k, "=", draw(params, k, rng)));
          q.push_back(concat("D", d));  // the draw's index: model selection breaks ties by it
          next.push_back(q);
        }
      points = next;
      params.finish();
    }
    random.finish();
  }
  const auto seeds = root.get<std::vector<int64_t>>("seeds", {0});
  // Held-out domains: a list of lists, or {each: [...], pairs: bool}.
  std::vector<std::vector<std::string>> tests;
  {
    const YAML::Node td = root.raw("test_domains");
    if (!td.IsDefined() || td.IsNull()) {
      tests.push_back({});  // the base configs' own
    } else if (td.IsSequence()) {
      for (const auto& t : td) tests.push_back(t.as<std::vector<std::string>>());
    } else if (td.IsMap()) {
      ConfigReader tdr(td, "test_domains", tree.origins);
      const auto each = tdr.require<std::vector<std::string>>("each");
      const bool pairs = tdr.get("pairs", false);
      tdr.finish();
      for (const auto& d : each) tests.push_back({d});
      if (pairs)
        for (size_t i = 0; i < each.size(); ++i)
          for (size_t j = i + 1; j < each.size(); ++j) tests.push_back({each[i], each[j]});
    } else {
      throw ConfigError("test_domains", "a list of lists, or {each: [...], pairs: true|false}");
    }
  }
  root.finish();

  const size_t total = tests.size() * points.size() * std::max<size_t>(1, seeds.size());
  if (total > kMaxSweepRuns)
    throw ConfigError(file, concat("the sweep has ", total, " runs (held-out sets x grid points x draws x seeds); at most ",
                                   kMaxSweepRuns));
  std::vector<std::string> files;
  for (const auto& b : base) files.push_back(locate(b, file));
  for (const auto& test : tests)
    for (const auto& point : points)
      for (int64_t seed : seeds) {
        SweepRun r;
        r.sets = fixed;
        std::string label;
        for (const auto& tagged : point) {  // G: grid, R: random draw, D: the draw's index
          const std::string s = tagged.substr(1);
          if (tagged[0] == 'D') {
            r.draw = std::stoll(s);
            continue;
          }
          r.sets.push_back(s);
          label += s + " ";
          std::string& part = tagged[0] == 'G' ? r.grid : r.random;
          part += (part.empty() ? "" : " ") + s;
        }
        r.sets.push_back(concat("run.seed=", seed));
        r.seed = seed;
        r.test = test;
        if (!test.empty()) {
          YAML::Node list(YAML::NodeType::Sequence);
          for (const auto& d : test) list.push_back(d);
          r.sets.push_back("data.test_domains=" + flow(list));
          label += "test=" + flow(list) + " ";
        }
        label += concat("seed=", seed);
        r.label = label;
        // The folder name is a hash of the resolved config (every default filled in), computed
        // with a fixed placeholder for run.dir so that it does not depend on the output folder.
        ConfigTree t;
        for (const auto& f : files) t.merge_file(f);
        for (const auto& s : r.sets) t.set(s);
        t.set("run.dir=sweep");
        try {
          resolve(t);
        } catch (const ConfigError& e) {  // refuse the sweep before anything runs, naming the run
          throw ConfigError(file, concat("run '", r.label, "': ", e.what()));
        }
        char name[17];
        // Two draws can resolve to the same config (a `choice` that came out equal): the draw
        // index keeps them apart, as separate runs (DomainBed's hparams_seed). Sweeps without
        // random draws hash the config alone, as before.
        const std::string identity = r.draw >= 0 ? concat(t.dump(), "\n# draw ", r.draw, "\n") : t.dump();
        std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(fnv1a(identity)));
        r.dir = (fs::path(sw.out) / std::string(name, 12)).string();
        t.set("run.dir=" + flow(YAML::Node(r.dir)));
        r.config = t.dump();
        sw.runs.push_back(std::move(r));
      }
  return sw;
}

std::string render_template(const std::string& text, const std::map<std::string, std::string>& values,
                            const std::string& name) {
  std::string out;
  std::set<std::string> used;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    const size_t close = text.find("}}", open);
    if (close == std::string::npos) throw Error(concat(name, ": '{{' without '}}' at offset ", open));
    const std::string key = text.substr(open + 2, close - open - 2);
    auto it = values.find(key);
    if (it == values.end()) throw Error(concat(name, ": no value for {{", key, "}}"));
    out += text.substr(pos, open - pos) + it->second;
    used.insert(key);
    pos = close + 2;
  }
  out += text.substr(pos);
  for (const auto& [key, value] : values)
    if (!used.count(key)) throw Error(concat(name, ": no {{", key, "}} to fill"));
  return out;
}

}  // namespace oodt
