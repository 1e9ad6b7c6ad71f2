#include "data/prepare.h"

#include <zlib.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/h5.h"
#include "core/random.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) throw DataError(concat(path, ": cannot open (is dataset-fashion-mnist installed?)"));
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  const bool bad = n < 0;
  gzclose(f);
  if (bad) throw DataError(concat(path, ": corrupt gzip stream"));
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t off) {
  return (uint32_t(b[off]) << 24) | (uint32_t(b[off + 1]) << 16) | (uint32_t(b[off + 2]) << 8) | b[off + 3];
}

std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    const fs::path p = fs::path(dir) / (stem + ext);
    if (fs::exists(p)) return p.string();
  }
  throw DataError(concat(dir, ": ", stem, "(.gz) not found; install Debian's dataset-fashion-mnist or pass --source"));
}

Mnist load_pool(const PrepareOptions& o) {
  Mnist train = read_idx(find_file(o.source, "train-images-idx3-ubyte"), find_file(o.source, "train-labels-idx1-ubyte"));
  Mnist test = read_idx(find_file(o.source, "t10k-images-idx3-ubyte"), find_file(o.source, "t10k-labels-idx1-ubyte"));
  train.images.insert(train.images.end(), test.images.begin(), test.images.end());
  train.labels.insert(train.labels.end(), test.labels.begin(), test.labels.end());
  return train;
}

struct Assembled {
  std::vector<uint8_t> images;  // N*C*H*W
  std::vector<int64_t> labels, domains;
  int64_t channels = 1, rows = 28, cols = 28;
  std::vector<std::string> domain_names;
  int64_t num_classes = 10;
};

void write_file(const std::string& path, const std::string& name, const Assembled& a, const PrepareOptions& o) {
  const int64_t n = static_cast<int64_t>(a.labels.size());
  const std::string tmp = path + ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    at::Tensor images = at::from_blob(const_cast<uint8_t*>(a.images.data()), {n, a.channels, a.rows, a.cols}, at::kByte);
    f.write("/images", images, /*chunk_rows=*/256);
    f.write("/labels", at::from_blob(const_cast<int64_t*>(a.labels.data()), {n}, at::kLong), 4096);
    f.write("/domains", at::from_blob(const_cast<int64_t*>(a.domains.data()), {n}, at::kLong), 4096);
    f.set_attr("/", "dataset", name);
    f.set_attr("/", "domain_names", a.domain_names);
    f.set_attr("/", "num_classes", a.num_classes);
    f.set_attr("/", "source", o.source);
    f.set_attr("/", "seed", static_cast<int64_t>(o.seed));
    f.flush();
  }
  fs::rename(tmp, path);
}

// Pools train+test, shuffles with the seed and deals the pool round-robin into `k` domains
// (domain d gets shuffled[d::k]), as DomainBed does.
std::vector<std::vector<int64_t>> deal(int64_t pool, int64_t k, SeededRng& rng, int64_t max_samples) {
  std::vector<int64_t> order(static_cast<size_t>(pool));
  for (int64_t i = 0; i < pool; ++i) order[static_cast<size_t>(i)] = i;
  rng.shuffle(order);
  if (max_samples > 0 && max_samples < pool) order.resize(static_cast<size_t>(max_samples));
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(k));
  for (size_t i = 0; i < order.size(); ++i) out[i % static_cast<size_t>(k)].push_back(order[i]);
  return out;
}

Assembled rotated(const Mnist& pool, const PrepareOptions& o) {
  const std::vector<int> angles = {0, 15, 30, 45, 60, 75};
  SeededRng rng(o.seed);
  const auto parts = deal(pool.size(), static_cast<int64_t>(angles.size()), rng, o.max_samples);
  Assembled a;
  const int64_t px = pool.rows * pool.cols;
  for (size_t d = 0; d < angles.size(); ++d) {
    a.domain_names.push_back("rot_" + std::to_string(angles[d]));
    for (int64_t idx : parts[d]) {
      const auto img = rotate_image(pool.images.data() + idx * px, pool.rows, pool.cols, angles[d]);
      a.images.insert(a.images.end(), img.begin(), img.end());
      a.labels.push_back(pool.labels[static_cast<size_t>(idx)]);
      a.domains.push_back(static_cast<int64_t>(d));
    }
  }
  return a;
}

