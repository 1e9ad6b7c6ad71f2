// Tests that need a CUDA device (ctest label `gpu`; scripts/gpu_check.sh runs them on a lent
// GPU machine). Without one the binary says so and exits 77, which ctest reports as skipped.
//
//   oodt_gpu_tests DATA.h5 CONFIGS_DIR
//
// One process, one GPU, no MPI (a local communicator). Multi-rank runs on one GPU are not
// tested: NCCL refuses two ranks on the same device, and a build with NCCL sends every CUDA
// tensor through it.
//
// Tolerances. CUDA and CPU runs are compared in fp32 with TF32 switched off (LibTorch lets
// cuDNN convolutions use TF32 by default on this hardware, which rounds inputs to 10-bit
// mantissas): what is left are different summation orders, about 1e-6 relative per
// operation. Over a dozen SGD steps with momentum that grows to well under 1e-4; the tests allow
// 1e-3 relative. A batch copied wrongly (stale, torn or reordered) changes a step's loss by far
// more. bf16/fp16 runs are compared with fp32 at 5e-2 absolute + 5e-2 relative: 8 (bf16) or 11
// (fp16) mantissa bits in the forward pass move a dozen steps' losses by a few per cent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/device_feed.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/models/model.h"
#include "data/domain_dataset.h"
#include "train_steps.h"
#include "test_util.h"

