#include "launch/model_selection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace oodt {
namespace {

// A value a method needs: absent or not finite means the row cannot be used.
std::optional<double> value(const std::map<std::string, double>& m, const std::string& domain) {
  auto it = m.find(domain);
  if (it == m.end() || !std::isfinite(it->second)) return std::nullopt;
  return it->second;
}

struct Candidate {
  double val = 0, test = 0;
  int64_t step = 0;
};

// `better` is DomainBed's argmax over steps: strictly greater replaces, so the first (earliest)
// of equal values stays.
void keep_best(std::optional<Candidate>& best, const Candidate& c) {
  if (!best || c.val > best->val) best = c;
}

std::optional<Candidate> training_domain(const SelectionRun& single, const std::string& t,
                                         const std::vector<std::string>& domains) {
  std::optional<Candidate> best;
  for (const auto& row : single.rows) {
    double sum = 0;
    bool usable = true;
    for (const auto& d : domains) {
      if (d == t) continue;
      const auto v = value(row.out, d);
      if (!v) {
        usable = false;
        break;
      }
      sum += *v;
    }
    const auto test = value(row.in, t);
    if (!usable || !test || domains.size() < 2) continue;
    keep_best(best, {sum / static_cast<double>(domains.size() - 1), *test, row.step});
  }
  return best;
}

std::optional<Candidate> oracle(const SelectionRun& single, const std::string& t) {
  if (single.rows.empty()) return std::nullopt;
  const SelectionRow& last = single.rows.back();  // rows are in increasing step
  const auto val = value(last.out, t), test = value(last.in, t);
  if (!val || !test) return std::nullopt;
  return Candidate{*val, *test, last.step};
}

std::optional<Candidate> leave_one_out(const SelectionRun& single, const std::map<std::string, const SelectionRun*>& pair_of,
                                       const std::string& t, const std::vector<std::string>& domains) {
  if (domains.size() < 2) return std::nullopt;
  std::optional<Candidate> best;
  for (const auto& row : single.rows) {  // steps in increasing order
    const auto test = value(row.in, t);
    if (!test) continue;
    double sum = 0;
    bool complete = true;
    for (const auto& v : domains) {
      if (v == t) continue;
      auto p = pair_of.find(v);
      if (p == pair_of.end()) {
        complete = false;
        break;
      }
      const auto& rows = p->second->rows;
      auto r = std::find_if(rows.begin(), rows.end(), [&](const SelectionRow& x) { return x.step == row.step; });
      const auto score = r == rows.end() ? std::nullopt : value(r->in, v);
      if (!score) {
        complete = false;
        break;
      }
      sum += *score;
    }
    if (!complete) continue;
    keep_best(best, {sum / static_cast<double>(domains.size() - 1), *test, row.step});
  }
  return best;
}

}  // namespace

const char* selection_name(SelectionMethod m) {
  switch (m) {
    case SelectionMethod::TrainingDomain: return "training-domain";
    case SelectionMethod::LeaveOneOut: return "leave-one-out";
    case SelectionMethod::Oracle: return "oracle";
  }
  return "";
}

const char* selection_title(SelectionMethod m) {
  switch (m) {
    case SelectionMethod::TrainingDomain: return "training-domain validation set";
    case SelectionMethod::LeaveOneOut: return "leave-one-domain-out cross-validation";
    case SelectionMethod::Oracle: return "test-domain validation set (oracle)";
  }
  return "";
}

MeanSe mean_se(const std::vector<double>& x) {
  MeanSe r;
  r.n = x.size();
  if (x.empty()) return r;
  const double n = static_cast<double>(x.size());
  double sum = 0;
  for (double v : x) sum += v;
  const double mean = sum / n;
  double ss = 0;
  for (double v : x) ss += (v - mean) * (v - mean);
  r.mean = 100 * mean;
  r.se = 100 * std::sqrt(ss / n) / std::sqrt(n);  // population standard deviation, as np.std
  return r;
}