// Colored Fashion-MNIST (DomainBed's ColoredMNIST on FMNIST): binary label (class < 5 -> 0),
// flipped with probability 0.25; the colour (channel) equals the noisy label except with the
// environment's flip probability, so colour agrees with the label 90%, 80% and 10% of the time.
Assembled colored(const Mnist& pool, const PrepareOptions& o) {
  const std::vector<double> agree = {0.9, 0.8, 0.1};
  SeededRng rng(o.seed);
  const auto parts = deal(pool.size(), static_cast<int64_t>(agree.size()), rng, o.max_samples);
  Assembled a;
  a.channels = 2;
  a.num_classes = 2;
  const int64_t px = pool.rows * pool.cols;
  for (size_t d = 0; d < agree.size(); ++d) {
    a.domain_names.push_back("agree_" + std::to_string(static_cast<int>(std::lround(agree[d] * 100))));
    for (int64_t idx : parts[d]) {
      int64_t label = pool.labels[static_cast<size_t>(idx)] < 5 ? 0 : 1;
      if (rng.uniform() < 0.25) label = 1 - label;
      const int64_t colour = (rng.uniform() < agree[d]) ? label : 1 - label;
      const uint8_t* src = pool.images.data() + idx * px;
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t p = 0; p < px; ++p) a.images.push_back(c == colour ? src[p] : 0);
      a.labels.push_back(label);
      a.domains.push_back(static_cast<int64_t>(d));
    }
  }
  return a;
}

}  // namespace

Mnist read_idx(const std::string& images_path, const std::string& labels_path) {
  const auto img = read_gz(images_path);
  const auto lab = read_gz(labels_path);
  if (img.size() < 16 || be32(img, 0) != 2051) throw DataError(concat(images_path, ": not an IDX image file"));
  if (lab.size() < 8 || be32(lab, 0) != 2049) throw DataError(concat(labels_path, ": not an IDX label file"));
  Mnist m;
  const uint32_t n = be32(img, 4);
  m.rows = be32(img, 8);
  m.cols = be32(img, 12);
  if (be32(lab, 4) != n) throw DataError(concat(labels_path, ": ", be32(lab, 4), " labels for ", n, " images"));
  if (img.size() != 16 + size_t(n) * m.rows * m.cols) throw DataError(concat(images_path, ": truncated"));
  if (lab.size() != 8 + size_t(n)) throw DataError(concat(labels_path, ": truncated"));
  m.images.assign(img.begin() + 16, img.end());
  m.labels.assign(lab.begin() + 8, lab.end());
  return m;
}

std::vector<uint8_t> rotate_image(const uint8_t* image, int64_t rows, int64_t cols, double degrees) {
  std::vector<uint8_t> out(static_cast<size_t>(rows * cols), 0);
  const double th = degrees * M_PI / 180.0;
  const double c = std::cos(th), s = std::sin(th);
  const double cy = (rows - 1) / 2.0, cx = (cols - 1) / 2.0;
  auto px = [&](int64_t y, int64_t x) -> double {
    return (y < 0 || y >= rows || x < 0 || x >= cols) ? 0.0 : image[y * cols + x];
  };
  for (int64_t y = 0; y < rows; ++y) {
    for (int64_t x = 0; x < cols; ++x) {
      // Inverse map: rotate the output position clockwise to find its source (image y axis
      // points down, so counter-clockwise on screen).
      const double dx = x - cx, dy = y - cy;
      const double sx = c * dx - s * dy + cx;
      const double sy = s * dx + c * dy + cy;
      const int64_t x0 = static_cast<int64_t>(std::floor(sx)), y0 = static_cast<int64_t>(std::floor(sy));
      const double fx = sx - x0, fy = sy - y0;
      const double v = (1 - fy) * ((1 - fx) * px(y0, x0) + fx * px(y0, x0 + 1)) +
                       fy * ((1 - fx) * px(y0 + 1, x0) + fx * px(y0 + 1, x0 + 1));
      out[static_cast<size_t>(y * cols + x)] = static_cast<uint8_t>(std::lround(std::min(255.0, std::max(0.0, v))));
    }
  }
  return out;
}

std::vector<std::string> prepare_names() { return {"rotated-fmnist", "colored-fmnist"}; }

std::string prepare_dataset(const std::string& name, const PrepareOptions& options) {
  Mnist pool = load_pool(options);
  Assembled a;
  if (name == "rotated-fmnist") a = rotated(pool, options);
  else if (name == "colored-fmnist") a = colored(pool, options);
  else throw ConfigError("", concat("unknown dataset '", name, "' (known: rotated-fmnist, colored-fmnist)"));
  fs::create_directories(options.out_dir);
  std::string file = name;
  for (char& ch : file) if (ch == '-') ch = '_';
  const std::string path = (fs::path(options.out_dir) / (file + ".h5")).string();
  write_file(path, name, a, options);
  return path;
}

}  // namespace oodt
