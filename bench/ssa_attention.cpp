// Attention forward+backward time and peak memory, dense against SSA at r = 2, 4, 8, for
// sequence lengths 256..4096, measured side by side. Each (length, r) runs in a child process
// so its peak resident memory (ru_maxrss) is its own; memory is reported above the process's
// resident size before the measured work.
//
//   bench_ssa_attention [--lengths 256,512,1024,2048,4096] [--dim 64] [--heads 4] [--reps 5] [--layer]
//   bench_ssa_attention --one LENGTH RATIO ...   (the child)
// Without --layer it measures the attention operation on given Q, K, V; with --layer, the
// whole layer including the QKV and output projections.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "algorithms/ssa/ssa.h"
#include "core/models/attention.h"

namespace {

long rss_kib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Median seconds of forward+backward over [1, n, dim] inputs: of the attention operation on
// given Q, K, V (key sampling included), or with `layer` of the whole layer (QKV and output
// projections too, whose cost does not shrink with r).
int run_one(int64_t n, int64_t ratio, int64_t dim, int64_t heads, int reps, bool layer) {
  // Fixed malloc thresholds: large blocks always come from mmap and go back on free, so the
  // peak resident size follows the live tensors instead of glibc's adaptive heuristics.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);
  at::set_num_threads(1);
  at::manual_seed(0);
  auto attn = std::make_shared<oodt::AttentionImpl>(dim, heads, /*causal=*/false);
  oodt::SsaSampling sampling;
  sampling.ratio = ratio;
  if (ratio > 1) {  // the layer with SSA's kernel, as the plugin's module surgery leaves it
    oodt::replace_layers<oodt::AttentionKernelImpl>(*attn, [&](oodt::AttentionKernelImpl& k, const std::string&) {
      return std::make_shared<oodt::SubsampledKernelImpl>(k.causal, sampling);
    });
  }
  const at::Tensor x = at::randn({1, n, dim}).set_requires_grad(true);
  const int64_t hd = dim / heads;
  const at::Tensor q = at::randn({1, heads, n, hd}).set_requires_grad(true);
  const at::Tensor k = at::randn({1, heads, n, hd}).set_requires_grad(true);
  const at::Tensor v = at::randn({1, heads, n, hd}).set_requires_grad(true);
  auto step = [&] {
    if (layer) return attn->forward(x).sum();
    if (ratio == 1) return oodt::dense_attention(q, k, v, at::Tensor(), false).sum();
    return oodt::subsampled_attention(q, k, v, oodt::sample_keep_sets(n, sampling, false), false).sum();
  };
  {
    // One-time costs (autograd engine start-up, thread-local buffers) before the baseline.
    const at::Tensor t = at::randn({1, heads, 8, hd}).set_requires_grad(true);
    oodt::dense_attention(t, t, t, at::Tensor(), false).sum().backward();
  }
  const long before = rss_kib();
  std::vector<double> times;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    step().backward();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) times.push_back(dt);  // the first run pays first-touch page faults
  }
  std::sort(times.begin(), times.end());
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf("%.6f %ld\n", times[times.size() / 2], std::max(0L, ru.ru_maxrss - before));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> lengths = {256, 512, 1024, 2048, 4096};
  int64_t dim = 64, heads = 4;
  int reps = 5;
  bool layer = false;
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--layer")) layer = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--layer") continue;
    if (a == "--one" && i + 2 < argc) {
      for (int j = i + 3; j + 1 < argc; j += 2) {
        if (!std::strcmp(argv[j], "--dim")) dim = std::atoll(argv[j + 1]);
        if (!std::strcmp(argv[j], "--heads")) heads = std::atoll(argv[j + 1]);
        if (!std::strcmp(argv[j], "--reps")) reps = std::atoi(argv[j + 1]);
      }
      return run_one(std::atoll(argv[i + 1]), std::atoll(argv[i + 2]), dim, heads, reps, layer);
    }
    if (i + 1 >= argc) break;
    if (a == "--lengths") {
      lengths.clear();
      std::stringstream ss(argv[++i]);
      for (std::string t; std::getline(ss, t, ',');) lengths.push_back(std::atoll(t.c_str()));
    } else if (a == "--dim") {
      dim = std::atoll(argv[++i]);
    } else if (a == "--heads") {
      heads = std::atoll(argv[++i]);
    } else if (a == "--reps") {
      reps = std::atoi(argv[++i]);
    }
  }
  std::printf("%s forward+backward, batch 1, dim %lld, %lld heads, 1 thread, median of %d\n",
              layer ? "attention layer (with projections)" : "attention operation (Q, K, V given)",
              static_cast<long long>(dim), static_cast<long long>(heads), reps);
  std::printf("%7s %9s %12s %12s %10s %10s\n", "length", "ratio r", "time ms", "peak MiB", "time/dense", "mem/dense");
  for (int64_t n : lengths) {
    double dense_t = 0, dense_m = 0;
    for (int64_t r : {1, 2, 4, 8}) {
      const std::string cmd = std::string(argv[0]) + " --one " + std::to_string(n) + " " + std::to_string(r) +
                              " --dim " + std::to_string(dim) + " --heads " + std::to_string(heads) + " --reps " +
                              std::to_string(reps) + (layer ? " --layer" : "");
      FILE* p = popen(cmd.c_str(), "r");
      double t = 0;
      long kib = 0;
      if (!p || std::fscanf(p, "%lf %ld", &t, &kib) != 2) {
        std::fprintf(stderr, "child failed: %s\n", cmd.c_str());
        return 1;
      }
      pclose(p);
      if (r == 1) dense_t = t, dense_m = static_cast<double>(kib);
      std::printf("%7lld %9s %12.2f %12.1f %10.3f %10.3f\n", static_cast<long long>(n),
                  r == 1 ? "dense" : std::to_string(r).c_str(), t * 1e3, kib / 1024.0, t / dense_t,
                  dense_m > 0 ? kib / dense_m : 0.0);
      std::fflush(stdout);
    }
  }
  return 0;
}
