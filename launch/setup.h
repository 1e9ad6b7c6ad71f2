#pragma once
// What `oodtrain train` does before the first step, as functions: the CLI calls them, and so do
// the tests that run whole configurations in one process (tests/dist/combinations_test.cpp).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/algorithm.h"
#include "core/config.h"
#include "core/trainer.h"
#include "data/domain_dataset.h"

namespace oodt {

class Communicator;
class Registry;

// A resolved and validated training config.
struct TrainConfig {
  ConfigTree tree;  // every default filled in: what config.yaml and checkpoints record
  TrainerOptions trainer;
  DataOptions data;
  std::vector<std::unique_ptr<Algorithm>> algorithms;
};

// Reads every section of `tree` (run, train, dist, optim, schedule, data, model, algorithms),
// validating every key and writing defaults back, before any data is opened. ConfigError on a
// bad key or value.
TrainConfig read_train_config(ConfigTree tree, const Registry& registry);

struct StartOptions {
  std::string init_from;   // start from this checkpoint's weights (fresh optimizer, step 0)
  bool resume = false;     // continue from the newest readable checkpoint in run.dir, if any
  bool overwrite = false;  // start afresh in a run.dir that holds an earlier run
};

// Builds this rank's data source, model, plugins and trainer from `config` (its algorithms are
// moved into the trainer), opens and locks the run directory (core/run_dir.h), applies
// --init-from or --resume, runs the set-up (plugins' fit_start, the averaging strategy's
// set-up) and only then writes config.yaml and plugins.txt: a refused set-up leaves the
// directory as it was. Throws on bad input; the caller makes the ranks agree (agree()).
std::unique_ptr<Trainer> start_training(TrainConfig& config, Communicator& comm, const StartOptions& start);

// Runs `fn` on every rank; if it throws on any rank, every rank learns of it (one collective),
// the failing ranks print their message (`oodtrain: error [rank r/N]: ...`), and all return the
// same non-zero code (2 for a ConfigError, 1 otherwise). Used for set-up, where no rank may go
// on alone.
int agree(Communicator& comm, const std::function<void()>& fn);

// Intra-op threads for this rank: `threads`, or OMP_NUM_THREADS, or the node's cores shared by
// its ranks (OpenBLAS's pool too).
void set_threads(int64_t threads, const Communicator& comm);

}  // namespace oodt
