// libFuzzer target: the HDF5 data reader. Bytes are written as a file and opened as a domain
// dataset, exactly as `oodtrain train` opens data.path (layout and value validation), then a
// training batch and an evaluation pass are read. Anything but oodt::Error escaping is a bug;
// so is any sanitizer report in our code. (libhdf5 itself is not instrumented.)
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "data/domain_dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/oodt_h5_fuzz_" + std::to_string(::getpid()) + ".h5";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    oodt::DataOptions o;
    o.path = path;
    o.batch_size = 4;
    o.prefetch = 0;
    o.cache_mb = 1;
    oodt::DomainDataset ds(o, 0, 0, 1);
    ds.train_batch(0);
    for (const auto& split : ds.eval_splits()) ds.for_each_eval_batch(split, 8, [](const oodt::Batch&) {});
  } catch (const oodt::Error&) {
  }
  return 0;
}
