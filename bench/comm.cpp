// Gradient communication, measured side by side under mpirun:
//   mpirun -np 2 --bind-to core build/bench/bench_comm [--model resnet18] [--reps 15] [--steps 6] [--batch 32]
//                                                      [--in-place-mb 0.25] [--bucket-mb 25]
//                                                      [--compress none|fp16|bf16] [--sizes]
//
// Every result is also printed as one `json {...}` line for scripts (bench/multinode.py).
//
// 0. --sizes: bare MPI_Allreduce of float buffers from 4 KiB to 64 MiB (median of `reps`),
//    the points a latency-bandwidth (alpha-beta) model is fitted to; nothing else is run.
// 1. Bandwidth: the gradient all-reduce (GradientAllReduce::average, as the trainer sets it
//    up: gradients already divided by the world size by backward, large ones reduced where
//    they lie, small ones copied into flat buckets reduced in place, their gradients left as
//    views of the buckets) of a model's gradients against one bare
//    MPI_Allreduce of the same bytes in a single buffer. Reported as bare time / bucketed
//    time (a bandwidth ratio), median of `reps` alternating repetitions.
// 2. Overlap: real training steps (trainer, in-memory data) with the buckets reduced during
//    backward on the communication thread, against reducing them after backward. Reports
//    the step-time ratio, the communication thread's time per step, the main thread's wait
//    for it, and the share of communication hidden behind backward (1 - wait / comm).
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <yaml-cpp/yaml.h>

#include "bench/bench_util.h"
#include "core/averaging.h"
#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/trainer.h"

