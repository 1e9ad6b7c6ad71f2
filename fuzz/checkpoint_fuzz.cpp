// libFuzzer target: the resume decision on a damaged run folder. The folder holds two good
// checkpoints (steps 4 and 8) with their digest sidecars; the input's first byte picks what it
// damages in the newest (mode = byte % 3), the rest is the damage:
//   0  the checkpoint's bytes, its sidecar kept: refused by the digest before libhdf5 parses it;
//   1  the sidecar, the checkpoint kept;
//   2  the checkpoint's bytes with no sidecar (a checkpoint copied alone, or one whose writer
//      died between the rename and the sidecar): libhdf5 parses the bytes, and the in-file
//      checksum and every checked HDF5 call stand between them and a resume.
// newest_readable_checkpoint must choose step 8 only with exactly the content written, and
// otherwise step 4, saying why it passed over step 8: never crash, never hang, never resume
// from damaged content.
//
// With CHECKPOINT_FUZZ_SEEDS=DIR set, the target first writes one seed per mode into DIR (the
// intact file or sidecar behind the mode byte), so mutation starts from real checkpoints of
// the current format.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "core/checkpoint.h"
#include "core/error.h"

namespace {

oodt::Checkpoint make_checkpoint(int64_t step) {
  oodt::Checkpoint ck;
  ck.config = "train: {steps: 8}\n";
  ck.model["w"] = at::arange(32, at::kFloat);
  ck.model["b"] = at::full({4}, 0.5);
  ck.optimizer["w.momentum_buffer"] = at::ones({32});
  ck.trainer["loss_window"] = at::tensor({1.0, 2.0, 3.0, 4.0, 5.0}, at::kDouble).unsqueeze(0);
  ck.rng = at::zeros({1, 16}, at::kByte);
  ck.step = step;
  ck.epoch = step / 2;
  ck.world_size = 1;
  ck.seed = 3;
  return ck;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

struct Folder {
  std::string dir, older, newest, good_bytes, good_sum;
  Folder() {
    dir = "/tmp/oodt_checkpoint_fuzz_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    older = dir + "/" + oodt::checkpoint_name(4);
    newest = dir + "/" + oodt::checkpoint_name(8);
    oodt::write_checkpoint(older, make_checkpoint(4));
    oodt::write_checkpoint(newest, make_checkpoint(8));
    good_bytes = slurp(newest);
    good_sum = slurp(newest + ".sum");
  }
};

Folder& folder() {
  static Folder f;
  return f;
}

// Chosen content must be what was written, tensor for tensor.
bool same_content(const oodt::Checkpoint& got, const oodt::Checkpoint& want) {
  if (got.step != want.step || got.epoch != want.epoch || got.world_size != want.world_size ||
      got.seed != want.seed || got.config != want.config || got.model.size() != want.model.size())
    return false;
  for (const auto& [name, t] : want.model) {
    const auto it = got.model.find(name);
    if (it == got.model.end() || !it->second.equal(t)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seeds = std::getenv("CHECKPOINT_FUZZ_SEEDS")) {
    std::filesystem::create_directories(seeds);
    const Folder& f = folder();
    put(std::string(seeds) + "/damaged_bytes", std::string(1, '\0') + f.good_bytes);
    put(std::string(seeds) + "/damaged_sum", std::string(1, '\1') + f.good_sum);
    put(std::string(seeds) + "/no_sum", std::string(1, '\2') + f.good_bytes);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Folder& f = folder();
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const std::string payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::error_code ec;
  std::filesystem::remove(f.newest + ".sum", ec);
  put(f.newest, mode == 1 ? f.good_bytes : payload);
  if (mode != 2) put(f.newest + ".sum", mode == 1 ? payload : f.good_sum);

  const oodt::CheckpointChoice c = oodt::newest_readable_checkpoint(f.dir);
  if (c.path == f.newest) {
    if (!same_content(c.checkpoint, make_checkpoint(8))) __builtin_trap();  // resumed from damage
    if (mode == 0 && payload != f.good_bytes) __builtin_trap();  // the digest let other bytes through
  } else {
    // Passed over: the older checkpoint, whole, with the reason named.
    if (c.path != f.older || !same_content(c.checkpoint, make_checkpoint(4)) || c.skipped.size() != 1 ||
        c.skipped[0].empty())
      __builtin_trap();
    if (mode == 0 && payload == f.good_bytes) __builtin_trap();  // the written bytes refused
  }
  return 0;
}
