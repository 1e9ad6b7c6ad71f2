#pragma once
// A run's directory (run.dir): one run at a time, and never two runs' files mixed. Rank 0
// opens it at set-up, before anything is read from or written into it:
//   fresh      refuses a directory that already holds a run's files (checkpoints, metrics,
//              config): continue that run with --resume, or start afresh with --overwrite;
//   resume     continues the run the directory holds (or starts one in an empty directory);
//   overwrite  removes an earlier run's files (listed in run_files()) and starts afresh.
// The directory is created if missing and locked (flock on run_dir/.lock, which records the
// holder's host and pid) for as long as the run lives: a second run in the same directory is
// refused, naming the holder. A directory that cannot be written is refused at set-up, not at
// the first checkpoint. When set-up fails, a directory this run created is removed again.
#include <string>
#include <vector>

namespace oodt {

enum class RunDirMode { Fresh, Resume, Overwrite };

class RunDirectory {
 public:
  RunDirectory() = default;
  // ConfigError (key run.dir) when the directory cannot be used as `mode` asks.
  static RunDirectory open(const std::string& path, RunDirMode mode);
  RunDirectory(RunDirectory&& other) noexcept;
  RunDirectory& operator=(RunDirectory&& other) noexcept;
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;
  // Unlocks; removes the directory when this run created it and kept() was never called.
  ~RunDirectory();

  // The run's set-up succeeded: the directory stays when the run ends.
  void kept() { keep_ = true; }
  bool is_open() const { return fd_ >= 0; }

  // Whether a live run holds the folder's lock now (on this host or, with a shared filesystem
  // that honours flock, elsewhere).
  static bool in_use(const std::string& path);

  // Names of the files a run writes (what `overwrite` removes; what makes a directory hold a
  // run): patterns with at most one '*'.
  static const std::vector<std::string>& run_files();

 private:
  void release();
  std::string path_;
  int fd_ = -1;
  bool created_ = false, keep_ = false;
};

}  // namespace oodt
