#pragma once
// The trainer: a loop of phase calls (see core/phase.h). Features live in plugins and in the
// averaging strategy, never as branches here.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/averaging.h"
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/data_source.h"
#include "core/engine.h"
#include "core/numerics.h"
#include "core/evaluate.h"
#include "core/optim.h"
#include "core/seed.h"

namespace oodt {

class Communicator;
class Model;

struct TrainerOptions {
  std::string run_dir = "runs/default";
  int64_t seed = 0;
  int64_t steps = 1000;            // optimizer steps in the whole run
  int64_t eval_every = 250;        // 0: only at the end
  int64_t checkpoint_every = 500;  // 0: only at the end
  int64_t keep_checkpoints = 2;    // newest kept in run_dir
  int64_t log_every = 50;          // progress lines when stdout is not a terminal
  int64_t eval_batch_size = 512;
  std::string device = "auto";     // auto | cpu | cuda (resolved by the launcher)
  int64_t threads = 0;             // intra-op threads per rank; 0: cores per rank on the node
  std::string nonfinite = "abort";  // a NaN/Inf loss or gradient: abort | skip the step
  int64_t accumulate = 1;          // micro-batches per step (gradients summed, one all-reduce)
  double bucket_mb = 25.0;         // gradient all-reduce bucket size
  double in_place_mb = 0.25;       // gradients at least this large are reduced without a bucket
  double timeout_s = 60;           // watchdog: a collective waiting longer ends the job (0: off)
  // All-reduce buckets during backward. auto: with CUDA tensors or ranks on several nodes; not
  // for CPU tensors on one node, where shared-memory MPI moves the bytes with the cores that
  // compute, so there is nothing to overlap with (measured: docs/performance.md).
  enum class Overlap { Auto, On, Off };
  Overlap overlap = Overlap::Auto;
  std::string compress = "none";   // gradients in transit: none | fp16 | bf16
  bool verbose = true;             // progress and evaluation lines on rank 0 (not a config key)
  OptimOptions optim;
  ScheduleOptions schedule;

  // Reads run.*, train.*, dist.*, optim.*, schedule.*.
  static TrainerOptions from_config(ConfigTree& tree);
};

struct FitResult {
  int64_t step = 0;
  bool finished = false;               // reached `steps` (not stopped early)
  int stop_signal = 0;                 // stopped by this signal (on some rank), checkpoint written
  std::vector<SplitMetrics> final_metrics;
};

class Trainer {
 public:
  Trainer(TrainerOptions options, std::shared_ptr<Model> model, std::unique_ptr<DataSource> data,
          std::unique_ptr<Engine> engine, Communicator& comm, at::Device device, std::string resolved_config);

  // Restores everything from a checkpoint of this run (weights, optimizer, plugins, RNG, step).
  void resume(const std::string& checkpoint);
  // The same from a checkpoint already read from `path`.
  void resume(const Checkpoint& ck, const std::string& path);
  // Starts from a checkpoint's weights only (fresh optimizer, step 0).
  void init_weights(const std::string& checkpoint);

  // Creates the run directory and writes the resolved config and plugin order into it
  // (rank 0). Part of set-up, so a directory that cannot be made fails every rank together.
  void prepare_run_dir();
  // Runs the plugins' fit_start hooks and the averaging set-up (rank 0's weights to every
  // rank). Part of set-up: a plugin that rejects the run here fails every rank together.
  // fit() calls it when it has not run.
  void setup();
  // Trains until `steps`, or until step `stop_at` (> 0) when given, writing a checkpoint there;
  // or until a stop signal (core/preempt.h) reaches any rank: every rank then stops after the
  // same step and a checkpoint is written there.
  FitResult fit(int64_t stop_at = -1);

  State& state() { return state_; }
  Model& model() { return *model_; }
  const TrainerOptions& options() const { return options_; }
  // Prints a per-domain table of `metrics` (rank 0 only).
  void print_table(const std::vector<SplitMetrics>& metrics) const;

 private:
  void train_step();
  // The phases from before_forward to after_backward on s.batch; the loss's gradient is
  // scaled by `share`, this micro-batch's part of the step's samples.
  void forward_backward(bool last_micro_batch, double share);
  std::vector<SplitMetrics> run_evaluation();
  void save_checkpoint();
  void log_metrics(const std::vector<SplitMetrics>& metrics);
  void progress(bool force);
  bool is_root() const;

  TrainerOptions options_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<DataSource> data_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<AveragingStrategy> averaging_;
  std::function<Batch(State&)> next_batch_;  // the data source's, or a plugin's
  Communicator& comm_;
  std::string config_;
  NonFiniteGuard nonfinite_;
  int agreed_stop_signal_ = 0;  // the highest stop signal any rank had at this step's agreement
  std::string init_from_;
  std::set<std::string> plugin_state_;  // model entries plugins added (may be absent from --init-from)
  State state_;

  // Throughput and loss since the last report.
  double window_seconds_ = 0;
  int64_t window_samples_ = 0;
  double window_loss_ = 0;
  int64_t window_steps_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
  int64_t last_checkpoint_step_ = -1;
  bool started_ = false;
};

const char* git_revision();
const char* oodt_version();

}  // namespace oodt
