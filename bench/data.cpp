// Data loading against the trainer's appetite, side by side in one process:
//   build/bench/bench_data [--data datasets/rotated_fmnist.h5] [--steps 200] [--batch 64]
//
// 1. Reader: samples/s of DomainDataset::train_batch alone (HDF5 hyperslab reads, decode,
//    float conversion), one thread.
// 2. Consumer: samples/s of the trainer's steps (CNN [16, 32, 64], 1 thread) on in-memory
//    batches, i.e. with no data loading at all.
// 3. The trainer on the HDF5 reader with prefetching against the same in-memory run: a
//    step-time ratio of ~1 means steps never wait on HDF5. Also without prefetching.
#include <chrono>
#include <cstdio>
#include <string>

#include <yaml-cpp/yaml.h>

#include "bench/bench_util.h"
#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/trainer.h"
#include "data/domain_dataset.h"
#include "data/prefetch.h"

namespace oodt {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double trainer_seconds_per_step(std::unique_ptr<DataSource> data, int steps, Communicator& comm) {
  TrainerOptions o;
  o.run_dir = "/tmp/oodt_bench_data";
  o.steps = steps + 1000;  // never reaches the end (whose evaluation is not part of a step)
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.verbose = false;
  at::manual_seed(0);
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [16, 32, 64]}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{data->input_shape(), data->num_classes()});
  Trainer t(o, model, std::move(data), std::make_unique<Engine>(std::vector<std::unique_ptr<Algorithm>>{}), comm,
            at::Device(at::kCPU), "{}");
  t.open_run_dir(RunDirMode::Overwrite);  // the same folder every time
  t.prepare_run_dir();
  t.setup();
  t.fit(5);
  const auto t0 = Clock::now();
  t.fit(steps + 5);
  return since(t0) / steps;
}

}  // namespace
}  // namespace oodt

int main(int argc, char** argv) {
  using namespace oodt;
  DataOptions o;
  o.path = "datasets/rotated_fmnist.h5";
  o.test_domains = {"rot_0"};
  int steps = 200, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--data") o.path = argv[i + 1];
    else if (k == "--steps") steps = std::atoi(argv[i + 1]);
    else if (k == "--batch") o.batch_size = std::atoll(argv[i + 1]);
    else if (k == "--rounds") rounds = std::atoi(argv[i + 1]);
  }
  at::set_num_threads(1);
  auto comm = make_local_communicator();
  std::vector<double> reader, memory, prefetched, plain;
  for (int r = 0; r < rounds; ++r) {
    {
      DomainDataset ds(o, 0, 0, 1);
      ds.train_batch(0);
      const auto t0 = Clock::now();
      for (int s = 1; s <= steps; ++s) ds.train_batch(s);
      reader.push_back(since(t0) / steps);
    }
    memory.push_back(trainer_seconds_per_step(std::make_unique<bench::MemoryData>(o.batch_size), steps, *comm));
    o.prefetch = 2;
    prefetched.push_back(trainer_seconds_per_step(make_data_source(o, 0, 0, 1), steps, *comm));
    o.prefetch = 0;
    plain.push_back(trainer_seconds_per_step(make_data_source(o, 0, 0, 1), steps, *comm));
  }
  const double b = static_cast<double>(o.batch_size);
  const double rd = bench::median(reader), mem = bench::median(memory), pf = bench::median(prefetched),
               pl = bench::median(plain);
  std::printf("reader alone: %.0f samples/s (%.3f ms a batch of %lld)\n", b / rd, rd * 1e3,
              static_cast<long long>(o.batch_size));
  std::printf("trainer on in-memory batches: %.0f samples/s (%.2f ms a step): the reader is %.1fx faster than the "
              "trainer consumes\n",
              b / mem, mem * 1e3, mem / rd);
  std::printf("trainer on HDF5 with prefetch: %.2f ms a step, %.3fx the in-memory step\n", pf * 1e3, pf / mem);
  std::printf("trainer on HDF5 without prefetch: %.2f ms a step, %.3fx the in-memory step\n", pl * 1e3, pl / mem);
  return 0;
}
