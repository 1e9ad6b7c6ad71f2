// The set-up of a training run (launch/setup.h).
#include "launch/setup.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "core/seed.h"

namespace oodt {
namespace {

namespace fs = std::filesystem;

at::Device pick_device(const std::string& want, const Communicator& comm) {
  const bool cuda = at::hasCUDA() && at::getNumGPUs() > 0;
  if (want == "cuda" && !cuda) throw ConfigError("train.device", "cuda requested but no CUDA device is available");
  if (want == "cpu" || !cuda) return at::Device(at::kCPU);
  // Each rank takes the GPU of its local rank.
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % static_cast<int>(at::getNumGPUs())));
}

// Newest first; a checkpoint that cannot be read (truncated, damaged) is reported and the
// previous one is used. Rank 0 chooses and tells the others, so all ranks resume from the same
// file even where they see the run directory differently (a shared filesystem that lags).
// True when a checkpoint was found and restored (false: the run starts fresh).
bool resume_newest(Trainer& trainer, const std::string& run_dir, Communicator& comm) {
  Checkpoint ck;
  std::string chosen, error;  // rank 0's
  if (comm.rank() == 0) {
    CheckpointChoice choice = newest_readable_checkpoint(run_dir);
    for (const auto& why : choice.skipped)
      std::fprintf(stderr, "oodtrain: warning: %s; trying the checkpoint before it\n", why.c_str());
    if (choice.path.empty() && !choice.skipped.empty())
      error = concat(choice.skipped.back(), "; no older checkpoint in ", run_dir, " to fall back to");
    chosen = fs::path(choice.path).filename().string();
    ck = std::move(choice.checkpoint);
  }
  // The chosen file's name from rank 0 to every rank (length 0: start fresh; -1: none readable).
  at::Tensor length = at::full({1}, error.empty() ? static_cast<int64_t>(chosen.size()) : int64_t{-1}, at::kLong);
  comm.broadcast(length, 0);
  const int64_t n = length.item<int64_t>();
  if (n < 0) throw DataError(comm.rank() == 0 ? error : concat("no readable checkpoint in ", run_dir, " (rank 0 says which)"));
  if (n == 0) return false;
  at::Tensor bytes = at::zeros({n}, at::kByte);
  if (comm.rank() == 0) std::memcpy(bytes.data_ptr(), chosen.data(), chosen.size());
  comm.broadcast(bytes, 0);
  const std::string path =
      (fs::path(run_dir) / std::string(reinterpret_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(n))).string();
  // A rank that cannot read it fails set-up, and with it every rank.
  if (comm.rank() != 0) ck = read_checkpoint(path);
  trainer.resume(ck, path);
  if (comm.rank() == 0)
    std::printf("resuming from %s (step %lld)\n", path.c_str(), static_cast<long long>(trainer.state().step));
  return true;
}

}  // namespace

TrainConfig read_train_config(ConfigTree tree, const Registry& registry) {
  TrainConfig c;
  c.tree = std::move(tree);
  ConfigReader root(c.tree.root, "", c.tree.origins);
  c.trainer = TrainerOptions::from_config(c.tree);
  for (const char* section : {"run", "init", "optim", "schedule", "dist", "train", "log"}) root.allow(section);
  ConfigReader data = root.child("data");
  c.data = DataOptions::from_config(data);
  {
    // The model section is validated with a stand-in shape; the real model is built once the
    // data file tells the input shape and class count.
    ConfigReader model = root.child("model");
    build_model(model, ModelShape::for_validation(model.node()));
  }
  c.algorithms = registry.build(root.raw("algorithms"), c.tree.origins);
  if (!c.tree.root["algorithms"].IsDefined()) c.tree.root["algorithms"] = YAML::Node(YAML::NodeType::Sequence);
  root.finish();
  return c;
}

std::unique_ptr<Trainer> start_training(TrainConfig& c, Communicator& comm, const StartOptions& start) {
  if (!start.init_from.empty() && start.resume) throw ConfigError("", "--init-from and --resume exclude each other");
  if (start.overwrite && start.resume) throw ConfigError("", "--overwrite and --resume exclude each other");
  set_threads(c.trainer.threads, comm);
  const at::Device device = pick_device(c.trainer.device, comm);
  DataOptions data_options = c.data;
  data_options.pin_memory = device.is_cuda();  // asynchronous copies to the GPU (core/device_feed.h)
  auto data = make_data_source(data_options, static_cast<uint64_t>(c.trainer.seed), comm.rank(), comm.world_size());
  // Initial weights are a function of run.seed alone (rank 0's are broadcast regardless).
  at::manual_seed(mix_seed(static_cast<uint64_t>(c.trainer.seed), 0x1417));
  ConfigReader model_cfg(c.tree.root["model"], "model", c.tree.origins);
  auto model = build_model(model_cfg, ModelShape{data->input_shape(), data->num_classes()});
  auto engine = std::make_unique<Engine>(std::move(c.algorithms));
  auto trainer = std::make_unique<Trainer>(c.trainer, model, std::move(data), std::move(engine), comm, device,
                                           c.tree.dump());
  trainer->open_run_dir(start.resume      ? RunDirMode::Resume
                        : start.overwrite ? RunDirMode::Overwrite
                                          : RunDirMode::Fresh);
  // A resumed run continues from its own checkpoint; one that finds none (the first start of a
  // sweep's or Slurm array's run, which always pass --resume) starts as a fresh run would:
  // from --init-from, else init.from.
  const bool resumed = start.resume && resume_newest(*trainer, c.trainer.run_dir, comm);
  const std::string init_from = !start.init_from.empty() ? start.init_from : c.trainer.init.from;
  if (!resumed && !init_from.empty()) trainer->init_weights(init_from);
  else if (!resumed && !c.trainer.init.head_from.empty()) trainer->load_head(c.trainer.init.head_from);
  trainer->setup();
  trainer->prepare_run_dir();
  return trainer;
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

}  // namespace oodt
