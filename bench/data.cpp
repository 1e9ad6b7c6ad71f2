// Data loading against the trainer's appetite, side by side in one process:
//   build/bench/bench_data [--data datasets/rotated_fmnist.h5] [--steps 200] [--batch 64]
//   build/bench/bench_data --reader-only --data F.h5 --test-domain D --augment '{preset: domainbed}'
//                          --threads N [--steps 25] [--batch 32]
//
// --reader-only prints one number, the reader's samples/s over steps 6..N on N intra-op threads
// (decoding and augmentation included; bench/data_pipeline.py compares it with torchvision's
// DataLoader). Otherwise:
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
  int steps = 200, rounds = 3, threads = 1;
  bool reader_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--reader-only") {
      reader_only = true;
      continue;
    }
    if (i + 1 >= argc) break;
    const char* v = argv[++i];
    if (k == "--data") o.path = v;
    else if (k == "--test-domain") o.test_domains = {v};
    else if (k == "--threads") threads = std::atoi(v);
    else if (k == "--augment") {
      ConfigReader aug(YAML::Load(v), "data.augment", nullptr);
      o.augment = AugmentOptions::from_config(aug);
    } else if (k == "--steps") steps = std::atoi(v);
    else if (k == "--batch") o.batch_size = std::atoll(v);
    else if (k == "--rounds") rounds = std::atoi(v);
  }
  at::set_num_threads(threads);
  if (reader_only) {
    DomainDataset ds(o, 0, 0, 1);
    for (int s = 0; s < 5; ++s) ds.train_batch(s);
    const auto t0 = Clock::now();
    for (int s = 5; s < steps; ++s) ds.train_batch(s);
    std::printf("%.1f\n", static_cast<double>(o.batch_size * (steps - 5)) / since(t0));
    return 0;
  }
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