namespace oodt {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string model_yaml(const std::string& name) {
  if (name == "cnn") return "{name: cnn, channels: [16, 32, 64]}";
  if (name == "mlp") return "{name: mlp, hidden: [1024, 1024]}";
  if (name == "resnet18") return "{name: resnet18, stem: cifar}";  // the 28-pixel inputs here
  return "{name: " + name + "}";
}

const char* compress_name(GradCompression c) {
  return c == GradCompression::Fp16 ? "fp16" : c == GradCompression::Bf16 ? "bf16" : "none";
}

void sizes(int reps, Communicator& comm) {
  for (int64_t bytes = 4 << 10; bytes <= (int64_t{64} << 20); bytes *= 4) {
    at::Tensor buf = at::randn({bytes / 4});
    std::vector<double> t;
    for (int r = 0; r < reps + 1; ++r) {
      comm.barrier();
      const auto t0 = Clock::now();
      MPI_Allreduce(MPI_IN_PLACE, buf.data_ptr<float>(), static_cast<int>(bytes / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      if (r) t.push_back(since(t0));
    }
    // The slowest rank's median: the collective ends for everyone when it ends for the last.
    const double m = comm.all_reduce_scalar(bench::median(t), ReduceOp::Max);
    if (comm.rank() == 0) {
      std::printf("allreduce %9lld bytes %9.3f ms %7.3f GB/s\n", static_cast<long long>(bytes), m * 1e3, bytes / m / 1e9);
      std::printf("json {\"kind\": \"allreduce\", \"ranks\": %d, \"bytes\": %lld, \"seconds\": %.9g}\n",
                  comm.world_size(), static_cast<long long>(bytes), m);
    }
  }
}

void bandwidth(const std::string& name, int reps, double in_place_mb, double bucket_mb, GradCompression compress,
               Communicator& comm) {
  at::manual_seed(0);
  ConfigReader cfg(YAML::Load(model_yaml(name)), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 28, 28}, 10});
  int64_t numel = 0;
  std::vector<at::Tensor> grads;  // what backward would leave in each parameter's .grad
  for (auto& p : model->parameters()) {
    grads.push_back(at::randn_like(p));
    numel += p.numel();
  }
  const auto params = model->parameters();
  auto fresh_gradients = [&] {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i];
  };
  GradientSyncOptions o;
  o.overlap = false;
  o.limits.in_place_bytes = static_cast<int64_t>(in_place_mb * 1024 * 1024);
  o.limits.bucket_bytes = static_cast<int64_t>(bucket_mb * 1024 * 1024);
  GradientSync sync(o, make_bucket_hook(compress));
  fresh_gradients();
  sync.setup(*model, comm);
  at::Tensor flat = at::randn({numel});
  std::vector<double> ours, bare;
  for (int r = 0; r < reps + 1; ++r) {  // the first of each is a warm-up
    fresh_gradients();
    comm.barrier();
    auto t0 = Clock::now();
    sync.finish();
    if (r) ours.push_back(since(t0));
    comm.barrier();
    t0 = Clock::now();
    MPI_Allreduce(MPI_IN_PLACE, flat.data_ptr<float>(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (r) bare.push_back(since(t0));
  }
  const double mo = bench::median(ours), mb = bench::median(bare);
  const double mb_bytes = static_cast<double>(numel) * 4 / 1e6;
  if (comm.rank() == 0)
    std::printf("%-9s %8.2f MB  %2zu buckets  bucketed %8.3f ms (%6.2f GB/s)  bare MPI_Allreduce %8.3f ms (%6.2f GB/s)  "
                "bandwidth ratio %.3f\n",
                name.c_str(), mb_bytes, sync.num_buckets(), mo * 1e3, mb_bytes / 1e3 / mo, mb * 1e3,
                mb_bytes / 1e3 / mb, mb / mo);
  if (comm.rank() == 0)
    std::printf("json {\"kind\": \"gradients\", \"model\": \"%s\", \"ranks\": %d, \"bytes\": %lld, "
                "\"buckets\": %zu, \"bucket_mb\": %g, \"compress\": \"%s\", \"seconds\": %.9g, "
                "\"bare_seconds\": %.9g}\n",
                name.c_str(), comm.world_size(), static_cast<long long>(numel * 4), sync.num_buckets(), bucket_mb,
                compress_name(compress), mo, mb);
}

struct StepResult {
  double seconds_per_step = 0, comm_per_step = 0, wait_per_step = 0;
};

StepResult train(const std::string& name, bool overlap, int steps, int64_t batch, double bucket_mb,
                 GradCompression compress, Communicator& comm) {
  TrainerOptions o;
  o.run_dir = "/tmp/oodt_bench_comm";
  o.steps = steps + 2;
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.verbose = false;
  o.dist.overlap = overlap ? DistOptions::Overlap::On : DistOptions::Overlap::Off;
  o.dist.bucket_mb = bucket_mb;
  o.dist.compress = compress;
  o.optim.name = "sgd";
  o.optim.momentum = 0.9;
  at::manual_seed(0);
  ConfigReader cfg(YAML::Load(model_yaml(name)), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 28, 28}, 10});
  Trainer t(o, model, std::make_unique<bench::MemoryData>(batch), std::make_unique<Engine>(std::vector<std::unique_ptr<Algorithm>>{}),
            comm, at::Device(at::kCPU), "{}");
  t.open_run_dir(RunDirMode::Overwrite);  // the same folder every time
  t.prepare_run_dir();
  t.setup();
  t.fit(2);  // warm-up; the first step also re-plans the buckets in the observed order
  GradientSync* sync = &dynamic_cast<GradientAllReduce*>(t.state().averaging)->sync();
  sync->take_stats();
  comm.barrier();
  const auto t0 = Clock::now();
  t.fit(steps + 2);
  StepResult r;
  r.seconds_per_step = since(t0) / steps;
  const auto st = sync->take_stats();
  r.comm_per_step = st.comm_seconds / steps;
  r.wait_per_step = st.wait_seconds / steps;
  return r;
}

}  // namespace
}  // namespace oodt

