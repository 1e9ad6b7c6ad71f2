// Step-time overhead of a plugin against the same model without it, measured side by side:
// rounds alternate baseline and plugin runs of the real trainer on in-memory data, and the
// report is the ratio of median step times.
//
//   bench_plugin_overhead [--steps 60] [--rounds 5] [--batch 64] [--threads 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "core/trainer.h"
#include "bench/bench_util.h"

namespace oodt {
namespace {


double seconds_per_step(const std::string& algorithms, int64_t steps, int64_t batch, Communicator& comm) {
  Registry registry;
  register_builtins(registry);
  TrainerOptions o;
  o.run_dir = "/tmp/oodt_bench_overhead";
  o.steps = steps;
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.verbose = false;
  at::manual_seed(0);
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [16, 32, 64], dropout: 0.5}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 28, 28}, 10});
  auto engine = std::make_unique<Engine>(registry.build(YAML::Load(algorithms), nullptr));
  Trainer t(o, model, std::make_unique<bench::MemoryData>(batch), std::move(engine), comm, at::Device(at::kCPU), "{}");
  t.open_run_dir(RunDirMode::Overwrite);  // the same folder every time
  t.prepare_run_dir();
  t.setup();
  t.fit(2);  // warm-up steps, not timed (allocator, first-touch)
  const auto t0 = std::chrono::steady_clock::now();
  t.fit(steps);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(steps - 2);
}

}  // namespace
}  // namespace oodt

int main(int argc, char** argv) {
  int64_t steps = 60, rounds = 5, batch = 64, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (a == "--suite") continue;
    if (a == "--steps") steps = v;
    else if (a == "--rounds") rounds = v;
    else if (a == "--batch") batch = v;
    else if (a == "--threads") threads = v;
  }
  at::set_num_threads(static_cast<int>(threads));
  auto comm = oodt::make_local_communicator();
  std::string suite = "forward";
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--suite") suite = argv[i + 1];
  if (suite == "qat") {
    // Full precision, LSQ W4A4, LSQ + SAGM, GAQAT: ratios against full precision and LSQ.
    const std::vector<std::pair<std::string, std::string>> variants = {
        {"full precision", "[]"},
        {"LSQ W4A4", "[lsq]"},
        {"LSQ W4A4 + SAGM", "[lsq, sagm]"},
        {"GAQAT W4A4", "[lsq, gaqat]"}};
    std::vector<std::vector<double>> times(variants.size());
    for (int64_t r = 0; r < rounds; ++r)
      for (size_t v = 0; v < variants.size(); ++v)
        times[v].push_back(oodt::seconds_per_step(variants[v].second, steps, batch, *comm));
    std::printf("CNN [16,32,64] on 28x28, batch %lld, %lld thread(s), %lld timed steps x %lld rounds\n",
                static_cast<long long>(batch), static_cast<long long>(threads), static_cast<long long>(steps - 2),
                static_cast<long long>(rounds));
    std::printf("%-20s %10s %10s %10s\n", "variant", "ms/step", "vs fp32", "vs LSQ");
    const double fp = oodt::bench::median(times[0]), lsq = oodt::bench::median(times[1]);
    for (size_t v = 0; v < variants.size(); ++v) {
      const double t = oodt::bench::median(times[v]);
      std::printf("%-20s %10.2f %10.3f %10.3f\n", variants[v].first.c_str(), t * 1e3, t / fp, t / lsq);
    }
    return 0;
  }
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"multi_sample_dropout M=8", "[{multi_sample_dropout: {samples: 8}}]"},
      {"ghost_batch_norm g=16", "[{ghost_batch_norm: {size: 16}}]"},
  };
  std::printf("CNN [16,32,64] on 28x28, batch %lld, %lld thread(s), %lld timed steps x %lld rounds\n",
              static_cast<long long>(batch), static_cast<long long>(threads), static_cast<long long>(steps - 2),
              static_cast<long long>(rounds));
  std::printf("%-28s %14s %14s %8s\n", "plugin", "baseline ms", "plugin ms", "ratio");
  for (const auto& [name, yaml] : variants) {
    std::vector<double> base, plug;
    for (int64_t r = 0; r < rounds; ++r) {  // interleaved, so drift hits both alike
      base.push_back(oodt::seconds_per_step("[]", steps, batch, *comm));
      plug.push_back(oodt::seconds_per_step(yaml, steps, batch, *comm));
    }
    const double b = oodt::bench::median(base), p = oodt::bench::median(plug);
    std::printf("%-28s %14.2f %14.2f %8.3f\n", name.c_str(), b * 1e3, p * 1e3, p / b);
  }
  return 0;
}
