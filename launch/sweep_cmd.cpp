// `oodtrain sweep plan|run|status|slurm S.yaml`: ablation sweeps. The plan (launch/sweep_plan.h)
// is the list of runs, each a resolved training config in a directory named by its hash, so
// rerunning a sweep skips finished runs and resumes unfinished ones from their last checkpoint;
// here the runs are started, watched and reported, or submitted as a Slurm array from the
// template launch/templates/slurm_array.sh. See docs/sweeps.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/checkpoint.h"
#include "core/config.h"
#include "core/preempt.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/run_state.h"
#include "launch/sweep_plan.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

using Run = SweepRun;
using Sweep = SweepPlan;

// The sweep's runs, each config resolved as `train` resolves it.
Sweep load_sweep(const std::string& file) { return plan_sweep(file, resolve_train_config); }

// The run's state (launch/run_state.h), with the reason of a failure in `detail`.
std::string state_of(const Run& r, std::string* detail = nullptr) {
  const RunState st = run_state(r.dir);
  if (detail) *detail = st.detail;
  return st.state;
}

// The last line of the log that reports an error, else its last non-empty line.
std::string last_error(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last, error;
  while (std::getline(in, line)) {
    if (line.find_first_not_of("- \t") == std::string::npos) continue;  // blank or a rule
    last = line;
    if (line.find("error") != std::string::npos) error = line;
  }
  return error.empty() ? last : error;
}

struct RunOptions {
  int64_t ranks = 1, parallel = 1;
  bool oversubscribe = false;
};

// The run's folder with its resolved config and what collect needs to know about it.
void write_run_files(const Run& r) {
  fs::create_directories(r.dir);
  std::ofstream(fs::path(r.dir) / "config.yaml") << r.config;
  std::ofstream(fs::path(r.dir) / "label.txt") << r.label << "\n";
  {  // what `oodtrain collect` groups and selects by
    YAML::Emitter e;
    e << YAML::BeginMap << YAML::Key << "grid" << YAML::Value << r.grid << YAML::Key << "random" << YAML::Value
      << r.random;
    if (r.draw >= 0) e << YAML::Key << "draw" << YAML::Value << r.draw;
    e << YAML::Key << "seed" << YAML::Value << r.seed << YAML::Key << "test_domains" << YAML::Value << YAML::Flow
      << r.test << YAML::EndMap;
    std::ofstream(fs::path(r.dir) / "sweep.yaml") << e.c_str() << "\n";
  }
}

