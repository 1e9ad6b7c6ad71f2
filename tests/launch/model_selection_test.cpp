// DomainBed's model selection (launch/model_selection.h) on a hand-built sweep: 3 domains,
// 2 draws, 2 seeds, every single and pair held-out set, one pair run absent. Every expected
// number below was worked out by hand from DomainBed's rules (model_selection.py,
// collect_results.py), not by running this code; the fixture's values are chosen so that each
// wrong rule (ties by name or lowest draw, last evaluation only, latest step on ties, a
// sample-weighted validation mean, ddof=1, partial leave-one-out scores, an oracle that looks
// at earlier steps) changes at least one printed cell.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "launch/model_selection.h"
#include "test_util.h"

namespace oodt {
namespace {

std::vector<SelectionRun> fixture_runs() {
  std::ifstream in(test::fixture("domainbed/runs.json"));
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<SelectionRun> runs;
  for (const auto& r : doc) {
    SelectionRun run;
    run.dir = r.at("dir").get<std::string>();
    run.dataset = "fixture";
    run.config = r.at("sweep").at("grid").get<std::string>();
    run.draw = r.at("sweep").at("draw").get<int64_t>();
    run.seed = r.at("sweep").at("seed").get<int64_t>();
    run.held_out = r.at("sweep").at("test_domains").get<std::vector<std::string>>();
    for (const auto& m : r.at("metrics")) {
      SelectionRow row;
      row.step = m.at("step").get<int64_t>();
      for (const auto& [d, e] : m.at("domains").items()) {
        row.in[d] = e.at("in").at("acc").get<double>();
        row.out[d] = e.at("out").at("acc").get<double>();
      }
      run.rows.push_back(row);
    }
    runs.push_back(run);
  }
  return runs;
}

struct Want {
  double mean, se;
  size_t n;
};

void expect_table(const SelectionReport& rep, const std::vector<Want>& cells, std::optional<double> avg,
                  Want averages, const char* what) {
  ASSERT_EQ(rep.datasets.size(), 1u) << what;
  const auto& t = rep.datasets[0];
  ASSERT_EQ(t.domains, (std::vector<std::string>{"d0", "d1", "d2"})) << what;
  ASSERT_EQ(t.rows.size(), 1u) << what;
  for (size_t i = 0; i < cells.size(); ++i) {
    EXPECT_EQ(t.rows[0].cells[i].n, cells[i].n) << what << " " << t.domains[i];
    if (cells[i].n == 0) continue;
    EXPECT_NEAR(t.rows[0].cells[i].mean, cells[i].mean, 1e-6) << what << " " << t.domains[i];
    EXPECT_NEAR(t.rows[0].cells[i].se, cells[i].se, 1e-6) << what << " " << t.domains[i];
  }
  EXPECT_EQ(t.rows[0].avg.has_value(), avg.has_value()) << what;
  if (avg && t.rows[0].avg) EXPECT_NEAR(*t.rows[0].avg, *avg, 1e-6) << what;
  ASSERT_EQ(rep.averages.rows.size(), 1u);
  const MeanSe& a = rep.averages.rows[0].cells.at(0);
  EXPECT_EQ(a.n, averages.n) << what;
  EXPECT_NEAR(a.mean, averages.mean, 1e-6) << what;
  EXPECT_NEAR(a.se, averages.se, 1e-6) << what;
  ASSERT_TRUE(rep.averages.rows[0].avg.has_value());
  EXPECT_NEAR(*rep.averages.rows[0].avg, averages.mean, 1e-6) << what;
}

TEST(ModelSelection, StandardErrorIsDomainBeds) {
  // collect_results.format_mean([0.1, 0.2, 0.3]) prints 20.0 +/- 4.7 (population std / sqrt(n)).
  const MeanSe m = mean_se({0.1, 0.2, 0.3});
  EXPECT_NEAR(m.mean, 20.0, 1e-9);
  EXPECT_NEAR(m.se, 100 * std::sqrt(2.0 / 300.0) / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(m.se, 4.714045, 1e-6);
  EXPECT_EQ(mean_se({0.5}).se, 0.0);
  EXPECT_TRUE(mean_se({}).missing());
}

TEST(ModelSelection, TrainingDomainValidationSelectsOverDrawsAndSteps) {
  const auto rep = select_models(fixture_runs(), SelectionMethod::TrainingDomain);
  expect_table(rep, {{66, 2.828427, 2}, {64, 1.414214, 2}, {75, 0.707107, 2}}, 68.333333, {68.333333, 1.649916, 2},
               "training-domain");
  // d1, seed 0: two draws tie at 0.80 -> the higher draw index; d2, seed 0: two steps tie -> the earlier.
  EXPECT_EQ(rep.selected.at({"fixture", "", 0, "d1"}).draw, 1);
  EXPECT_EQ(rep.selected.at({"fixture", "", 0, "d2"}).step, 50);
}

TEST(ModelSelection, LeaveOneDomainOutUsesPairRunsAndTheSingleRunsTestAccuracy) {
  const auto rep = select_models(fixture_runs(), SelectionMethod::LeaveOneOut);
  expect_table(rep, {{57, 4.949747, 2}, {53, 0.707107, 2}, {75, 0.707107, 2}}, 61.666667, {61.666667, 1.649916, 2},
               "leave-one-out");
  // Seed 0, draw 1 lacks the {d1, d2} run: only draw 0 is left for d1 and d2.
  EXPECT_EQ(rep.selected.at({"fixture", "", 0, "d1"}).draw, 0);
  EXPECT_EQ(rep.selected.at({"fixture", "", 0, "d2"}).draw, 0);
}

TEST(ModelSelection, OracleLooksAtTheLastEvaluationOnly) {
  const auto rep = select_models(fixture_runs(), SelectionMethod::Oracle);
  expect_table(rep, {{68, 1.414214, 2}, {64, 1.414214, 2}, {78, 1.414214, 2}}, 70.0, {70.0, 0.471405, 2}, "oracle");
  for (const auto& [key, s] : rep.selected) EXPECT_EQ(s.step, 100);
}

TEST(ModelSelection, ACellIsXOnlyWhenNoSeedHasAValue) {
  auto runs = fixture_runs();
  runs.erase(std::remove_if(runs.begin(), runs.end(),
                            [](const SelectionRun& r) { return r.held_out == std::vector<std::string>{"d1", "d2"}; }),
             runs.end());
  ASSERT_EQ(runs.size(), 20u);
  const auto loo = select_models(runs, SelectionMethod::LeaveOneOut);
  // d1 and d2 need the {d1, d2} pair in every draw of every seed: X; the averages keep d0.
  expect_table(loo, {{57, 4.949747, 2}, {0, 0, 0}, {0, 0, 0}}, std::nullopt, {57, 4.949747, 2}, "leave-one-out, no {d1,d2}");
  // The other methods never read pair runs.
  expect_table(select_models(runs, SelectionMethod::TrainingDomain), {{66, 2.828427, 2}, {64, 1.414214, 2}, {75, 0.707107, 2}},
               68.333333, {68.333333, 1.649916, 2}, "training-domain, no {d1,d2}");
}

TEST(ModelSelection, NonFiniteValuesMakeARowUnusable) {
  auto runs = fixture_runs();
  // Seed 1, draw 1, held out d0: its step-100 row (the one selected) loses a training domain's value.
  for (auto& r : runs)
    if (r.seed == 1 && r.draw == 1 && r.held_out == std::vector<std::string>{"d0"}) r.rows[1].out["d1"] = NAN;
  const auto rep = select_models(runs, SelectionMethod::TrainingDomain);
  // Draw 1 falls back to step 50 (val 0.72, test 0.66), draw 0's best is step 100 (0.70, 0.64): draw 1 @ 50.
  EXPECT_EQ(rep.selected.at({"fixture", "", 1, "d0"}).step, 50);
  EXPECT_NEAR(rep.selected.at({"fixture", "", 1, "d0"}).test, 0.66, 1e-12);
}

}  // namespace
}  // namespace oodt
