// `oodtrain collect DIR...`: one table of held-out accuracy per configuration and held-out
// domain from finished sweep runs, with DomainBed's model selection (Gulrajani & Lopez-Paz
// 2021): for every configuration (grid point), held-out domain and seed, one random draw of the
// hyper-parameters is selected, its test accuracy recorded, and the cell is the mean ± standard
// error over seeds. Test accuracy is the held-out domain's `in` split at the last evaluation.
//   training-domain  select by accuracy on the training domains' `out` splits;
//   leave-one-out    runs that hold out the test domain t and one more domain v: select by the
//                    mean over v of the accuracy on v, report the mean over v of t's accuracy
//                    (needs `test_domains: {each: ..., pairs: true}` sweeps);
//   oracle           select by the test domain's `out` split (an upper bound, not a method).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "launch/cli.h"
#include "launch/commands.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

struct Split {
  double acc = 0, n = 0;
};

struct Result {
  std::string grid, random, dir;
  int64_t seed = 0;
  std::set<std::string> held_out;
  std::map<std::string, Split> in, out;  // per domain, last evaluation
  double val = NAN;                       // training domains' out splits
  double acc_all(const std::string& d) const {  // both splits
    const Split a = in.at(d), b = out.at(d);
    return (a.acc * a.n + b.acc * b.n) / (a.n + b.n);
  }
};

std::vector<Result> load_results(const std::vector<std::string>& dirs) {
  std::vector<std::string> runs;
  for (const auto& d : dirs) {
    if (!fs::is_directory(d)) throw ConfigError("collect", concat("'", d, "' is not a directory"));
    if (fs::exists(fs::path(d) / "sweep.yaml")) runs.push_back(d);
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_directory() && fs::exists(e.path() / "sweep.yaml")) runs.push_back(e.path().string());
  }
  std::vector<Result> out;
  for (const auto& dir : runs) {
    if (!fs::exists(fs::path(dir) / "done")) continue;  // unfinished or failed
    const YAML::Node meta = YAML::LoadFile((fs::path(dir) / "sweep.yaml").string());
    std::ifstream metrics(fs::path(dir) / "metrics.jsonl");
    std::string line, last;
    while (std::getline(metrics, line))
      if (!line.empty()) last = line;
    if (last.empty()) throw DataError(concat(dir, "/metrics.jsonl: no evaluation in a finished run"));
    Result r;
    r.dir = dir;
    r.grid = meta["grid"].as<std::string>("");
    r.random = meta["random"].as<std::string>("");
    r.seed = meta["seed"].as<int64_t>(0);
    const YAML::Node e = YAML::Load(last);
    double val = 0, nv = 0;
    for (const auto& kv : e["domains"]) {
      const std::string d = kv.first.as<std::string>();
      for (const char* part : {"in", "out"}) {
        Split s{kv.second[part]["acc"].as<double>(), kv.second[part]["n"].as<double>()};
        (std::string(part) == "in" ? r.in : r.out)[d] = s;
      }
      if (kv.second["held_out"].as<bool>()) r.held_out.insert(d);
      else val += r.out[d].acc * r.out[d].n, nv += r.out[d].n;
    }
    r.val = nv > 0 ? val / nv : NAN;
    out.push_back(std::move(r));
  }
  return out;
}

struct Cell {
  std::vector<double> values;  // one per seed
  double mean() const {
    double s = 0;
    for (double v : values) s += v;
    return s / static_cast<double>(values.size());
  }
  double stderr_() const {
    if (values.size() < 2) return 0;
    const double m = mean();
    double ss = 0;
    for (double v : values) ss += (v - m) * (v - m);
    return std::sqrt(ss / static_cast<double>(values.size() - 1) / static_cast<double>(values.size()));
  }
};

using Table = std::map<std::string, std::map<std::string, Cell>>;  // grid -> test domain -> cell

Table select(const std::vector<Result>& results, const std::string& method, std::set<std::string>& domains) {
  Table t;
  // (grid, seed) -> runs
  std::map<std::pair<std::string, int64_t>, std::vector<const Result*>> groups;
  for (const auto& r : results) groups[{r.grid, r.seed}].push_back(&r);
  for (const auto& [key, runs] : groups) {
    std::set<std::string> tests;
    for (const auto* r : runs)
      if (r->held_out.size() == 1) tests.insert(*r->held_out.begin());
    if (method == "leave-one-out")
      for (const auto* r : runs)
        if (r->held_out.size() == 2) tests.insert(r->held_out.begin(), r->held_out.end());
    for (const auto& test : tests) {
      // Per random draw: (selection score, test accuracy).
      std::map<std::string, std::pair<double, double>> scored;
      if (method == "leave-one-out") {
        std::map<std::string, std::vector<std::pair<double, double>>> per;
        for (const auto* r : runs) {
          if (r->held_out.size() != 2 || !r->held_out.count(test)) continue;
          std::string v;
          for (const auto& d : r->held_out)
            if (d != test) v = d;
          per[r->random].push_back({r->acc_all(v), r->in.at(test).acc});
        }
        for (const auto& [h, list] : per) {
          double s = 0, a = 0;
          for (const auto& [sv, av] : list) s += sv, a += av;
          scored[h] = {s / static_cast<double>(list.size()), a / static_cast<double>(list.size())};
        }
      } else {
        for (const auto* r : runs) {
          if (r->held_out.size() != 1 || !r->held_out.count(test)) continue;
          const double score = method == "oracle" ? r->out.at(test).acc : r->val;
          scored[r->random] = {score, r->in.at(test).acc};
        }
      }
      if (scored.empty()) continue;
      auto best = scored.begin();  // ties: the first draw in name order
      for (auto it = scored.begin(); it != scored.end(); ++it)
        if (it->second.first > best->second.first) best = it;
      t[key.first][test].values.push_back(best->second.second);
      domains.insert(test);
    }
  }
  return t;
}