pid_t start(const Run& r, const RunOptions& o) {
  write_run_files(r);
  for (const char* m : {"failed", "stopped"}) fs::remove(fs::path(r.dir) / m);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> argv;
  if (o.ranks > 1) {
    argv = {"mpirun", "-np", std::to_string(o.ranks), "-x", "OMP_NUM_THREADS"};
    if (o.oversubscribe) argv.push_back("--oversubscribe");
  }
  for (const std::string& a : {self, std::string("train"), std::string("-c"), (fs::path(r.dir) / "config.yaml").string(),
                               std::string("--resume")})
    argv.push_back(a);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(concat("fork failed for ", r.dir));
  if (pid == 0) {
    // P runs of N ranks share the node: each rank gets cores / (P * N) threads (train.threads:
    // 0 reads OMP_NUM_THREADS), unless the user chose a count.
    if (!std::getenv("OMP_NUM_THREADS")) {
      const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
      const int per_rank = std::max<int>(1, static_cast<int>(hw / std::max<int64_t>(1, o.parallel * o.ranks)));
      ::setenv("OMP_NUM_THREADS", std::to_string(per_rank).c_str(), 1);
    }
    const int fd = ::open((fs::path(r.dir) / "log.txt").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::perror("oodtrain sweep: exec");
    std::_Exit(127);
  }
  std::ofstream(fs::path(r.dir) / "running") << pid << "\n";
  return pid;
}

void finish(const Run& r, int status) {
  const fs::path d(r.dir);
  fs::remove(d / "running");
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (code == 0) {
    std::ofstream(d / "done") << "ok\n";
  } else if (code == kExitRequeue || fs::exists(d / "stopped")) {
    // The run writes `stopped` itself; mpirun, signalled too, may report another code.
    if (!fs::exists(d / "stopped"))
      std::ofstream(d / "stopped") << "stopped by a signal with a checkpoint; rerun the sweep to resume\n";
  } else {
    std::ofstream(d / "failed") << "exit " << code << ": " << last_error(d / "log.txt") << "\n";
  }
}

struct SlurmOptions {
  std::string partition, time, launcher = "mpirun";
  int64_t max_parallel = 0, signal_seconds = 120;
  bool dry_run = false;
};

// Writes OUT/slurm/runs.txt (one run folder per array index) and OUT/slurm/array.sh, an sbatch
// array script: each task runs its run unless done, forwards SIGUSR1/SIGTERM (sent by Slurm
// `signal_seconds` before the time limit, or on preemption) to the ranks, and requeues itself
// when they stop with a checkpoint (exit 75).
std::string write_array_script(const Sweep& sw, const RunOptions& o, const SlurmOptions& so) {
  const fs::path dir = fs::absolute(fs::path(sw.out) / "slurm");
  fs::create_directories(dir);
  {
    std::ofstream runs(dir / "runs.txt");
    for (const auto& r : sw.runs) runs << fs::absolute(r.dir).string() << "\n";
  }
  // mpirun, told to end the job (Slurm's TERM, or a rank that exited non-zero, 75 included),
  // kills the ranks about odls_base_sigkill_timeout seconds later (default 1) and exits after
  // about twice that: 10 s leave a checkpoint time to finish, for 20 s of allocation per stop.
  const std::string launcher = so.launcher == "srun" ? concat("srun --mpi=pmix -n ", o.ranks, " ")
                               : o.ranks > 1 ? concat("mpirun --mca odls_base_sigkill_timeout 10 -np ", o.ranks, " ")
                                             : std::string();
  const std::string script_text = render_template(
      slurm_array_template(),
      {{"sweep_file", sw.file},
       {"name", fs::path(sw.file).stem().string()},
       {"last_index", concat(sw.runs.size() - 1)},
       {"max_parallel", so.max_parallel > 0 ? concat("%", so.max_parallel) : ""},
       {"ntasks", concat(o.ranks)},
       {"time", so.time},
       {"partition_line", so.partition.empty() ? "" : concat("#SBATCH --partition=", so.partition, "\n")},
       {"signal_seconds", concat(so.signal_seconds)},
       {"slurm_dir", dir.string()},
       {"launcher", launcher},
       {"oodtrain", fs::read_symlink("/proc/self/exe").string()},
       {"requeue_code", concat(kExitRequeue)}},
      "launch/templates/slurm_array.sh");
  const fs::path script = dir / "array.sh";
  std::ofstream(script) << script_text;
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  return script.string();
}

}  // namespace

