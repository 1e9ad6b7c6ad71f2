#pragma once
// What became of a run folder of a sweep, from the files in it and the run's lock:
//   done         the run finished (it wrote `done` itself);
//   running      a live process holds the folder's lock (core/run_dir.h);
//   queued       a Slurm array task owns it and squeue still lists that task;
//   failed       it ended with an error (`failed` holds the exit code and the last error line);
//   stopped      it stopped at a signal with a checkpoint (exit 75) and can be resumed;
//   partial      it has checkpoints but no process runs it (killed, or its runner was);
//   not started  nothing ran in it yet.
#include <string>

namespace oodt {

struct RunState {
  std::string state;
  std::string detail;  // for `failed`: why
};

RunState run_state(const std::string& dir);

}  // namespace oodt
