// `oodtrain collect DIR...`: DomainBed's result tables from sweep runs (launch/model_selection.h
// has the rules): per model-selection method, one table per dataset (configuration x test
// domain, mean +/- standard error over seeds, then the average over domains) and the averages
// table (per seed, the mean over test domains; mean +/- standard error over seeds).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/report.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/model_selection.h"
#include "launch/plot.h"
#include "launch/run_state.h"

namespace oodt {
namespace fs = std::filesystem;
using nlohmann::json;
namespace {

// A run folder as collect reads it.
struct LoadedRun {
  SelectionRun run;
  std::string random;  // the draw's text, for people
  std::vector<json> rows;
};

std::string yaml_string(const YAML::Node& n, const char* key) {
  return n[key] && n[key].IsScalar() ? n[key].as<std::string>() : std::string();
}

// The dataset a run trained on: its data file's name without the extension.
std::string dataset_of(const std::string& dir) {
  try {
    const YAML::Node config = YAML::LoadFile((fs::path(dir) / "config.yaml").string());
    if (config["data"] && config["data"]["path"]) return fs::path(config["data"]["path"].as<std::string>()).stem().string();
  } catch (const YAML::Exception&) {
  }
  return "data";
}

LoadedRun load_run(const std::string& dir) {
  LoadedRun lr;
  SelectionRun& r = lr.run;
  r.dir = dir;
  const std::string meta_file = (fs::path(dir) / "sweep.yaml").string();
  bool has_draw = false;
  try {
    const YAML::Node meta = YAML::LoadFile(meta_file);
    r.config = yaml_string(meta, "grid");
    lr.random = yaml_string(meta, "random");
    r.seed = meta["seed"] ? meta["seed"].as<int64_t>() : 0;
    if (meta["draw"]) r.draw = meta["draw"].as<int64_t>(), has_draw = true;
  } catch (const YAML::Exception& e) {
    throw DataError(concat(meta_file, ": not a sweep run's description (", e.msg, ")"));
  }
  if (!has_draw) r.draw = -1;  // numbered later from the draws' text (sweeps before `draw` was written)
  r.dataset = dataset_of(dir);
  const std::string file = (fs::path(dir) / "metrics.jsonl").string();
  if (fs::exists(file)) lr.rows = read_metrics(file);
  // One row per step, the last one written (a resumed run may evaluate a step twice).
  std::map<int64_t, size_t> by_step;
  try {
    for (size_t i = 0; i < lr.rows.size(); ++i) by_step[lr.rows[i].at("step").get<int64_t>()] = i;
    std::set<std::string> held;
    for (const auto& [step, i] : by_step) {
      SelectionRow row;
      row.step = step;
      held.clear();
      for (const auto& [d, entry] : lr.rows[i].at("domains").items()) {
        for (const char* part : {"in", "out"}) {
          if (!entry.contains(part) || !entry.at(part).contains("acc")) continue;
          const json& acc = entry.at(part).at("acc");
          (std::string(part) == "in" ? row.in : row.out)[d] = acc.is_null() ? NAN : acc.get<double>();
        }
        if (entry.value("held_out", false)) held.insert(d);
      }
      r.rows.push_back(std::move(row));
    }
    r.held_out.assign(held.begin(), held.end());
  } catch (const json::exception& e) {
    throw DataError(concat(file, ": not a metrics file of this oodtrain (", e.what(), ")"));
  }
  if (r.held_out.empty()) {  // no evaluation yet: what the sweep meant to hold out
    try {
      const YAML::Node meta = YAML::LoadFile(meta_file);
      if (meta["test_domains"] && meta["test_domains"].IsSequence())
        r.held_out = meta["test_domains"].as<std::vector<std::string>>();
    } catch (const YAML::Exception&) {
    }
    std::sort(r.held_out.begin(), r.held_out.end());
  }
  return lr;
}

// Run folders under `dirs` (each a run folder or a folder of them).
std::vector<std::string> run_folders(const std::vector<std::string>& dirs) {
  std::vector<std::string> runs;
  for (const auto& d : dirs) {
    if (!fs::is_directory(d)) throw ConfigError("collect", concat("'", d, "' is not a directory"));
    if (fs::exists(fs::path(d) / "sweep.yaml")) runs.push_back(d);
    std::vector<std::string> inside;
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_directory() && fs::exists(e.path() / "sweep.yaml")) inside.push_back(e.path().string());
    std::sort(inside.begin(), inside.end());
    runs.insert(runs.end(), inside.begin(), inside.end());
  }
  return runs;
}

std::string config_name(const std::string& c) { return c.empty() ? "(base)" : c; }

std::string fmt1(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// DomainBed's format_mean: "66.0 +/- 2.8", "X" without a value.
std::string cell_text(const MeanSe& c, bool latex) {
  if (c.missing()) return "X";
  return fmt1(c.mean) + (latex ? " $\\pm$ " : " +/- ") + fmt1(c.se);
}

std::string latex_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '_': case '%': case '&': case '#': case '$': case '{': case '}': o += '\\', o += ch; break;
      case '~': o += "\\textasciitilde{}"; break;
      case '^': o += "\\textasciicircum{}"; break;
      case '\\': o += "\\textbackslash{}"; break;
      default: o += ch;
    }
  }
  return o;
}

