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

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/report.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/run_state.h"

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
  std::vector<std::pair<int64_t, double>> curve;  // (step, validation accuracy) per evaluation
  double acc_all(const std::string& d) const {  // both splits
    const Split a = in.at(d), b = out.at(d);
    return (a.acc * a.n + b.acc * b.n) / (a.n + b.n);
  }
};

// The finished runs under `dirs`; the others (with their state) in `unfinished`.
std::vector<Result> load_results(const std::vector<std::string>& dirs,
                                 std::vector<std::pair<std::string, RunState>>& unfinished) {
  std::vector<std::string> runs;
  for (const auto& d : dirs) {
    if (!fs::is_directory(d)) throw ConfigError("collect", concat("'", d, "' is not a directory"));
    if (fs::exists(fs::path(d) / "sweep.yaml")) runs.push_back(d);
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_directory() && fs::exists(e.path() / "sweep.yaml")) runs.push_back(e.path().string());
  }
  std::vector<Result> out;
  for (const auto& dir : runs) {
    if (const RunState st = run_state(dir); st.state != "done") {
      unfinished.emplace_back(dir, st);
      continue;
    }
    YAML::Node meta;
    const std::string meta_file = (fs::path(dir) / "sweep.yaml").string();
    try {
      meta = YAML::LoadFile(meta_file);
      (void)meta["grid"].as<std::string>(""), (void)meta["random"].as<std::string>(""), (void)meta["seed"].as<int64_t>(0);
    } catch (const YAML::Exception& e) {
      throw DataError(concat(meta_file, ": not a sweep run's description (", e.msg, ")"));
    }
    const std::string file = (fs::path(dir) / "metrics.jsonl").string();
    const std::vector<nlohmann::json> rows = read_metrics(file);
    if (rows.empty()) throw DataError(concat(file, ": no evaluation in a finished run"));
    Result r;
    r.dir = dir;
    r.grid = meta["grid"].as<std::string>("");
    r.random = meta["random"].as<std::string>("");
    r.seed = meta["seed"].as<int64_t>(0);
    // The trainer's own summary of each evaluation (core/report.h), never recomputed here.
    auto number = [](const nlohmann::json& v) { return v.is_null() ? NAN : v.get<double>(); };
    try {
      for (const auto& row : rows) {
        const double val = number(row.at("summary").at("val_acc"));
        if (std::isfinite(val)) r.curve.emplace_back(row.at("step").get<int64_t>(), val);
      }
      const nlohmann::json& last = rows.back();
      for (const auto& [d, entry] : last.at("domains").items()) {
        for (const char* part : {"in", "out"}) {
          if (!entry.contains(part)) continue;  // data.eval_train_in: false leaves training domains' in out
          const Split s{number(entry.at(part).at("acc")), number(entry.at(part).at("n"))};
          (std::string(part) == "in" ? r.in : r.out)[d] = s;
        }
        if (entry.at("held_out").get<bool>()) r.held_out.insert(d);
      }
      r.val = number(last.at("summary").at("val_acc"));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(concat(file, ": not a metrics file of this oodtrain (", e.what(), ")"));
    }
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

const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

// Grouped bars: per held-out domain, one bar per configuration (mean), whisker ± SE.
std::string svg_bars(const Table& t, const std::set<std::string>& domains, const std::string& method) {
  const double W = 160 + 90.0 * static_cast<double>(domains.size()), H = 330, L = 55, B = 40, T = 30;
  const double R = 260;
  double hi = 0;
  for (const auto& [g, cells] : t)
    for (const auto& [d, c] : cells) hi = std::max(hi, c.mean() + c.stderr_());
  hi = std::min(1.0, hi + 0.05);
  auto Y = [&](double v) { return T + (H - T - B) * (hi - v) / hi; };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W + R << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << L << "\" y=\"16\" font-size=\"12\">held-out accuracy, " << method
    << " selection (mean, ± standard error over seeds)</text>\n";
  for (int i = 0; i <= 4; ++i) {
    const double v = hi * i / 4;
    s << "<line x1=\"" << L << "\" x2=\"" << W << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v) << "\" stroke=\"#ddd\"/>"
      << "<text x=\"" << L - 4 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">" << concat(std::round(v * 100) / 100)
      << "</text>\n";
  }
  const double group = (W - L - 10) / static_cast<double>(domains.size());
  const double bar = group * 0.8 / static_cast<double>(t.size());
  size_t di = 0;
  for (const auto& d : domains) {
    const double x0 = L + 5 + group * static_cast<double>(di++);
    s << "<text x=\"" << x0 + group * 0.4 << "\" y=\"" << H - B + 15 << "\" text-anchor=\"middle\">" << d << "</text>\n";
    size_t gi = 0;
    for (const auto& [g, cells] : t) {
      const double x = x0 + bar * static_cast<double>(gi);
      const char* colour = kColours[gi++ % 8];
      auto it = cells.find(d);
      if (it == cells.end()) continue;
      const double m = it->second.mean(), e = it->second.stderr_();
      s << "<rect x=\"" << x << "\" y=\"" << Y(m) << "\" width=\"" << bar * 0.9 << "\" height=\"" << Y(0) - Y(m)
        << "\" fill=\"" << colour << "\"/><line x1=\"" << x + bar * 0.45 << "\" x2=\"" << x + bar * 0.45 << "\" y1=\""
        << Y(m - e) << "\" y2=\"" << Y(m + e) << "\" stroke=\"black\"/>\n";
    }
  }
  size_t gi = 0;
  for (const auto& [g, cells] : t) {
    const double y = T + 14.0 * static_cast<double>(gi);
    s << "<rect x=\"" << W + 10 << "\" y=\"" << y << "\" width=\"10\" height=\"10\" fill=\"" << kColours[gi++ % 8]
      << "\"/><text x=\"" << W + 25 << "\" y=\"" << y + 9 << "\">" << (g.empty() ? "(base)" : g) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Learning curves: validation accuracy against step, mean over the runs of each configuration.
std::string svg_curves(const std::vector<Result>& results) {
  std::map<std::string, std::map<int64_t, std::pair<double, int>>> acc;  // grid -> step -> (sum, n)
  for (const auto& r : results)
    for (const auto& [step, v] : r.curve) {
      auto& cell = acc[r.grid][step];
      cell.first += v, cell.second += 1;
    }
  int64_t last = 1;
  double lo = 1, hi = 0;
  for (const auto& [g, steps] : acc)
    for (const auto& [step, c] : steps) {
      last = std::max(last, step);
      lo = std::min(lo, c.first / c.second), hi = std::max(hi, c.first / c.second);
    }
  lo = std::max(0.0, lo - 0.02), hi = std::min(1.0, hi + 0.02);
  const double W = 420, H = 300, L = 55, B = 40, T = 30, R = 260;
  auto X = [&](double s) { return L + (W - L - 10) * s / static_cast<double>(last); };
  auto Y = [&](double v) { return T + (H - T - B) * (hi - v) / std::max(1e-9, hi - lo); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W + R << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << L << "\" y=\"16\" font-size=\"12\">validation accuracy (training domains' out splits) against step</text>\n"
    << "<line x1=\"" << L << "\" x2=\"" << W - 10 << "\" y1=\"" << H - B << "\" y2=\"" << H - B << "\" stroke=\"black\"/>"
    << "<text x=\"" << W - 10 << "\" y=\"" << H - B + 15 << "\" text-anchor=\"end\">" << last << "</text>"
    << "<text x=\"" << L - 4 << "\" y=\"" << Y(lo) + 4 << "\" text-anchor=\"end\">" << concat(std::round(lo * 100) / 100)
    << "</text><text x=\"" << L - 4 << "\" y=\"" << Y(hi) + 4 << "\" text-anchor=\"end\">"
    << concat(std::round(hi * 100) / 100) << "</text>\n";
  size_t gi = 0;
  for (const auto& [g, steps] : acc) {
    const char* colour = kColours[gi % 8];
    s << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << colour << "\" points=\"";
    for (const auto& [step, c] : steps) s << X(static_cast<double>(step)) << "," << Y(c.first / c.second) << " ";
    const double y = T + 14.0 * static_cast<double>(gi++);
    s << "\"/>\n<rect x=\"" << W + 10 << "\" y=\"" << y << "\" width=\"10\" height=\"10\" fill=\"" << colour
      << "\"/><text x=\"" << W + 25 << "\" y=\"" << y + 9 << "\">" << (g.empty() ? "(base)" : g) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
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
      ("out,o", po::value(&out), "write the tables to this file as well")
      ("plot", po::value<std::string>(), "SVG of held-out accuracy per domain and configuration (first selection)")
      ("curves", po::value<std::string>(), "SVG of validation accuracy against step per configuration");
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
  std::vector<std::pair<std::string, RunState>> unfinished;
  const auto results = load_results(dirs, unfinished);
  if (!unfinished.empty()) {
    // Never silently: the tables below leave these runs out.
    std::map<std::string, int> count;
    for (const auto& [dir, st] : unfinished) ++count[st.state];
    std::string summary;
    for (const auto& [st, n] : count) summary += concat(summary.empty() ? "" : ", ", n, " ", st);
    std::fprintf(stderr, "oodtrain collect: %zu of %zu runs are not finished and are left out (%s):\n", unfinished.size(),
                 unfinished.size() + results.size(), summary.c_str());
    for (size_t i = 0; i < unfinished.size() && i < 20; ++i)
      std::fprintf(stderr, "  %s: %s%s\n", unfinished[i].first.c_str(), unfinished[i].second.state.c_str(),
                   unfinished[i].second.detail.empty() ? "" : concat(" (", unfinished[i].second.detail, ")").c_str());
    if (unfinished.size() > 20) std::fprintf(stderr, "  ... and %zu more\n", unfinished.size() - 20);
  }
  if (results.empty()) throw DataError(concat("no finished sweep runs (folders with sweep.yaml and done) in the given folders"));
  std::string text = format == "csv" ? "selection,configuration,domain,mean,stderr,seeds\n" : "";
  bool plotted = false;
  for (const auto& m : methods) {
    if (method != "all" && method != m) continue;
    std::set<std::string> domains;
    const Table t = select(results, m, domains);
    if (!t.empty() && !plotted && vm.count("plot")) {
      std::ofstream(vm["plot"].as<std::string>()) << svg_bars(t, domains, m);
      plotted = true;
    }
    if (t.empty()) {
      text += concat("Model selection: ", m, ": no runs it can use",
                     m == "leave-one-out" ? " (it needs runs holding out pairs of domains)" : "", "\n\n");
      continue;
    }
    text += print(t, domains, m, format) + (format == "csv" ? "" : "\n");
  }
  std::fputs(text.c_str(), stdout);
  if (!out.empty()) std::ofstream(out) << text;
  if (vm.count("curves")) std::ofstream(vm["curves"].as<std::string>()) << svg_curves(results);
  return 0;
}

}  // namespace oodt
