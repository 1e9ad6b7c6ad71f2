#include "launch/run_state.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/checkpoint.h"
#include "core/run_dir.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

std::string first_line(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

// Whether squeue still lists the Slurm job (array task) `id`.
bool in_slurm_queue(const std::string& id) {
  std::string out;
  if (FILE* p = ::popen(("squeue -h -j '" + id + "' 2>/dev/null").c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  return !out.empty();
}

}  // namespace

RunState run_state(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (fs::exists(d / "done", ec)) return {"done", ""};
  if (RunDirectory::in_use(dir)) return {"running", ""};
  const std::string owner = first_line(d / "running");
  if (owner.rfind("slurm ", 0) == 0 && in_slurm_queue(owner.substr(6))) return {"queued", ""};
  if (fs::exists(d / "failed", ec)) return {"failed", first_line(d / "failed")};
  if (fs::exists(d / "stopped", ec)) return {"stopped", ""};
  if (!list_checkpoints(dir).empty()) return {"partial", ""};
  return {"not started", ""};
}

}  // namespace oodt