int main(int argc, char** argv) {
  std::string model = "resnet18";
  int reps = 15, steps = 6, rounds = 3;
  double in_place_mb = oodt::DistOptions{}.in_place_mb, bucket_mb = oodt::DistOptions{}.bucket_mb;
  auto compress = oodt::GradCompression::None;
  bool only_sizes = false;
  int64_t batch = 32;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--sizes") {
      only_sizes = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_comm: %s needs a value\n", k.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (k == "--model") model = v;
    else if (k == "--reps") reps = std::atoi(v.c_str());
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--rounds") rounds = std::atoi(v.c_str());
    else if (k == "--batch") batch = std::atoll(v.c_str());
    else if (k == "--in-place-mb") in_place_mb = std::atof(v.c_str());
    else if (k == "--bucket-mb") bucket_mb = std::atof(v.c_str());
    else if (k == "--compress" && (v == "none" || v == "fp16" || v == "bf16"))
      compress = v == "fp16" ? oodt::GradCompression::Fp16 : v == "bf16" ? oodt::GradCompression::Bf16
                                                                          : oodt::GradCompression::None;
    else {
      std::fprintf(stderr, "bench_comm: unknown option or value: %s %s\n", k.c_str(), v.c_str());
      return 2;
    }
  }
  at::set_num_threads(1);
  auto comm = oodt::make_communicator();
  if (comm->world_size() < 2) {
    std::fprintf(stderr, "run under mpirun -np 2 (or more)\n");
    return 2;
  }
  if (only_sizes) {
    if (comm->rank() == 0) std::printf("== bare MPI_Allreduce, %d ranks ==\n", comm->world_size());
    oodt::sizes(reps, *comm);
    return 0;
  }
  if (comm->rank() == 0)
    std::printf("== gradient all-reduce bandwidth, %d ranks, buckets of %g MB, compression %s ==\n",
                comm->world_size(), bucket_mb, oodt::compress_name(compress));
  for (const std::string& m : {std::string("cnn"), std::string("mlp"), model})
    oodt::bandwidth(m, reps, in_place_mb, bucket_mb, compress, *comm);

  std::vector<double> on, off, comm_s, wait_s;
  for (int r = 0; r < rounds; ++r) {
    const auto a = oodt::train(model, true, steps, batch, bucket_mb, compress, *comm);
    const auto b = oodt::train(model, false, steps, batch, bucket_mb, compress, *comm);
    on.push_back(a.seconds_per_step), off.push_back(b.seconds_per_step);
    comm_s.push_back(a.comm_per_step), wait_s.push_back(a.wait_per_step);
  }
  if (comm->rank() == 0 && rounds > 0) {  // --rounds 0: bandwidth only
    const double c = oodt::bench::median(comm_s), w = oodt::bench::median(wait_s);
    std::printf("== overlap: %s, batch %lld per rank, %d steps x %d rounds ==\n", model.c_str(),
                static_cast<long long>(batch), steps, rounds);
    std::printf("step time: overlapped %.1f ms, after backward %.1f ms, ratio %.3f\n", oodt::bench::median(on) * 1e3,
                oodt::bench::median(off) * 1e3, oodt::bench::median(on) / oodt::bench::median(off));
    std::printf("communication thread %.2f ms/step, main thread waited %.2f ms/step: %.0f%% of communication hidden "
                "behind backward\n",
                c * 1e3, w * 1e3, c > 0 ? 100.0 * (1.0 - w / c) : 0.0);
    std::printf("json {\"kind\": \"steps\", \"model\": \"%s\", \"ranks\": %d, \"batch\": %lld, "
                "\"bucket_mb\": %g, \"compress\": \"%s\", \"overlapped_s\": %.9g, \"after_backward_s\": %.9g, "
                "\"comm_s\": %.9g, \"wait_s\": %.9g}\n",
                model.c_str(), comm->world_size(), static_cast<long long>(batch), bucket_mb,
                oodt::compress_name(compress), oodt::bench::median(on), oodt::bench::median(off), c, w);
  }
  return 0;
}
