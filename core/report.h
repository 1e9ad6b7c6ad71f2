#pragma once
// The run reporter: everything a run tells people and files, in one place and one format.
//   run_dir/config.yaml    the resolved config;   run_dir/plugins.txt  the plugin order;
//   run_dir/metrics.jsonl  one JSON object per evaluation (below);
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
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/evaluate.h"
#include "core/run_dir.h"

namespace oodt {

class Communicator;
struct State;

class RunReporter {
 public:
  RunReporter(Communicator& comm, std::string run_dir, bool verbose, int64_t log_every);
  // Whether this rank writes (rank 0).
  bool writes() const;
  const std::string& run_dir() const { return run_dir_; }

  // Opens (creates, checks, locks) the run directory on rank 0 (core/run_dir.h).
  void open(RunDirMode mode);
  // Writes the resolved config and the plugin order (rank 0), opening the directory as a fresh
  // run's if open() was not called. Set-up succeeded: the directory stays.
  void prepare(const std::string& config, const std::string& plugin_order);

  // A finished step: its mean loss on this rank, its samples, whether it was applied; then
  // the seconds the step took (evaluations and checkpoints excluded).
  void step_done(double loss, int64_t samples, bool updated);
  void step_time(double seconds) { window_seconds_ += seconds; }
  // The progress line (rank 0): at most every 0.25 s on a terminal, else every log_every steps.
  void progress(const State& s, bool force = false);
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
  Communicator& comm_;
  std::string run_dir_;
  RunDirectory dir_;  // rank 0: the lock on run_dir_
  bool verbose_;
  int64_t log_every_;
  // Since the last evaluation row, this rank's (the progress line shows rank 0's loss).
  double window_loss_ = 0, window_seconds_ = 0;
  int64_t window_updates_ = 0, window_steps_ = 0, window_samples_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
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
