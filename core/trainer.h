#pragma once
// The trainer: a loop of phase calls (see core/phase.h). Features live in plugins and in the
// averaging strategy, never as branches here.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/agreement.h"
#include "core/averaging.h"
#include "core/checkpoint.h"
#include "core/config.h"
#include "core/data_source.h"
#include "core/device_feed.h"
#include "core/engine.h"
#include "core/evaluate.h"
#include "core/numerics.h"
#include "core/optim.h"
#include "core/precision.h"
#include "core/report.h"

namespace oodt {

class Communicator;
class Model;

// init.*: how --init-from (or init.from) starts a fine-tune from a checkpoint's weights.
struct InitOptions {
  std::string from;                // a checkpoint (or weight file in the zoo's names); --init-from wins
  std::vector<std::string> skip;   // name patterns not loaded: they keep their fresh initialisation
  std::string head = "auto";       // auto: reset head.* when the checkpoint has none or another class count
                                   // keep: must match; reset: always fresh
  std::string head_from;           // weight file with the classifier's `weight` [K, F] (and `bias` [K])
};

struct TrainerOptions {
  // run.*
  std::string run_dir = "runs/default";
  int64_t seed = 0;
  // train.*
  int64_t steps = 1000;            // optimizer steps in the whole run
  int64_t eval_every = 250;        // 0: only at the end
  int64_t checkpoint_every = 500;  // 0: only at the end
  int64_t keep_checkpoints = 2;    // newest kept in run_dir
  int64_t log_every = 50;          // a progress line every N steps (0: none by steps)
  double log_every_s = 30;         // and every N seconds (0: none by time)
  int64_t eval_batch_size = 512;
  std::string device = "auto";     // auto | cpu | cuda (resolved by the launcher)
  int64_t threads = 0;             // intra-op threads per rank; 0: cores per rank on the node
  bool channels_last = false;      // conv weights and image batches in channels_last memory format
  bool cudnn_benchmark = false;    // cuDNN times its convolution algorithms and keeps the fastest
  NonFiniteOptions nonfinite;      // a NaN/Inf loss, gradient or buffer: abort | skip, and skip's limits
  int64_t accumulate = 1;          // micro-batches per step (gradients summed, one all-reduce)
  PrecisionOptions precision;      // fp32 | bf16 | fp16, and fp16's loss scaling (core/precision.h)
  DistOptions dist;
  InitOptions init;
  OptimOptions optim;
  ScheduleOptions schedule;
  // log.*
  LogOptions log;
  // Not config keys.
  bool verbose = true;  // progress and evaluation lines on rank 0
  // This rank's stop request, read once per step before the ranks agree (0: none). Default:
  // the signal caught by core/preempt.h. The launcher may wrap it (tests inject signals).
  std::function<int(const State&)> stop_source;

  // Reads run.*, train.*, log.*, dist.*, optim.*, schedule.*, each through its owner's from_config.
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
  // Runs the plugins' model surgery, then creates the optimizer and plans gradient averaging.
  Trainer(TrainerOptions options, std::shared_ptr<Model> model, std::unique_ptr<DataSource> data,
          std::unique_ptr<Engine> engine, Communicator& comm, at::Device device, std::string resolved_config);

  // Restores everything from a checkpoint of this run (weights, optimizer, plugins, RNG, step).
  void resume(const std::string& checkpoint);
  // The same from a checkpoint already read from `path`.
  void resume(const Checkpoint& ck, const std::string& path);
  // Starts from a checkpoint's weights only (fresh optimizer, step 0), as options.init says:
  // names to skip, the head kept or reset, a head from a weight file. What was not loaded is
  // named on rank 0's output.
  void init_weights(const std::string& checkpoint);
  // The classifier from a weight file (init.head_from; also without --init-from).
  void load_head(const std::string& path);

  // Opens the run directory as `mode` says (core/run_dir.h: created, checked, locked; rank 0).
  // Part of set-up, before a checkpoint is read from it, so a directory that cannot be used
  // fails every rank together.
  void open_run_dir(RunDirMode mode);
  // Writes the resolved config and plugin order into the run directory (rank 0), opening it
  // as a fresh run's if open_run_dir was not called. The end of set-up.
  void prepare_run_dir();
  // Runs the plugins' fit_start hooks and the averaging set-up (rank 0's weights to every
  // rank). Part of set-up: a plugin that rejects the run here fails every rank together.
  // fit() calls it when it has not run.
  void setup();
  // Trains until `steps`, or until step `stop_at` (> 0) when given, writing a checkpoint there;
  // or until a stop request reaches any rank: every rank then stops after the same step and a
  // checkpoint is written there.
  FitResult fit(int64_t stop_at = -1);

  State& state() { return state_; }
  Model& model() { return *model_; }
  const Engine& engine() const { return *engine_; }
  const TrainerOptions& options() const { return options_; }
  // Prints a per-domain table of `metrics` (rank 0 only).
  void print_table(const std::vector<SplitMetrics>& metrics) const;

 private:
  void train_step();
  // The phases from before_forward to after_backward on s.batch; the loss's gradient is
  // scaled by `share`, this micro-batch's part of the step's samples.
  void forward_backward(bool last_micro_batch, double share);
  // The step agreement (one collective): whether the update is applied.
  bool agree_on_step(double loss);
  std::vector<SplitMetrics> run_evaluation();
  void save_checkpoint();
  // This step's batch on the device: the one copied ahead during the last step, or copied now.
  Batch device_batch(State& s);
  // Starts copying step `step`'s batch to the device (asynchronous feeds only).
  void copy_ahead(int64_t step);

  TrainerOptions options_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<DataSource> data_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Optimizer> optimizer_;
  std::shared_ptr<AveragingStrategy> averaging_;
  std::function<Batch(State&)> next_batch_;  // the data source's, or a plugin's (BatchDealer)
  bool dealt_by_plugin_ = false;             // next_batch_ is a plugin's: not a function of the step alone
  std::unique_ptr<DeviceFeed> feed_;         // host batches to the device (core/device_feed.h)
  std::optional<DeviceFeed::Transfer> ahead_;  // the next step's batch, on its way (CUDA)
  int64_t ahead_step_ = -1;
  Communicator& comm_;
  std::string config_;
  StepAgreement agreement_;
  NonFiniteCheck nonfinite_;
  int stop_flag_;
  Precision precision_;  // autocast and fp16's loss scale (core/precision.h)
  int agreed_stop_signal_ = 0;  // the highest stop signal any rank had at this step's agreement
  RunReporter reporter_;
  std::set<std::string> plugin_state_;  // model entries plugins added (may be absent from --init-from)
  State state_;
  int64_t last_checkpoint_step_ = -1;
  bool started_ = false;
};

const char* git_revision();
const char* oodt_version();

}  // namespace oodt
