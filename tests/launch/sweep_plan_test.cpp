// The sweep planner (launch/sweep_plan.h): what runs a sweep file stands for, independent of
// running them, and the Slurm script template.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "core/error.h"
#include "launch/sweep_plan.h"
#include "test_util.h"

namespace oodt {
namespace {

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(SweepPlan, GridRandomSeedsAndHeldOutDomainsInOrder) {
  const std::string dir = test::temp_dir("sweep_plan");
  write(dir, "base.yaml", "train: {steps: 10}\n");
  const std::string sweep = write(dir, "s.yaml", R"(out: runs/s
base: [base.yaml]
grid: {optim.lr: [0.1, 0.01], model.dropout: [0, 0.5]}
random: {count: 2, seed: 3, params: {optim.weight_decay: {log_uniform: [1.0e-5, 1.0e-3]}}}
seeds: [0, 1]
test_domains: {each: [a, b], pairs: true}
)");
  std::vector<std::string> resolved;
  const SweepPlan plan = plan_sweep(sweep, [&](ConfigTree& t) { resolved.push_back(t.dump()); });
  // 3 held-out sets x 4 grid points x 2 draws x 2 seeds.
  ASSERT_EQ(plan.runs.size(), 48u);
  EXPECT_EQ(resolved.size(), 48u);
  EXPECT_EQ(plan.out, "runs/s");
  const SweepRun& first = plan.runs.front();
  EXPECT_EQ(first.grid, "optim.lr=0.1 model.dropout=0");
  EXPECT_EQ(first.test, std::vector<std::string>{"a"});
  EXPECT_EQ(first.seed, 0);
  EXPECT_EQ(plan.runs[1].seed, 1);  // seeds vary fastest
  EXPECT_EQ(plan.runs[4].grid, "optim.lr=0.1 model.dropout=0.5");  // then draws, then the last grid key
  EXPECT_EQ(plan.runs.back().test, (std::vector<std::string>{"a", "b"}));
  EXPECT_NE(first.label.find("seed=0"), std::string::npos) << first.label;
  // Each run its own folder, named by the resolved config's hash, the same on every planning.
  std::set<std::string> dirs;
  for (const auto& r : plan.runs) {
    dirs.insert(r.dir);
    EXPECT_EQ(r.dir.rfind("runs/s/", 0), 0u) << r.dir;
    EXPECT_NE(r.config.find("dir: " + r.dir), std::string::npos) << r.config;
  }
  EXPECT_EQ(dirs.size(), plan.runs.size());
  const SweepPlan again = plan_sweep(sweep, [](ConfigTree&) {});
  for (size_t i = 0; i < plan.runs.size(); ++i) EXPECT_EQ(again.runs[i].dir, plan.runs[i].dir);
  // The draws are within the distribution and differ between draws.
  std::set<std::string> decays;
  for (const auto& r : plan.runs) decays.insert(r.random);
  EXPECT_EQ(decays.size(), 8u);  // 4 grid points x 2 draws
}

// A `choice` with one value draws the same config every time: the draws must stay separate
// runs (their own folders, their own indices), as DomainBed's hparams_seed keeps them.
TEST(SweepPlan, EqualDrawsAreDistinctRunsWithTheirIndex) {
  const std::string dir = test::temp_dir("sweep_plan");
  write(dir, "base.yaml", "train: {steps: 10}\n");
  const std::string sweep = write(dir, "s.yaml", R"(out: runs/s
base: [base.yaml]
random: {count: 3, params: {optim.lr: {choice: [0.1]}}}
seeds: [0]
)");
  const SweepPlan plan = plan_sweep(sweep, [](ConfigTree&) {});
  ASSERT_EQ(plan.runs.size(), 3u);
  std::set<std::string> dirs;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    EXPECT_EQ(plan.runs[i].draw, static_cast<int64_t>(i));
    EXPECT_EQ(plan.runs[i].random, "optim.lr=0.1");
    dirs.insert(plan.runs[i].dir);
  }
  EXPECT_EQ(dirs.size(), 3u);
  // Without random draws, no draw index (and the folder names of earlier sweeps stay).
  const std::string grid = write(dir, "g.yaml", "out: runs/g\nbase: [base.yaml]\ngrid: {optim.lr: [0.1, 0.2]}\n");
  for (const auto& r : plan_sweep(grid, [](ConfigTree&) {}).runs) EXPECT_EQ(r.draw, -1);
}

TEST(SweepPlan, ARefusedRunRefusesTheSweepNamingTheRun) {
  const std::string dir = test::temp_dir("sweep_plan");
  write(dir, "base.yaml", "train: {steps: 10}\n");
  const std::string sweep = write(dir, "s.yaml", "base: [base.yaml]\ngrid: {optim.lr: [0.1, -1]}\n");
  try {
    plan_sweep(sweep, [](ConfigTree& t) {
      if (t.root["optim"]["lr"].as<double>() < 0) throw ConfigError("optim.lr", "must be > 0");
    });
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("run 'optim.lr=-1 seed=0'"), std::string::npos) << m;
    EXPECT_NE(m.find("optim.lr: must be > 0"), std::string::npos) << m;
  }
  EXPECT_THROW(plan_sweep(write(dir, "t.yaml", "base: [nope.yaml]\n"), [](ConfigTree&) {}), ConfigError);
}

TEST(Templates, EveryPlaceholderFilledAndEveryValueUsed) {
  EXPECT_EQ(render_template("a {{x}} b {{y}}{{x}}", {{"x", "1"}, {"y", ""}}, "t"), "a 1 b 1");
  EXPECT_THROW(render_template("{{x}} {{z}}", {{"x", "1"}}, "t"), Error);
  EXPECT_THROW(render_template("{{x}}", {{"x", "1"}, {"unused", "2"}}, "t"), Error);
  EXPECT_THROW(render_template("{{x", {{"x", "1"}}, "t"), Error);
  // The shipped Slurm template names what `sweep slurm` fills in.
  const std::string text = slurm_array_template();
  for (const char* key : {"{{time}}", "{{ntasks}}", "{{launcher}}", "{{requeue_code}}", "{{slurm_dir}}"})
    EXPECT_NE(text.find(key), std::string::npos) << key;
  EXPECT_EQ(text.rfind("#!/bin/bash", 0), 0u);
}

}  // namespace
}  // namespace oodt
