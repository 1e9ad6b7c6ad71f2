// `oodtrain train`: resolve the config, set up every part (failing together on bad input),
// then run the trainer.
#include <dlfcn.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/nccl.h"
#include "core/preempt.h"
#include "core/registry.h"
#include "core/trainer.h"
#include "data/domain_dataset.h"
#include "launch/cli.h"

namespace oodt {
namespace {

struct Setup {
  ConfigTree tree;
  TrainerOptions trainer;
  DataOptions data;
  std::vector<std::unique_ptr<Algorithm>> algorithms;
};

// Reads every section of the resolved tree: all keys are validated (and defaults filled in)
// before any data is opened.
void read_config(Setup& s, const Registry& registry) {
  ConfigReader root(s.tree.root, "", s.tree.origins);
  s.trainer = TrainerOptions::from_config(s.tree);
  root.allow("run");
  root.allow("optim");
  root.allow("schedule");
  root.allow("dist");
  root.allow("train");
  ConfigReader data = root.child("data");
  s.data = DataOptions::from_config(data);
  {
    // The model section is validated with a stand-in shape; the real model is built once the
    // data file tells the input shape and class count.
    ConfigReader model = root.child("model");
    build_model(model, ModelShape::for_validation(model.node()));
  }
  std::shared_ptr<const Origins> origins = s.tree.origins;
  s.algorithms = registry.build(root.raw("algorithms"), origins);
  if (!s.tree.root["algorithms"].IsDefined()) s.tree.root["algorithms"] = YAML::Node(YAML::NodeType::Sequence);
  root.finish();
}

void set_threads(int64_t threads, const Communicator& comm) {
  int n = static_cast<int>(threads);
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (n == 0 && omp && std::atoi(omp) > 0) n = std::atoi(omp);  // set by `sweep run` or the user
  if (n == 0) {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    n = std::max(1, static_cast<int>(hw) / std::max(1, comm.local_size()));
  }
  at::set_num_threads(n);
  // Debian's LibTorch calls the system BLAS; with OpenBLAS, cap its own thread pool too, or
  // ranks sharing a node oversubscribe the cores.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

at::Device pick_device(const std::string& want, const Communicator& comm) {
  const bool cuda = at::hasCUDA() && at::getNumGPUs() > 0;
  if (want == "cuda" && !cuda) throw ConfigError("train.device", "cuda requested but no CUDA device is available");
  if (want == "cpu" || !cuda) return at::Device(at::kCPU);
  // Each rank takes the GPU of its local rank.
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % static_cast<int>(at::getNumGPUs())));
}

// Runs `fn` on every rank; if it throws on any rank, every rank learns of it (one collective),
// the failing ranks print their message, and all return the same non-zero code. Used for
// set-up, where no rank may go on alone.
int agree(Communicator& comm, const std::function<void()>& fn) {
  int code = 0;
  std::string message;
  try {
    fn();
  } catch (const ConfigError& e) {
    code = 2, message = e.what();
  } catch (const std::exception& e) {
    code = 1, message = e.what();
  }
  const int worst = static_cast<int>(comm.all_reduce_scalar(code, ReduceOp::Max));
  if (worst == 0) return 0;
  const std::string who = comm.world_size() > 1 ? concat(" [rank ", comm.rank(), "/", comm.world_size(), "]") : "";
  if (code != 0) std::fprintf(stderr, "oodtrain: error%s: %s\n", who.c_str(), message.c_str());
  else std::fprintf(stderr, "oodtrain%s: stopping: another rank failed during set-up\n", who.c_str());
  std::fflush(stderr);
  return worst;
}

}  // namespace

void resolve_train_config(ConfigTree& tree) {
  Registry registry;
  register_builtins(registry);
  Setup s;
  s.tree = tree;
  read_config(s, registry);
  tree = s.tree;
}