namespace oodt {
namespace {

std::string g_data, g_configs;

const at::Device kCuda(at::kCUDA, 0);

// The quickstart CNN, a few steps, without dropout (CUDA and CPU draw different masks) and
// without TF32 (see the top of the file).
std::vector<std::string> quickstart(const std::string& device, int64_t steps) {
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  return {"data.path=" + g_data,
          "model.dropout=0.0",
          "train.device=" + device,
          "train.steps=" + std::to_string(steps),
          "train.eval_every=0",
          "train.checkpoint_every=0",
          "train.threads=0",
          "schedule.warmup_steps=2"};
}

test::StepLosses run(const std::string& device, int64_t steps, std::vector<std::string> extra = {}) {
  std::vector<std::string> sets = quickstart(device, steps);
  sets.insert(sets.end(), extra.begin(), extra.end());
  return test::train_steps(g_configs + "/quickstart.yaml", "", sets);
}

void expect_close(const test::StepLosses& got, const test::StepLosses& want, double rel, double abs_tol = 0) {
  ASSERT_EQ(got.loss.size(), want.loss.size());
  for (size_t i = 0; i < want.loss.size(); ++i) {
    EXPECT_TRUE(std::isfinite(got.loss[i])) << "step " << i + 1;
    EXPECT_NEAR(got.loss[i], want.loss[i], abs_tol + rel * std::max(1.0, std::fabs(want.loss[i]))) << "step " << i + 1;
  }
  ASSERT_EQ(got.metrics.size(), want.metrics.size());
  for (size_t i = 0; i < want.metrics.size(); ++i) {
    const SplitMetrics &g = got.metrics[i], &w = want.metrics[i];
    EXPECT_EQ(g.count, w.count);
    EXPECT_NEAR(g.loss, w.loss, abs_tol + rel * std::max(1.0, w.loss)) << "split " << i;
    // A prediction may flip where two classes are within rounding of each other.
    EXPECT_NEAR(g.accuracy, w.accuracy, abs_tol + 3.0 / std::max<double>(1.0, static_cast<double>(w.count))) << "split " << i;
  }
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a.cpu(), b.cpu());
}

DataOptions data_options(bool pinned) {
  DataOptions o;
  o.path = g_data;
  o.test_domains = {"rot_0"};
  o.batch_size = 256;
  o.prefetch = 2;
  o.pin_memory = pinned;
  return o;
}

// Pinned batches are the same batches, and the asynchronous copies (each started before the
// previous one is used, as the trainer does) deliver them intact to the compute stream.
TEST(GpuInput, PinnedBatchesAndAsynchronousCopiesMatchPlainCopies) {
  auto pinned = make_data_source(data_options(true), 7, 0, 1);
  auto plain = make_data_source(data_options(false), 7, 0, 1);
  for (bool channels_last : {false, true}) {
    DeviceFeed feed(kCuda, channels_last);
    ASSERT_TRUE(feed.asynchronous());
    DeviceFeed::Transfer next = feed.start(pinned->train_batch(0));
    for (int64_t step = 0; step < 12; ++step) {
      const Batch want = plain->train_batch(step);
      const Batch host = pinned->train_batch(step);
      EXPECT_TRUE(host.inputs.is_pinned());
      EXPECT_TRUE(host.labels.is_pinned());
      EXPECT_FALSE(want.inputs.is_pinned());
      EXPECT_TRUE(same_bits(host.inputs, want.inputs));
      const Batch got = feed.finish(std::move(next));
      next = feed.start(pinned->train_batch(step + 1));  // in flight while `got` is used
      ASSERT_TRUE(got.inputs.is_cuda());
      EXPECT_EQ(got.inputs.is_contiguous(at::MemoryFormat::ChannelsLast) && !got.inputs.is_contiguous(), channels_last);
      // Used on the compute stream right away: a kernel that ran before the copy finished
      // would see other numbers.
      const at::Tensor doubled = got.inputs * 2;
      EXPECT_TRUE(same_bits(doubled, want.inputs * 2)) << "step " << step;
      EXPECT_TRUE(same_bits(got.labels, want.labels)) << "step " << step;
      EXPECT_TRUE(same_bits(got.domains, want.domains)) << "step " << step;
      const Batch sync = want.to(kCuda);
      EXPECT_TRUE(same_bits(got.inputs, sync.inputs));
    }
    feed.finish(std::move(next));
  }
  // Evaluation batches come pinned too.
  int64_t batches = 0;
  pinned->for_each_eval_batch(pinned->eval_splits().front(), 100, [&](const Batch& b) {
    EXPECT_TRUE(b.inputs.is_pinned());
    ++batches;
  });
  EXPECT_GT(batches, 0);
}

TEST(GpuTrain, QuickstartCnnOnCudaMatchesCpu) {
  const test::StepLosses cpu = run("cpu", 12);
  const test::StepLosses cuda = run("cuda", 12);
  EXPECT_GT(std::fabs(cpu.loss.front() - cpu.loss.back()), 1e-2);  // it trains
  expect_close(cuda, cpu, 1e-3);
}

TEST(GpuTrain, ChannelsLastAndCudnnBenchmarkMatchTheDefault) {
  const test::StepLosses plain = run("cuda", 12);
  const test::StepLosses cl = run("cuda", 12, {"train.channels_last=true"});
  EXPECT_FALSE(plain.channels_last);
  EXPECT_TRUE(cl.channels_last);
  expect_close(cl, plain, 1e-3);
  const test::StepLosses bench = run("cuda", 12, {"train.channels_last=true", "train.cudnn_benchmark=true"});
  EXPECT_TRUE(at::globalContext().benchmarkCuDNN());
  expect_close(bench, plain, 1e-3);
  at::globalContext().setBenchmarkCuDNN(false);
}

// Reduced precision, when this build has it (train.precision, core/precision.h).
TEST(GpuTrain, MixedPrecisionTrainsCloseToFp32) {
  const test::StepLosses fp32 = run("cuda", 12);
  for (const char* precision : {"bf16", "fp16"}) {
    test::StepLosses got;
    try {
      // fp16 starts from a modest loss scale: an overflow in the first steps would skip an
      // update, and the run would then be compared with an fp32 run that made it.
      std::vector<std::string> sets = {std::string("train.precision=") + precision};
      if (std::string(precision) == "fp16") sets.push_back("train.loss_scale.init=1024");
      got = run("cuda", 12, sets);
    } catch (const ConfigError& e) {
      if (std::string(e.what()).find("precision") != std::string::npos &&
          std::string(e.what()).find("unknown") != std::string::npos)
        GTEST_SKIP() << "this build has no train.precision: " << e.what();
      throw;
    }
    SCOPED_TRACE(precision);
    expect_close(got, fp32, 5e-2, 5e-2);
    // Not the fp32 run under another name: autocast changed the numbers.
    bool differs = false;
    for (size_t i = 0; i < got.loss.size(); ++i) differs = differs || got.loss[i] != fp32.loss[i];
    EXPECT_TRUE(differs) << precision << " gave fp32's losses bit for bit";
  }
}

// Evaluation on the device (inputs copied as training batches are) scores like evaluation on
// the CPU, for the same weights, in either memory format.
TEST(GpuEval, OnCudaEqualsOnCpu) {
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  ConfigTree tree;
  tree.merge_file(g_configs + "/quickstart.yaml");
  ConfigReader cfg(tree.root["model"], "model", tree.origins);
  auto data = make_data_source(data_options(true), 0, 0, 1);
  at::manual_seed(3);
  auto model = build_model(cfg, ModelShape{data->input_shape(), data->num_classes()});
  auto comm = make_local_communicator();
  const std::vector<SplitMetrics> cpu = evaluate(*model, *data, *comm, 300, at::Device(at::kCPU));
  model->to(kCuda);
  const std::vector<SplitMetrics> cuda = evaluate(*model, *data, *comm, 300, kCuda);
  use_channels_last(*model, "train.channels_last");
  const std::vector<SplitMetrics> cuda_cl = evaluate(*model, *data, *comm, 300, kCuda);
  ASSERT_EQ(cpu.size(), cuda.size());
  ASSERT_EQ(cpu.size(), cuda_cl.size());
  for (size_t i = 0; i < cpu.size(); ++i)
    for (const auto* got : {&cuda[i], &cuda_cl[i]}) {
      EXPECT_EQ(got->count, cpu[i].count);
      EXPECT_NEAR(got->loss, cpu[i].loss, 1e-4 * std::max(1.0, cpu[i].loss)) << "split " << i;
      EXPECT_NEAR(got->accuracy, cpu[i].accuracy, 3.0 / static_cast<double>(cpu[i].count)) << "split " << i;
      EXPECT_NEAR(got->ece, cpu[i].ece, 1e-3) << "split " << i;
    }
}

}  // namespace
}  // namespace oodt

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: oodt_gpu_tests DATA.h5 CONFIGS_DIR\n");
    return 2;
  }
  oodt::g_data = argv[1];
  oodt::g_configs = argv[2];
  if (!at::hasCUDA() || at::getNumGPUs() == 0) {
    // at::hasCUDA() is also false for a CUDA LibTorch on a machine without a GPU or driver.
    std::printf("oodt_gpu_tests: no CUDA device visible to LibTorch: skipped\n");
    return 77;
  }
  return RUN_ALL_TESTS();
}
