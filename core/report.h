#pragma once
// The run reporter: everything a run tells people and files, in one place and one format.
//   run_dir/config.yaml    the resolved config;   run_dir/plugins.txt  the plugin order;
//   run_dir/metrics.jsonl  one JSON object per evaluation (below);
//   run_dir/metrics.csv    the same rows flat, one CSV record each (log.csv; columns below);
//   run_dir/tb/            TensorBoard events (log.tensorboard; tags below, core/tb_writer.h);
//   stdout                 progress lines, one line per evaluation, the final table;
//   plugin files           through write_json / append_json_line (a plugin's own summaries).
// It is rank-aware: every rank takes part in the collectives, only rank 0 writes. Every JSON
// file goes through nlohmann::json (strings escaped, non-finite numbers as null).
//
// A metrics.jsonl row:
//   {"step", "epoch", "time" (UTC, ISO 8601), "unix_time", "lr", "train_loss" (mean over the
//    updates since the last row, all ranks), "samples_per_s" (the job's), "step_s" (mean seconds
//    per step), "peak_rss_mb" (largest resident set of any rank so far), "world_size",
//    "skipped_steps",
//    "summary": {"val_acc", "heldout_acc", "heldout_conf", "heldout_ece"} (core/evaluate.h),
//    "domains": {name: {"held_out", "in": {"acc", "loss", "ece", "conf", "n"}, "out": {...}}},
//    "plugins": {name: value}}   (the scalars plugins put in State::metrics; absent if none)
//
// metrics.csv (RFC 4180, core/csv.h; NaN and Inf as empty fields): the header, then one record
// per evaluation with the columns
//   step, epoch, lr, train_loss, samples_per_s, step_s, val_acc, heldout_acc, heldout_conf,
//   heldout_ece, then <domain>/<split>/{acc,loss,ece,conf} for each domain in the data file's
//   order and each split it has (in, out).
// A resumed run appends to the file under the header already there.
//
// TensorBoard tags (rank 0 writes; step = the global step):
//   every step:        train/loss (rank 0's mean loss of the step: the other ranks' losses would
//                      need a collective per step), train/lr;
//   every evaluation:  train/window_loss (= train_loss above: all ranks, since the previous
//                      evaluation), train/samples_per_s, train/step_s, eval/val_acc,
//                      eval/heldout_acc, eval/heldout_conf, eval/heldout_ece,
//                      eval/<domain>/<split>/{acc,loss,ece,conf}, plugins/<name>.
//   A value that was not measured (no held-out domain, no update in the window) is left out.
//
// The progress line (rank 0, unless quiet), one line when stdout is a file or under mpirun:
//   step 150/1000  epoch 2  loss(avg 50 steps) 1.2345  lr 0.05  812 samples/s  elapsed 0:01:02  eta 0:05:51
// loss and samples/s are rank 0's over the steps since the previous line (samples times the
// world size: the job's rate); elapsed counts from the end of set-up, eta extrapolates it.
// A line is due every train.log_every steps and whenever train.log_every_s seconds passed
// since the previous one (either may be 0: off). On a terminal the line is redrawn in place
// (at most 4 times a second), its averages restarting whenever a line would be due.
// Only rank 0 looks at a clock for this: no rank waits on another.
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/evaluate.h"
#include "core/run_dir.h"
#include "core/tb_writer.h"

namespace oodt {

class Communicator;
struct State;

// log.*: files written besides metrics.jsonl.
struct LogOptions {
  bool tensorboard = false;  // run_dir/tb/events.out.tfevents.*
  bool csv = true;           // run_dir/metrics.csv
};

struct ReportOptions {
  bool verbose = true;      // progress and evaluation lines on rank 0
  int64_t log_every = 50;   // a progress line every N steps (0: none by steps)
  double log_every_s = 30;  // and every N seconds (0: none by time)
  LogOptions log;
};

class RunReporter {
 public:
  RunReporter(Communicator& comm, std::string run_dir, ReportOptions options);
  // Whether this rank writes (rank 0).
  bool writes() const;
  const std::string& run_dir() const { return run_dir_; }

  // Opens (creates, checks, locks) the run directory on rank 0 (core/run_dir.h).
  void open(RunDirMode mode);
  // Writes the resolved config and the plugin order (rank 0), opening the directory as a fresh
  // run's if open() was not called, and starts a TensorBoard events file (log.tensorboard).
  // Set-up succeeded: the directory stays; elapsed time counts from here.
  void prepare(const std::string& config, const std::string& plugin_order);

  // A finished step: its mean loss on this rank, its samples, whether it was applied; then
  // the seconds the step took (evaluations and checkpoints excluded).
  void step_done(double loss, int64_t samples, bool updated);
  void step_time(double seconds);
  // After each step, once step_done and step_time have been told: the step's TensorBoard
  // scalars, and the progress line when one is due (rank 0; see above). `force`: print now.
  void progress(const State& s, bool force = false);
  // Writes out what the TensorBoard file has pending (rank 0). Evaluations flush too.
  void flush();
  // Collective: the metrics.jsonl row of an evaluation and its line on stdout. `skipped` is
  // this rank's count of skipped steps since the last row.
  void evaluation(const State& s, const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains,
                  int64_t skipped);
  // This rank's training-loss and throughput window since the last row, for checkpoints (a
  // resumed run's next row then matches the uninterrupted run's), and back.
  at::Tensor window() const;
  void restore_window(const at::Tensor& w);
  // The per-domain table (rank 0).
  void table(const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains) const;

  // A text file in the run directory, written whole (rank 0; a no-op elsewhere).
  void write_text(const std::string& file, const std::string& text) const;
  // Plugin files in the run directory (rank 0; no-ops elsewhere).
  void write_json(const std::string& file, const nlohmann::json& value) const;
  void append_json_line(const std::string& file, const nlohmann::json& value) const;

 private:
  // One metrics.csv record (rank 0): `columns` in the order of the file's header.
  void append_csv(const std::vector<std::pair<std::string, std::string>>& columns);

  Communicator& comm_;
  std::string run_dir_;
  RunDirectory dir_;  // rank 0: the lock on run_dir_
  ReportOptions options_;
  // Since the last evaluation row, this rank's.
  double window_loss_ = 0, window_seconds_ = 0;
  int64_t window_updates_ = 0, window_steps_ = 0, window_samples_ = 0;
  // Since the last progress line (or the last time one was due), this rank's.
  double line_loss_ = 0, line_seconds_ = 0;
  int64_t line_updates_ = 0, line_samples_ = 0;
  double last_loss_ = 0;  // the latest step's
  std::chrono::steady_clock::time_point start_, last_line_, last_redraw_;
  int64_t start_step_ = -1;  // the step before the first this process trained
  TensorBoardWriter tb_;     // rank 0, under log.tensorboard
  std::vector<std::string> csv_header_;  // metrics.csv's columns, once known
  bool csv_warned_ = false;
};

// The JSON of an evaluation: {"summary": ..., "domains": ...} as in a metrics.jsonl row.
nlohmann::json evaluation_json(const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains);

// The rows of a metrics.jsonl file; DataError naming the file and line when one is not a JSON
// object (a cut line from a full disk, say) or the file cannot be read.
std::vector<nlohmann::json> read_metrics(const std::string& path);

// A number for JSON: non-finite values become null (JSON has no NaN or Inf).
nlohmann::json json_number(double v);

// Resident set size high-water mark of this process, in MiB.
double peak_rss_mb();

}  // namespace oodt