SelectionReport select_models(const std::vector<SelectionRun>& runs, SelectionMethod method) {
  SelectionReport report;
  report.method = method;
  // Domains of each dataset: every domain any of its runs evaluated.
  std::map<std::string, std::set<std::string>> domain_set;
  for (const auto& r : runs)
    for (const auto& row : r.rows) {
      for (const auto& [d, _] : row.in) domain_set[r.dataset].insert(d);
      for (const auto& [d, _] : row.out) domain_set[r.dataset].insert(d);
    }
  std::map<std::string, std::vector<std::string>> domains;
  for (const auto& [ds, s] : domain_set) domains[ds] = std::vector<std::string>(s.begin(), s.end());

  // Groups: (dataset, config, seed, t) -> draw -> the run holding out {t} and the runs holding
  // out {t, v} by v.
  struct Draw {
    const SelectionRun* single = nullptr;
    std::map<std::string, const SelectionRun*> pair_of;
  };
  using Key = std::tuple<std::string, std::string, int64_t, std::string>;
  std::map<Key, std::map<int64_t, Draw>> groups;
  for (const auto& r : runs) {
    if (r.held_out.size() == 1) {
      groups[{r.dataset, r.config, r.seed, r.held_out[0]}][r.draw].single = &r;
    } else if (r.held_out.size() == 2) {
      for (int k = 0; k < 2; ++k)
        groups[{r.dataset, r.config, r.seed, r.held_out[k]}][r.draw].pair_of[r.held_out[1 - k]] = &r;
    }
  }
  // The value of each group.
  std::map<Key, double> value_of;
  for (const auto& [key, draws] : groups) {
    const std::string& t = std::get<3>(key);
    const auto& doms = domains[std::get<0>(key)];
    std::optional<Selected> chosen;
    for (const auto& [draw, d] : draws) {  // ascending draw index
      if (!d.single) continue;
      std::optional<Candidate> c;
      switch (method) {
        case SelectionMethod::TrainingDomain: c = training_domain(*d.single, t, doms); break;
        case SelectionMethod::LeaveOneOut: c = leave_one_out(*d.single, d.pair_of, t, doms); break;
        case SelectionMethod::Oracle: c = oracle(*d.single, t); break;
      }
      // Over draws, ascending: a later draw with an equal validation accuracy wins (DomainBed
      // sorts ascending, stably, and takes the last).
      if (c && (!chosen || c->val >= chosen->val)) chosen = Selected{draw, c->step, c->val, c->test};
    }
    if (chosen) {
      report.selected[key] = *chosen;
      value_of[key] = chosen->test;
    }
  }

  // Per-dataset tables: every configuration of any dataset, every domain of the dataset.
  std::map<std::string, std::set<std::string>> configs;
  for (const auto& r : runs) configs[r.dataset].insert(r.config);
  std::set<std::string> all_configs;
  for (const auto& [ds, cs] : configs) all_configs.insert(cs.begin(), cs.end());
  for (const auto& [ds, _] : configs) {
    DatasetTable table;
    table.dataset = ds;
    table.domains = domains[ds];
    for (const auto& c : all_configs) {  // as DomainBed: every configuration in every table
      DatasetTable::Row row;
      row.config = c;
      bool complete = true;
      double sum = 0;
      for (const auto& t : table.domains) {
        std::vector<double> per_seed;
        for (const auto& [key, v] : value_of)
          if (std::get<0>(key) == ds && std::get<1>(key) == c && std::get<3>(key) == t) per_seed.push_back(v);
        row.cells.push_back(mean_se(per_seed));
        complete = complete && !row.cells.back().missing();
        sum += row.cells.back().mean;
      }
      if (complete && !table.domains.empty()) row.avg = sum / static_cast<double>(table.domains.size());
      table.rows.push_back(std::move(row));
    }
    report.datasets.push_back(std::move(table));
  }

  // Averages: per configuration and dataset, per seed the mean over the test domains that have
  // a value (no completeness check, as DomainBed), then mean ± SE over those seeds.
  for (const auto& [ds, _] : configs) report.averages.datasets.push_back(ds);
  for (const auto& c : all_configs) {
    AveragesTable::Row row;
    row.config = c;
    bool complete = true;
    double sum = 0;
    for (const auto& ds : report.averages.datasets) {
      std::map<int64_t, std::vector<double>> by_seed;
      for (const auto& [key, v] : value_of)
        if (std::get<0>(key) == ds && std::get<1>(key) == c) by_seed[std::get<2>(key)].push_back(v);
      std::vector<double> seed_means;
      for (const auto& [seed, vs] : by_seed) {
        double s = 0;
        for (double v : vs) s += v;
        seed_means.push_back(s / static_cast<double>(vs.size()));
      }
      row.cells.push_back(mean_se(seed_means));
      complete = complete && !row.cells.back().missing();
      sum += row.cells.back().mean;
    }
    if (complete && !report.averages.datasets.empty())
      row.avg = sum / static_cast<double>(report.averages.datasets.size());
    report.averages.rows.push_back(std::move(row));
  }
  return report;
}

}  // namespace oodt
