#include "test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "core/h5.h"

namespace oodt::test {
namespace fs = std::filesystem;

namespace {
struct Cleanup {
  std::vector<std::string> dirs;
  ~Cleanup() {
    std::error_code ec;
    for (const auto& d : dirs) fs::remove_all(d, ec);
  }
};
Cleanup g_cleanup;
}  // namespace

std::string temp_dir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("oodt_" + tag + "_XXXXXX")).string();
  char* made = mkdtemp(tmpl.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  g_cleanup.dirs.push_back(made);
  return made;
}

std::string fixture(const std::string& name) { return std::string(OODT_FIXTURES) + "/" + name; }

std::string write_domain_file(const std::string& dir, int domains, int per_domain, int classes) {
  const int64_t n = static_cast<int64_t>(domains) * per_domain;
  at::Tensor images = at::empty({n, 1, 4, 4}, at::kByte);
  at::Tensor labels = at::empty({n}, at::kLong);
  at::Tensor doms = at::empty({n}, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    images[i].fill_(static_cast<int>(i % 251));
    labels[i] = i % classes;
    doms[i] = i / per_domain;
  }
  const std::string path = dir + "/domains.h5";
  h5::File f = h5::File::create(path);
  f.write("/images", images, 8);
  f.write("/labels", labels);
  f.write("/domains", doms);
  std::vector<std::string> names;
  for (int d = 0; d < domains; ++d) names.push_back("dom" + std::to_string(d));
  f.set_attr("/", "domain_names", names);
  f.set_attr("/", "num_classes", static_cast<int64_t>(classes));
  return path;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace oodt::test
