#pragma once
// `oodtrain data prepare`: builds the OOD benchmark files from Debian's Fashion-MNIST
// (package dataset-fashion-mnist, /usr/share/datasets/fashion-mnist).
//
// File layout (one HDF5 file per dataset; see docs/data.md):
//   /images   uint8 [N, C, H, W], chunked along N, shuffle+deflate
//   /labels   int64 [N]
//   /domains  int64 [N]   index into the domain_names attribute
//   attrs: dataset, domain_names (list of strings), num_classes, source, seed
#include <cstdint>
#include <string>
#include <vector>

namespace oodt {

struct PrepareOptions {
  std::string source = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = "datasets";
  uint64_t seed = 0;
  int64_t max_samples = 0;  // 0: all 70000; otherwise a smaller pool (tests, quick looks)
};

// The datasets `data prepare` knows.
std::vector<std::string> prepare_names();
// Writes <out_dir>/<name with '-' replaced by '_'>.h5 and returns its path.
std::string prepare_dataset(const std::string& name, const PrepareOptions& options);

// Fashion-MNIST in memory: images [n][28*28] row-major, labels [n].
struct Mnist {
  int64_t rows = 28, cols = 28;
  std::vector<uint8_t> images;
  std::vector<uint8_t> labels;
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};
// Reads an IDX image/label pair (gzip or plain); DataError naming the file on any problem.
Mnist read_idx(const std::string& images_path, const std::string& labels_path);

// Rotates a rows x cols uint8 image by `degrees` counter-clockwise about its centre with
// bilinear interpolation; pixels from outside the image are 0.
std::vector<uint8_t> rotate_image(const uint8_t* image, int64_t rows, int64_t cols, double degrees);

}  // namespace oodt