int cmd_sweep(const Args& args) {
  std::string action, file;
  RunOptions o;
  po::options_description desc("sweep options");
  desc.add_options()
      ("action", po::value(&action)->required(), "plan | run | status | slurm")
      ("sweep", po::value(&file)->required(), "the sweep file (docs/sweeps.md)")
      ("ranks-per-run", po::value(&o.ranks)->default_value(1), "ranks of each run (mpirun -np N when N > 1)")
      ("parallel", po::value(&o.parallel)->default_value(1), "runs at the same time")
      ("oversubscribe", "pass --oversubscribe to mpirun (more ranks than cores)")
      ("ntasks-per-run", po::value<int64_t>(), "slurm: ranks of each run (as --ranks-per-run)")
      ("partition", po::value<std::string>(), "slurm: the partition")
      ("time", po::value<std::string>(), "slurm: time limit of each run, e.g. 02:00:00")
      ("max-parallel", po::value<int64_t>()->default_value(0), "slurm: array tasks at the same time (0: no limit)")
      ("signal-seconds", po::value<int64_t>()->default_value(120), "slurm: SIGUSR1 this long before the time limit")
      ("launcher", po::value<std::string>()->default_value("mpirun"), "slurm: mpirun | srun")
      ("dry-run", "slurm: write the array script, do not submit it");
  po::positional_options_description pos;
  pos.add("action", 1).add("sweep", 1);
  po::variables_map vm;
  if (!parse_args("sweep",
                  "sweep plan|run|status S.yaml [--ranks-per-run N] [--parallel P]\n"
                  "       sweep slurm S.yaml --ntasks-per-run N --time T [--partition P] [--max-parallel K] [--dry-run]",
                  args, desc, vm, &pos))
    return 0;
  o.oversubscribe = vm.count("oversubscribe") > 0;
  if (action != "plan" && action != "run" && action != "status" && action != "slurm")
    throw ConfigError("sweep", concat("'", action, "' is not one of: plan, run, status, slurm"));
  if (action == "slurm") {
    SlurmOptions so;
    if (!vm.count("time")) throw ConfigError("--time", "sweep slurm needs the time limit of one run, e.g. --time 02:00:00");
    so.time = vm["time"].as<std::string>();
    if (vm.count("partition")) so.partition = vm["partition"].as<std::string>();
    if (vm.count("ntasks-per-run")) o.ranks = vm["ntasks-per-run"].as<int64_t>();
    so.max_parallel = vm["max-parallel"].as<int64_t>();
    so.signal_seconds = vm["signal-seconds"].as<int64_t>();
    so.launcher = vm["launcher"].as<std::string>();
    so.dry_run = vm.count("dry-run") > 0;
    if (so.launcher != "mpirun" && so.launcher != "srun")
      throw ConfigError("--launcher", concat("'", so.launcher, "' is not one of: mpirun, srun"));
    if (o.ranks < 1) throw ConfigError("--ntasks-per-run", "must be >= 1");
    const Sweep sw = load_sweep(file);
    for (const auto& r : sw.runs) write_run_files(r);
    const std::string script = write_array_script(sw, o, so);
    std::printf("wrote %s (%zu array tasks)\n", script.c_str(), sw.runs.size());
    if (so.dry_run) return 0;
    std::fflush(stdout);
    const int rc = std::system(("sbatch --parsable '" + script + "'").c_str());
    if (rc != 0) throw Error(concat("sbatch failed (exit ", WEXITSTATUS(rc), ") for ", script));
    return 0;
  }
  if (o.ranks < 1) throw ConfigError("--ranks-per-run", "must be >= 1");
  if (o.parallel < 1) throw ConfigError("--parallel", "must be >= 1");
  const Sweep sw = load_sweep(file);

  if (action == "plan" || action == "status") {
    std::map<std::string, int> count;
    std::printf("%-4s %-12s %-12s %s\n", "#", "run", "state", "what");
    for (size_t i = 0; i < sw.runs.size(); ++i) {
      std::string detail;
      const std::string st = state_of(sw.runs[i], &detail);
      ++count[st];
      std::printf("%-4zu %-12s %-12s %s\n", i, fs::path(sw.runs[i].dir).filename().c_str(), st.c_str(),
                  sw.runs[i].label.c_str());
      if (!detail.empty() && action == "status") std::printf("     %s\n", detail.c_str());
    }
    std::printf("%zu runs in %s:", sw.runs.size(), sw.out.c_str());
    for (const auto& [st, n] : count) std::printf(" %d %s", n, st.c_str());
    std::printf("\n");
    return 0;
  }

  // run: every run not done, P at a time; a failure does not stop the others. Every run's
  // folder is written first, so `status` and `collect` see the whole sweep from the start.
  fs::create_directories(sw.out);
  for (const auto& r : sw.runs)
    if (!fs::exists(fs::path(r.dir) / "config.yaml")) write_run_files(r);
  std::map<pid_t, size_t> live;
  size_t next = 0, skipped = 0, elsewhere = 0;
  int failed = 0, stopped = 0, done = 0;
  auto reap = [&](bool block) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, block ? 0 : WNOHANG);
    if (pid <= 0 || !live.count(pid)) return;
    const Run& r = sw.runs[live.at(pid)];
    finish(r, status);
    const std::string st = state_of(r);
    failed += st == "failed", stopped += st == "stopped", done += st == "done";
    std::printf("[%s] %s %s\n", st.c_str(), fs::path(r.dir).filename().c_str(), r.label.c_str());
    std::fflush(stdout);
    live.erase(pid);
  };
  while (next < sw.runs.size() || !live.empty()) {
    if (next < sw.runs.size() && static_cast<int64_t>(live.size()) < o.parallel) {
      const Run& r = sw.runs[next];
      const std::string st = state_of(r);
      if (st == "done") {
        ++skipped;
      } else if (st == "running" || st == "queued") {
        // Another process runs it (an earlier `sweep run` that was stopped, Slurm): it writes
        // its own `done` when it finishes.
        ++skipped, ++elsewhere;
        std::printf("[%s elsewhere] %s %s\n", st.c_str(), fs::path(r.dir).filename().c_str(), r.label.c_str());
      } else {
        live[start(r, o)] = next;
        std::printf("[start] %s %s\n", fs::path(r.dir).filename().c_str(), r.label.c_str());
        std::fflush(stdout);
      }
      ++next;
      continue;
    }
    reap(true);
  }
  std::printf("%zu runs: %d done now, %zu already done, %zu running elsewhere, %d stopped, %d failed "
              "(oodtrain sweep status %s)\n",
              sw.runs.size(), done, skipped - elsewhere, elsewhere, stopped, failed, file.c_str());
  return failed > 0 ? 1 : 0;
}

}  // namespace oodt