std::string markdown_escape(const std::string& s) {
  std::string o;
  for (char ch : s) o += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return o;
}

// RFC 4180: a field with a comma, a quote or a line break is quoted, quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char ch : s) o += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return o + "\"";
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// One table (header + rows) in the chosen format.
std::string render(const std::string& format, const std::vector<std::string>& header,
                   const std::vector<std::vector<std::string>>& rows, const std::string& caption) {
  std::ostringstream os;
  if (format == "latex") {
    os << "% " << caption << "\n\\begin{tabular}{l" << std::string(header.size() - 1, 'c') << "}\n\\toprule\n";
    for (size_t i = 0; i < header.size(); ++i) os << (i ? " & " : "") << latex_escape(header[i]);
    os << " \\\\\n\\midrule\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) os << (i ? " & " : "") << (i == 0 ? latex_escape(r[i]) : r[i]);
      os << " \\\\\n";
    }
    os << "\\bottomrule\n\\end{tabular}\n";
  } else {
    os << "|";
    for (const auto& h : header) os << " " << markdown_escape(h) << " |";
    os << "\n|";
    for (size_t i = 0; i < header.size(); ++i) os << "---|";
    os << "\n";
    for (const auto& r : rows) {
      os << "|";
      for (const auto& c : r) os << " " << markdown_escape(c) << " |";
      os << "\n";
    }
  }
  return os.str();
}

std::string report_text(const SelectionReport& rep, const std::string& format) {
  const bool latex = format == "latex";
  std::ostringstream os;
  if (format == "csv") {
    for (const auto& t : rep.datasets)
      for (const auto& row : t.rows) {
        for (size_t i = 0; i < t.domains.size(); ++i) {
          const MeanSe& c = row.cells[i];
          os << selection_name(rep.method) << ",dataset," << csv_field(t.dataset) << "," << csv_field(config_name(row.config))
             << "," << csv_field(t.domains[i]) << "," << (c.missing() ? "" : number(c.mean)) << ","
             << (c.missing() ? "" : number(c.se)) << "," << c.n << "\n";
        }
        os << selection_name(rep.method) << ",dataset," << csv_field(t.dataset) << "," << csv_field(config_name(row.config))
           << ",Avg," << (row.avg ? number(*row.avg) : "") << ",,\n";
      }
    for (const auto& row : rep.averages.rows) {
      for (size_t i = 0; i < rep.averages.datasets.size(); ++i) {
        const MeanSe& c = row.cells[i];
        os << selection_name(rep.method) << ",averages,," << csv_field(config_name(row.config)) << ","
           << csv_field(rep.averages.datasets[i]) << "," << (c.missing() ? "" : number(c.mean)) << ","
           << (c.missing() ? "" : number(c.se)) << "," << c.n << "\n";
      }
      os << selection_name(rep.method) << ",averages,," << csv_field(config_name(row.config)) << ",Avg,"
         << (row.avg ? number(*row.avg) : "") << ",,\n";
    }
    return os.str();
  }
  const std::string title = selection_title(rep.method);
  if (!latex)
    os << "## Model selection: " << title << "\n\nAccuracy (%) on each test domain's `in` split, mean +/- standard "
       << "error over seeds; X: no seed has a value.\n\n";
  for (const auto& t : rep.datasets) {
    std::vector<std::string> header = {"configuration"};
    header.insert(header.end(), t.domains.begin(), t.domains.end());
    header.push_back("Avg");
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : t.rows) {
      std::vector<std::string> r = {config_name(row.config)};
      for (const auto& c : row.cells) r.push_back(cell_text(c, latex));
      r.push_back(row.avg ? fmt1(*row.avg) : "X");
      rows.push_back(std::move(r));
    }
    if (!latex) os << "### Dataset: " << t.dataset << "\n\n";
    os << render(format, header, rows, concat("dataset ", t.dataset, ", model selection: ", title)) << "\n";
  }
  std::vector<std::string> header = {"configuration"};
  header.insert(header.end(), rep.averages.datasets.begin(), rep.averages.datasets.end());
  header.push_back("Avg");
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : rep.averages.rows) {
    std::vector<std::string> r = {config_name(row.config)};
    for (const auto& c : row.cells) r.push_back(cell_text(c, latex));
    r.push_back(row.avg ? fmt1(*row.avg) : "X");
    rows.push_back(std::move(r));
  }
  if (!latex) os << "### Averages (per seed, the mean over test domains)\n\n";
  os << render(format, header, rows, concat("averages, model selection: ", title)) << "\n";
  return os.str();
}

