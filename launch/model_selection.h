#pragma once
// DomainBed's model selection and reporting (Gulrajani & Lopez-Paz, "In Search of Lost Domain
// Generalization", 2021; domainbed/model_selection.py, lib/query.py, scripts/collect_results.py),
// ported rule for rule. Pure: runs in, tables out; `oodtrain collect` reads the run folders.
//
// A group is (dataset, configuration, seed, test domain t); its members are the runs of that
// configuration and seed whose held-out set contains t. Within a group, for each random draw
// of the hyper-parameters (ascending draw index) a method gives (validation, test) accuracy or
// nothing; the draw with the best validation accuracy is selected (exact ties: the highest
// draw index) and its test accuracy is the group's value:
//   training-domain   the run holding out only t, every evaluation: validation = unweighted
//                     mean of the training domains' `out` accuracies, test = t's `in` accuracy;
//                     the best evaluation (ties: the earliest step).
//   leave-one-out     at every step where the run holding out only t and, for every other
//                     domain v of the data, the run holding out {t, v} have an evaluation:
//                     validation = mean over v of v's `in` accuracy in the {t, v} run, test =
//                     t's `in` accuracy in the {t} run; the best step (ties: the earliest).
//   oracle            the run holding out only t, its last evaluation: validation = t's `out`
//                     accuracy, test = t's `in` accuracy.
// A cell is mean ± standard error (population standard deviation / sqrt(n)) over the seeds
// that have a value, in percent; X when none has. Runs holding out more than two domains are
// not used by any method.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace oodt {

// One evaluation of a run: accuracy of each domain's `in` and `out` split (absent or NaN:
// not evaluated or not finite; a row missing a value a method needs is unusable for it).
struct SelectionRow {
  int64_t step = 0;
  std::map<std::string, double> in, out;
};

struct SelectionRun {
  std::string dir;
  std::string dataset;               // one table per dataset
  std::string config;                // the configuration (grid point): one table row each
  int64_t draw = 0;                  // index of the random draw (DomainBed's hparams_seed)
  int64_t seed = 0;                  // DomainBed's trial_seed
  std::vector<std::string> held_out;
  std::vector<SelectionRow> rows;    // increasing step, one row per step
};

enum class SelectionMethod { TrainingDomain, LeaveOneOut, Oracle };
const char* selection_name(SelectionMethod m);   // "training-domain", ...
const char* selection_title(SelectionMethod m);  // DomainBed's heading

// What one group selected.
struct Selected {
  int64_t draw = 0, step = 0;
  double val = 0, test = 0;  // fractions
};

// A mean ± SE over seeds in percent, as DomainBed's format_mean; n = 0 means X.
struct MeanSe {
  double mean = 0, se = 0;
  size_t n = 0;
  bool missing() const { return n == 0; }
};
MeanSe mean_se(const std::vector<double>& fractions);

struct DatasetTable {
  std::string dataset;
  std::vector<std::string> domains;  // every domain of the dataset's runs, sorted
  struct Row {
    std::string config;
    std::vector<MeanSe> cells;       // per domain
    std::optional<double> avg;       // mean of the cells' means; none when a cell is X
  };
  std::vector<Row> rows;             // sorted by configuration
};

struct AveragesTable {
  std::vector<std::string> datasets;
  struct Row {
    std::string config;
    std::vector<MeanSe> cells;       // per dataset: mean over its test domains per seed, ± SE over seeds
    std::optional<double> avg;
  };
  std::vector<Row> rows;
};

struct SelectionReport {
  SelectionMethod method;
  std::vector<DatasetTable> datasets;
  AveragesTable averages;
  // (dataset, config, seed, test domain) -> what was selected; groups without a value absent.
  std::map<std::tuple<std::string, std::string, int64_t, std::string>, Selected> selected;
};

SelectionReport select_models(const std::vector<SelectionRun>& runs, SelectionMethod method);

}  // namespace oodt
