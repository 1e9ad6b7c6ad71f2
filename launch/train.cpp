// `oodtrain train`: resolve the config, set up every part (failing together on bad input),
// then run the trainer.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>

#include "core/comm.h"
#include "core/models/model.h"
#include "core/nccl.h"
#include "core/preempt.h"
#include "core/registry.h"
#include "launch/cli.h"
#include "launch/setup.h"

namespace oodt {
namespace {

// Testing aid, read once from the environment: OODT_INJECT_SIGNAL=<rank>:<step>:<signal> makes
// that rank raise the signal itself during step <step> (counted from 1; 0: at the end of
// set-up), before the ranks agree on stopping, so every rank stops after that step. Wired in
// here, around the trainer's stop source, so the training loop carries no test code.
struct InjectedSignal {
  long long step = -1;
  int signal = 0;
};
InjectedSignal injected_signal(int rank) {
  int inject_rank = -1;
  InjectedSignal in;
  const char* spec = std::getenv("OODT_INJECT_SIGNAL");
  if (spec == nullptr || std::sscanf(spec, "%d:%lld:%d", &inject_rank, &in.step, &in.signal) != 3 ||
      inject_rank != rank)
    return {};
  return in;
}

std::function<int(const State&)> stop_source_with_injection(int rank) {
  const auto [step, signal] = injected_signal(rank);
  if (step < 1) return nullptr;
  return [step = step, signal = signal](const State& s) {
    if (s.step + 1 == step) std::raise(signal);
    return stop_signal();
  };
}

// Testing aids for train.precision (core/precision.h), read once from the environment:
// OODT_SIMULATE_FP16=1 runs fp16's loss scaling without autocast, so that a CPU (whose autocast
// has no float16) can test it; OODT_INJECT_OVERFLOW=<rank>:<step> fills that rank's first gradient
// with Inf during step <step> (counted from 1), after averaging and before the overflow
// check, as a float16 overflow would.
void inject_precision_faults(PrecisionOptions& o, int rank) {
  const char* simulate = std::getenv("OODT_SIMULATE_FP16");
  if (simulate != nullptr && std::string(simulate) == "1") o.simulate_fp16 = true;
  const char* spec = std::getenv("OODT_INJECT_OVERFLOW");
  int inject_rank = -1;
  long long step = -1;
  if (spec == nullptr || std::sscanf(spec, "%d:%lld", &inject_rank, &step) != 2 || inject_rank != rank || step < 1)
    return;
  o.before_overflow_check = [step](State& s) {
    if (s.step + 1 != step) return;
    for (auto& p : s.model->parameters())
      if (p.grad().defined()) {
        at::NoGradGuard no_grad;
        p.mutable_grad().fill_(std::numeric_limits<double>::infinity());
        return;
      }
  };
}

}  // namespace

void resolve_train_config(ConfigTree& tree) {
  Registry registry;
  register_builtins(registry);
  tree = read_train_config(tree, registry).tree;
}

int cmd_train(const Args& args) {
  std::vector<std::string> configs, sets;
  StartOptions start;
  int64_t stop_at = -1;
  po::options_description desc("train options");
  desc.add_options()
      ("config,c", po::value(&configs)->composing(), "YAML config file; repeat to merge in order")
      ("set,s", po::value(&sets)->composing(), "override one key: --set optim.lr=0.05 (applied after the files)")
      ("dump-config", "print the resolved config (defaults filled in) and exit")
      ("resume", "continue from the newest checkpoint in run.dir, if there is one")
      ("overwrite", "start afresh in a run.dir that holds an earlier run (its checkpoints and metrics are removed)")
      ("init-from", po::value(&start.init_from), "start from this checkpoint's weights (fresh optimizer, step 0)")
      ("stop-at-step", po::value(&stop_at), "stop after this global step, writing a checkpoint (resume later)");
  po::variables_map vm;
  if (!parse_args("train", "train -c config.yaml [-c more.yaml] [--set key=value ...] [options]", args, desc, vm))
    return 0;
  start.resume = vm.count("resume") > 0;
  start.overwrite = vm.count("overwrite") > 0;
  const bool dump = vm.count("dump-config") > 0;

  Registry registry;
  register_builtins(registry);
  install_stop_signals();  // before MPI starts its threads, so they inherit nothing else
  std::unique_ptr<Communicator> comm = make_communicator();
  TrainConfig config;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<Watchdog> watchdog;
  int code = agree(*comm, [&] {
    ConfigTree tree;
    for (const auto& c : configs) tree.merge_file(c);
    for (const auto& kv : sets) tree.set(kv);
    config = read_train_config(std::move(tree), registry);
    if (dump) return;
    if (auto source = stop_source_with_injection(comm->rank())) config.trainer.stop_source = source;
    inject_precision_faults(config.trainer.precision, comm->rank());
    watchdog = std::make_unique<Watchdog>(*comm, config.trainer.dist.timeout_s);
    trainer = start_training(config, *comm, start);
  });
  if (code != 0) return code;
  if (dump) {
    if (comm->rank() == 0) std::cout << config.tree.dump();
    return 0;
  }
  // A stop signal that came during set-up (Slurm's SIGTERM at a time limit, a preemption):
  // nothing was trained yet, so every rank stops now with the requeue code.
  if (const auto in = injected_signal(comm->rank()); in.step == 0) std::raise(in.signal);
  if (const int sig = static_cast<int>(comm->all_reduce_scalar(stop_signal(), ReduceOp::Max)); sig != 0) {
    if (comm->rank() == 0)
      std::fprintf(stderr, "oodtrain: stopped by signal %d during set-up, before the first step (exit code %d)\n", sig,
                   kExitRequeue);
    return kExitRequeue;
  }

  try {
    // Nodes as MPI sees them (MPI_COMM_TYPE_SHARED): one per rank with local rank 0.
    const int nodes = static_cast<int>(comm->all_reduce_scalar(comm->local_rank() == 0 ? 1.0 : 0.0, ReduceOp::Sum));
    if (comm->rank() == 0) {
      const bool nccl = comm->backend() == "mpi" && trainer->state().device.is_cuda() && nccl_compiled();
      std::printf("oodtrain %s: %d rank(s), backend %s, device %s, %d thread(s) per rank, %d node(s), "
                  "dist.overlap %s, run dir %s\n",
                  oodt_version(), comm->world_size(), nccl ? "nccl" : comm->backend().c_str(),
                  trainer->state().device.str().c_str(), at::get_num_threads(), nodes,
                  trainer->state().gradient_sync.overlap ? "on" : "off",  // auto resolved
                  config.trainer.run_dir.c_str());
      std::fflush(stdout);
    }
    FitResult r = trainer->fit(stop_at);
    if (r.finished) {
      trainer->print_table(r.final_metrics);
    } else if (comm->rank() == 0) {
      if (r.stop_signal != 0)
        std::printf("stopped by signal %d after step %lld with a checkpoint; continue with --resume (exit code %d)\n",
                    r.stop_signal, static_cast<long long>(r.step), kExitRequeue);
      else
        std::printf("stopped at step %lld; continue with --resume\n", static_cast<long long>(r.step));
      std::fflush(stdout);
    }
    comm->barrier();
    if (r.stop_signal != 0) return kExitRequeue;
  } catch (const std::exception& e) {
    // One rank failing mid-run: report it and take the whole job down so no peer hangs.
    std::fprintf(stderr, "oodtrain: error [rank %d/%d, step %lld, last collective %s]: %s\n", comm->rank(),
                 comm->world_size(), static_cast<long long>(trainer->state().step), comm->last_collective().c_str(),
                 e.what());
    std::fflush(stderr);
    if (comm->world_size() > 1) comm->abort(1);
    return 1;
  }
  return 0;
}

}  // namespace oodt