json cell_json(const MeanSe& c) {
  if (c.missing()) return nullptr;
  return {{"mean", c.mean}, {"se", c.se}, {"n", c.n}};
}

json report_json(const SelectionReport& rep) {
  json out = json::array();
  for (const auto& t : rep.datasets) {
    json rows = json::array();
    for (const auto& row : t.rows) {
      json cells = json::object();
      for (size_t i = 0; i < t.domains.size(); ++i) cells[t.domains[i]] = cell_json(row.cells[i]);
      rows.push_back({{"config", config_name(row.config)}, {"cells", cells},
                      {"avg", row.avg ? json(*row.avg) : json(nullptr)}});
    }
    out.push_back({{"method", selection_name(rep.method)}, {"title", selection_title(rep.method)},
                   {"dataset", t.dataset}, {"domains", t.domains}, {"rows", rows}});
  }
  return out;
}

// Runs a finished sweep should have and does not: for every (dataset, configuration, draw,
// seed) seen, a run holding out each domain that some run holds out alone, and, where the
// dataset has pair runs, each pair of those domains.
std::vector<std::string> missing_runs(const std::vector<LoadedRun>& runs) {
  using Key = std::tuple<std::string, std::string, int64_t, int64_t>;
  std::map<Key, std::set<std::vector<std::string>>> have;
  std::map<std::string, std::set<std::string>> singles;
  std::map<std::string, bool> has_pairs;
  std::map<Key, std::string> random_of;
  for (const auto& lr : runs) {
    const auto& r = lr.run;
    const Key k{r.dataset, r.config, r.draw, r.seed};
    have[k].insert(r.held_out);
    random_of[k] = lr.random;
    if (r.held_out.size() == 1) singles[r.dataset].insert(r.held_out[0]);
    if (r.held_out.size() == 2) has_pairs[r.dataset] = true;
  }
  std::vector<std::string> out;
  for (const auto& [k, sets] : have) {
    const auto& ds = std::get<0>(k);
    std::vector<std::vector<std::string>> want;
    for (const auto& d : singles[ds]) want.push_back({d});
    if (has_pairs[ds])
      for (auto a = singles[ds].begin(); a != singles[ds].end(); ++a)
        for (auto b = std::next(a); b != singles[ds].end(); ++b) want.push_back({*a, *b});
    for (const auto& w : want) {
      if (sets.count(w)) continue;
      std::string held;
      for (const auto& d : w) held += (held.empty() ? "" : ", ") + d;
      out.push_back(concat(ds, ": ", config_name(std::get<1>(k)),
                           random_of[k].empty() ? "" : concat(" ", random_of[k]), " seed=", std::get<3>(k),
                           ": no finished run holds out [", held, "]"));
    }
  }
  return out;
}