std::string print(const Table& t, const std::set<std::string>& domains, const std::string& method,
                  const std::string& format) {
  std::ostringstream os;
  auto row_name = [](const std::string& g) { return g.empty() ? std::string("(base)") : g; };
  char buf[64];
  auto fmt = [&](const Cell& c, const char* pm) {
    std::snprintf(buf, sizeof buf, "%.2f %s %.2f", 100 * c.mean(), pm, 100 * c.stderr_());
    return std::string(buf);
  };
  if (format == "csv") {
    for (const auto& [g, cells] : t)
      for (const auto& [d, c] : cells)
        os << method << ",\"" << row_name(g) << "\"," << d << "," << c.mean() << "," << c.stderr_() << ","
           << c.values.size() << "\n";
    return os.str();
  }
  const bool latex = format == "latex";
  if (latex) {
    os << "% model selection: " << method << "; held-out accuracy (%), mean $\\pm$ standard error over seeds\n";
    os << "\\begin{tabular}{l" << std::string(domains.size() + 1, 'c') << "}\n\\toprule\nConfiguration";
    for (const auto& d : domains) os << " & " << d;
    os << " & Avg \\\\\n\\midrule\n";
  } else {
    os << "Model selection: " << method << " (held-out accuracy %, mean ± standard error over seeds)\n\n";
    os << "| configuration |";
    for (const auto& d : domains) os << " " << d << " |";
    os << " avg |\n|---|";
    for (size_t i = 0; i <= domains.size(); ++i) os << "---|";
    os << "\n";
  }
  for (const auto& [g, cells] : t) {
    os << (latex ? "" : "| ") << row_name(g);
    double sum = 0;
    bool complete = true;
    for (const auto& d : domains) {
      auto it = cells.find(d);
      os << (latex ? " & " : " | ");
      if (it == cells.end()) {
        os << "-";
        complete = false;
      } else {
        os << fmt(it->second, latex ? "$\\pm$" : "±");
        sum += it->second.mean();
      }
    }
    // The average over domains (of the per-domain means), when every domain has a value.
    if (complete && !domains.empty()) {
      std::snprintf(buf, sizeof buf, "%.2f", 100 * sum / static_cast<double>(domains.size()));
      os << (latex ? " & " : " | ") << buf;
    } else {
      os << (latex ? " & -" : " | -");
    }
    os << (latex ? " \\\\\n" : " |\n");
  }
  if (latex) os << "\\bottomrule\n\\end{tabular}\n";
  return os.str();
}

}  // namespace

int cmd_collect(const Args& args) {
  std::vector<std::string> dirs;
  std::string method = "training-domain", format = "markdown", out;
  po::options_description desc("collect options");
  desc.add_options()
      ("dirs", po::value(&dirs)->multitoken()->required(), "sweep output folders (or run folders)")
      ("select", po::value(&method)->default_value(method), "training-domain | leave-one-out | oracle | all")
      ("format", po::value(&format)->default_value(format), "markdown | csv | latex")
      ("out,o", po::value(&out), "write the tables to this file as well");
  po::positional_options_description pos;
  pos.add("dirs", -1);
  po::variables_map vm;
  if (!parse_args("collect", "collect DIR... [--select training-domain|leave-one-out|oracle|all] [--format markdown|csv|latex]",
                  args, desc, vm, &pos))
    return 0;
  const std::vector<std::string> methods = {"training-domain", "leave-one-out", "oracle"};
  if (method != "all" && std::find(methods.begin(), methods.end(), method) == methods.end())
    throw ConfigError("--select", concat("'", method, "' is not one of: training-domain, leave-one-out, oracle, all"));
  if (format != "markdown" && format != "csv" && format != "latex")
    throw ConfigError("--format", concat("'", format, "' is not one of: markdown, csv, latex"));
  const auto results = load_results(dirs);
  if (results.empty()) throw DataError(concat("no finished sweep runs (folders with sweep.yaml and done) in the given folders"));
  std::string text = format == "csv" ? "selection,configuration,domain,mean,stderr,seeds\n" : "";
  for (const auto& m : methods) {
    if (method != "all" && method != m) continue;
    std::set<std::string> domains;
    const Table t = select(results, m, domains);
    if (t.empty()) {
      text += concat("Model selection: ", m, ": no runs it can use",
                     m == "leave-one-out" ? " (it needs runs holding out pairs of domains)" : "", "\n\n");
      continue;
    }
    text += print(t, domains, m, format) + (format == "csv" ? "" : "\n");
  }
  std::fputs(text.c_str(), stdout);
  if (!out.empty()) std::ofstream(out) << text;
  return 0;
}

}  // namespace oodt