int cmd_train(const Args& args) {
  std::vector<std::string> configs, sets;
  std::string init_from;
  int64_t stop_at = -1;
  po::options_description desc("train options");
  desc.add_options()
      ("config,c", po::value(&configs)->composing(), "YAML config file; repeat to merge in order")
      ("set,s", po::value(&sets)->composing(), "override one key: --set optim.lr=0.05 (applied after the files)")
      ("dump-config", "print the resolved config (defaults filled in) and exit")
      ("resume", "continue from the newest checkpoint in run.dir, if there is one")
      ("init-from", po::value(&init_from), "start from this checkpoint's weights (fresh optimizer, step 0)")
      ("stop-at-step", po::value(&stop_at), "stop after this global step, writing a checkpoint (resume later)");
  po::variables_map vm;
  if (!parse_args("train", "train -c config.yaml [-c more.yaml] [--set key=value ...] [options]", args, desc, vm))
    return 0;

  Registry registry;
  register_builtins(registry);
  install_stop_signals();  // before MPI starts its threads, so they inherit nothing else
  std::unique_ptr<Communicator> comm = make_communicator();
  Setup s;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<Watchdog> watchdog;
  const bool dump = vm.count("dump-config") > 0;

  int code = agree(*comm, [&] {
    for (const auto& c : configs) s.tree.merge_file(c);
    for (const auto& kv : sets) s.tree.set(kv);
    read_config(s, registry);
    if (dump) return;
    if (!init_from.empty() && vm.count("resume"))
      throw ConfigError("", "--init-from and --resume exclude each other");
    set_threads(s.trainer.threads, *comm);
    watchdog = std::make_unique<Watchdog>(*comm, s.trainer.timeout_s);
    const at::Device device = pick_device(s.trainer.device, *comm);
    auto data = make_data_source(s.data, static_cast<uint64_t>(s.trainer.seed), comm->rank(), comm->world_size());
    // Initial weights are a function of run.seed alone (rank 0's are broadcast regardless).
    at::manual_seed(mix_seed(static_cast<uint64_t>(s.trainer.seed), 0x1417));
    ConfigReader model_cfg(s.tree.root["model"], "model", s.tree.origins);
    auto model = build_model(model_cfg, ModelShape{data->input_shape(), data->num_classes()});
    auto engine = std::make_unique<Engine>(std::move(s.algorithms));
    trainer = std::make_unique<Trainer>(s.trainer, model, std::move(data), std::move(engine), *comm, device,
                                        s.tree.dump());
    if (!init_from.empty()) trainer->init_weights(init_from);
    trainer->prepare_run_dir();
    if (vm.count("resume")) {
      // Newest first; a checkpoint that cannot be read (truncated, damaged) is reported and
      // the previous one is used. Every rank reads the same files, so all choose alike.
      const auto found = list_checkpoints(s.trainer.run_dir);
      for (size_t i = 0; i < found.size(); ++i) {
        Checkpoint ck;
        try {
          ck = read_checkpoint(found[i]);
        } catch (const DataError& e) {
          if (i + 1 == found.size())
            throw DataError(concat(e.what(), "; no older checkpoint in ", s.trainer.run_dir, " to fall back to"));
          if (comm->rank() == 0)
            std::fprintf(stderr, "oodtrain: warning: %s is unreadable (%s); trying %s\n", found[i].c_str(), e.what(),
                         found[i + 1].c_str());
          continue;
        }
        trainer->resume(ck, found[i]);
        if (comm->rank() == 0) std::printf("resuming from %s (step %lld)\n", found[i].c_str(),
                                           static_cast<long long>(trainer->state().step));
        break;
      }
    }
    trainer->setup();
  });
  if (code != 0) return code;
  if (dump) {
    if (comm->rank() == 0) std::cout << s.tree.dump();
    return 0;
  }

  try {
    if (comm->rank() == 0) {
      std::printf("oodtrain %s: %d rank(s), backend %s, device %s, %d thread(s) per rank, run dir %s\n",
                  oodt_version(), comm->world_size(),
                  (comm->backend() == "mpi" && trainer->state().device.is_cuda() && nccl_compiled()
                       ? std::string("nccl")
                       : comm->backend())
                      .c_str(),
                  trainer->state().device.str().c_str(), at::get_num_threads(), s.trainer.run_dir.c_str());
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