// Writes `text` to `path`, naming the file when that fails.
void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw DataError(concat("cannot write ", path));
}

void warn_list(const std::string& headline, const std::vector<std::string>& lines) {
  if (lines.empty()) return;
  std::fprintf(stderr, "oodtrain collect: %s:\n", headline.c_str());
  for (size_t i = 0; i < lines.size() && i < 20; ++i) std::fprintf(stderr, "  %s\n", lines[i].c_str());
  if (lines.size() > 20) std::fprintf(stderr, "  ... and %zu more\n", lines.size() - 20);
}

}  // namespace

int cmd_collect(const Args& args) {
  std::vector<std::string> dirs;
  std::string method = "training-domain", format = "markdown", out, json_out;
  std::vector<std::string> plots, curves;
  po::options_description desc("collect options");
  desc.add_options()
      ("dirs", po::value(&dirs)->multitoken()->required(), "sweep output folders (or run folders)")
      ("select", po::value(&method)->default_value(method), "training-domain | leave-one-out | oracle | all")
      ("format", po::value(&format)->default_value(format), "markdown | csv | latex")
      ("out,o", po::value(&out), "write the tables to this file as well")
      ("json", po::value(&json_out), "write the tables, what each group selected, and every run's evaluations as JSON")
      ("plot", po::value(&plots)->composing(),
       "figure of held-out accuracy per test domain and configuration (the first method selected); "
       ".png, .svg or .pdf; repeat for several formats")
      ("curves", po::value(&curves)->composing(), "figure of accuracy against step per test domain and configuration")
      ("include-unfinished", "use the evaluations of runs that have not finished too (as DomainBed does)");
  po::positional_options_description pos;
  pos.add("dirs", -1);
  po::variables_map vm;
  if (!parse_args("collect",
                  "collect DIR... [--select training-domain|leave-one-out|oracle|all] [--format markdown|csv|latex] "
                  "[--json F]",
                  args, desc, vm, &pos))
    return 0;
  const std::vector<SelectionMethod> all = {SelectionMethod::TrainingDomain, SelectionMethod::LeaveOneOut,
                                            SelectionMethod::Oracle};
  std::vector<SelectionMethod> methods;
  for (auto m : all)
    if (method == "all" || method == selection_name(m)) methods.push_back(m);
  if (methods.empty())
    throw ConfigError("--select", concat("'", method, "' is not one of: training-domain, leave-one-out, oracle, all"));
  if (format != "markdown" && format != "csv" && format != "latex")
    throw ConfigError("--format", concat("'", format, "' is not one of: markdown, csv, latex"));
  const bool include_unfinished = vm.count("include-unfinished") > 0;

  std::vector<LoadedRun> runs;
  std::vector<std::string> unfinished;
  std::map<std::string, int> unfinished_count;
  const auto folders = run_folders(dirs);
  for (const auto& dir : folders) {
    const RunState st = run_state(dir);
    if (st.state != "done") {
      unfinished.push_back(concat(dir, ": ", st.state, st.detail.empty() ? "" : concat(" (", st.detail, ")")));
      ++unfinished_count[st.state];
      if (!include_unfinished) continue;
    }
    runs.push_back(load_run(dir));
  }
  if (!unfinished.empty()) {
    std::string summary;
    for (const auto& [st, n] : unfinished_count) summary += concat(summary.empty() ? "" : ", ", n, " ", st);
    warn_list(concat(unfinished.size(), " of ", folders.size(), " runs are not finished and ",
                     include_unfinished ? "their evaluations so far are used" : "are left out", " (", summary, ")"),
              unfinished);
  }
  if (runs.empty())
    throw DataError(concat("no finished sweep runs (folders with sweep.yaml and done) in the given folders"));
  // Sweeps written before `draw` was recorded: number the draws by their text.
  std::set<std::string> randoms;
  for (const auto& lr : runs)
    if (lr.run.draw < 0) randoms.insert(lr.random);
  for (auto& lr : runs)
    if (lr.run.draw < 0) lr.run.draw = std::distance(randoms.begin(), randoms.find(lr.random));
  warn_list("runs missing from the sweep (the tables treat them as absent)", missing_runs(runs));

  std::vector<SelectionRun> selection_runs;
  for (const auto& lr : runs) selection_runs.push_back(lr.run);
  std::string text = format == "csv" ? "selection,table,dataset,configuration,column,mean,stderr,n\n" : "";
  json doc = {{"selections", json::array()}, {"averages", json::array()}, {"selected", json::array()},
              {"curves", json::array()}};
  for (auto m : methods) {
    const SelectionReport rep = select_models(selection_runs, m);
    if (m == SelectionMethod::LeaveOneOut) {
      // DomainBed prints X and says nothing; say why once per dataset.
      std::set<std::string> datasets, with_pairs;
      for (const auto& r : selection_runs) {
        datasets.insert(r.dataset);
        if (r.held_out.size() == 2) with_pairs.insert(r.dataset);
      }
      for (const auto& d : datasets)
        if (!with_pairs.count(d))
          std::fprintf(stderr, "oodtrain: collect: leave-one-out: no run of dataset %s holds out a pair of domains, so its "
                       "cells are X (it validates on models trained without the test domain and one other: add "
                       "data.test_domains pairs to the sweep)\n", d.c_str());
    }
    text += report_text(rep, format);
    for (auto& s : report_json(rep)) doc["selections"].push_back(s);
    json av_rows = json::array();
    for (const auto& row : rep.averages.rows) {
      json cells = json::object();
      for (size_t i = 0; i < rep.averages.datasets.size(); ++i) cells[rep.averages.datasets[i]] = cell_json(row.cells[i]);
      av_rows.push_back({{"config", config_name(row.config)}, {"cells", cells},
                         {"avg", row.avg ? json(*row.avg) : json(nullptr)}});
    }
    doc["averages"].push_back({{"method", selection_name(m)}, {"datasets", rep.averages.datasets}, {"rows", av_rows}});
    for (const auto& [key, s] : rep.selected)
      doc["selected"].push_back({{"method", selection_name(m)}, {"dataset", std::get<0>(key)},
                                 {"config", config_name(std::get<1>(key))}, {"seed", std::get<2>(key)},
                                 {"test_domain", std::get<3>(key)}, {"draw", s.draw}, {"step", s.step},
                                 {"val_acc", s.val}, {"test_acc", s.test}});
  }
  std::fputs(text.c_str(), stdout);
  if (!out.empty()) write_text_file(out, text);
  // The figures are drawn from the JSON (scripts/oodt_plot.py): a temporary one without --json.
  std::string json_path = json_out;
  if (json_path.empty() && (!plots.empty() || !curves.empty()))
    json_path = (fs::temp_directory_path() / concat("oodt_collect_", ::getpid(), ".json")).string();
  if (!json_path.empty()) {
    for (const auto& lr : runs) {
      json points = json::array();
      for (const auto& row : lr.rows) {
        json domains = json::object();
        for (const auto& [d, entry] : row.at("domains").items()) {
          json e = json::object();
          for (const char* part : {"in", "out"})
            if (entry.contains(part) && entry.at(part).contains("acc")) e[part] = entry.at(part).at("acc");
          domains[d] = e;
        }
        points.push_back({{"step", row.at("step")},
                          {"val_acc", row.contains("summary") ? row.at("summary").value("val_acc", json(nullptr)) : json(nullptr)},
                          {"domains", domains}});
      }
      doc["curves"].push_back({{"run", lr.run.dir}, {"dataset", lr.run.dataset}, {"config", config_name(lr.run.config)},
                               {"random", lr.random}, {"draw", lr.run.draw}, {"seed", lr.run.seed},
                               {"held_out", lr.run.held_out}, {"points", points}});
    }
    write_text_file(json_path, doc.dump(1) + "\n");
  }
  try {
    if (!plots.empty()) plot("bars", json_path, plots, {"--method", selection_name(methods.front())});
    if (!curves.empty()) plot("curves", json_path, curves);
  } catch (...) {
    if (json_out.empty() && !json_path.empty()) fs::remove(json_path);
    throw;
  }
  if (json_out.empty() && !json_path.empty()) fs::remove(json_path);
  return 0;
}

}  // namespace oodt
