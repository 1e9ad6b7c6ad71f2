#pragma once
// Planning a sweep: from a sweep file to the list of runs it stands for, each a resolved
// training config in a folder named by its hash. Pure: it reads the sweep and base config files
// and writes nothing; `oodtrain sweep` (sweep_cmd.cpp) runs, submits and reports the plan.
// The sweep file format is in docs/sweeps.md.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/config.h"

namespace oodt {

// The most runs a sweep may have (each is a resolved config, a folder and a training run).
constexpr size_t kMaxSweepRuns = 10000;

struct SweepRun {
  std::vector<std::string> sets;  // dotted.key=value overrides, in order
  std::string label;              // what distinguishes it, for people
  std::string grid, random;       // its grid point and random draw ("key=value ...")
  int64_t draw = -1;               // index of its random draw (-1: the sweep draws none)
  int64_t seed = 0;
  std::vector<std::string> test;  // held-out domains it sets (empty: the base configs')
  std::string config;             // resolved YAML (run.dir included)
  std::string dir;                // out/<first 12 hex digits of the resolved config's hash>
};

struct SweepPlan {
  std::string file, out;
  std::vector<SweepRun> runs;
};

// The runs of the sweep in `file`: for every held-out domain set, grid point and random draw
// (the first grid key varying slowest), and seed. `resolve` validates a run's config tree and
// fills in every default (the training command's resolver); a run it refuses makes the whole
// sweep a ConfigError naming the run.
SweepPlan plan_sweep(const std::string& file, const std::function<void(ConfigTree&)>& resolve);

// `text` with every {{name}} replaced by values[name]. An Error names the template when a
// placeholder has no value or a value no placeholder.
std::string render_template(const std::string& text, const std::map<std::string, std::string>& values,
                            const std::string& name);

// The text of launch/templates/slurm_array.sh, embedded at build time.
const char* slurm_array_template();

}  // namespace oodt
