#include "core/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/h5.h"
#include "core/comm.h"
#include "core/models/model.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "oodtrain-checkpoint";
constexpr int64_t kFormatVersion = 1;

// A 64-bit digest of every tensor a checkpoint holds (group, name, dtype, shape, bytes), stored
// as the `checksum` attribute and verified on read: a file damaged after it was written (a bad
// disk, a partial copy) is refused instead of resumed from.
class Digest {
 public:
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      mix(w);
    }
    uint64_t tail = n;
    for (; i < n; ++i) tail = (tail << 8) | p[i];
    mix(tail);
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  void add(const std::string& where, const at::Tensor& t) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    if (c.scalar_type() == at::kBool) c = c.to(at::kByte);  // stored, and read back, as uint8
    add(where);
    add(std::string(at::toString(c.scalar_type())));
    for (int64_t d : c.sizes()) add(&d, sizeof d);
    add(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  void mix(uint64_t w) {
    h_ ^= w * 0x9e3779b97f4a7c15ULL;
    h_ = ((h_ << 27) | (h_ >> 37)) * 0xbf58476d1ce4e5b9ULL + 0x94d049bb133111ebULL;
  }
  uint64_t h_ = 0x6a09e667f3bcc909ULL;
};

std::string digest_of(const Checkpoint& ck) {
  Digest d;
  auto add_map = [&](const std::string& group, const TensorMap& m) {
    for (const auto& [name, t] : m) d.add(group + "/" + name, t);
  };
  add_map("/model", ck.model);
  add_map("/optimizer", ck.optimizer);
  add_map("/averaging", ck.averaging);
  for (const auto& [name, m] : ck.plugins) add_map("/plugins/" + name, m);
  if (ck.rng.defined()) d.add("/rng/torch_cpu", ck.rng);
  d.add(ck.config);
  return d.hex();
}

void write_map(h5::File& f, const std::string& group, const TensorMap& m) {
  f.make_group(group);
  for (const auto& [name, t] : m) f.write(group + "/" + name, t);
}

TensorMap read_map(const h5::File& f, const std::string& group) {
  TensorMap m;
  for (const auto& name : f.list(group)) m[name] = f.read(group + "/" + name);
  return m;
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt_%09lld.h5", static_cast<long long>(step));
  return buf;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ckpt_", 0) == 0 && n.size() > 8 && n.substr(n.size() - 3) == ".h5") out.push_back(e.path().string());
  }
  std::sort(out.rbegin(), out.rend());  // zero-padded step: lexical order is step order
  return out;
}

void write_checkpoint(const std::string& path, const Checkpoint& ck) {
  const std::string tmp = path + ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    f.set_attr("/", "format", std::string(kFormat));
    f.set_attr("/", "format_version", kFormatVersion);
    f.set_attr("/", "step", ck.step);
    f.set_attr("/", "epoch", ck.epoch);
    f.set_attr("/", "world_size", ck.world_size);
    f.set_attr("/", "seed", ck.seed);
    f.set_attr("/", "config", ck.config);
    f.set_attr("/", "git_revision", ck.git_revision);
    f.set_attr("/", "init_from", ck.init_from);
    const std::time_t now = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    f.set_attr("/", "created", std::string(when));
    f.set_attr("/", "checksum", digest_of(ck));
    write_map(f, "/model", ck.model);
    // Test aid: OODT_INJECT_CHECKPOINT_KILL=<step> kills the process (SIGKILL, no clean-up)
    // half-way through writing that step's checkpoint, as an OOM killer or a node failure would.
    if (const char* kill_at = std::getenv("OODT_INJECT_CHECKPOINT_KILL"))
      if (std::atoll(kill_at) == ck.step) {
        f.flush();
        std::raise(SIGKILL);
      }
    write_map(f, "/optimizer", ck.optimizer);
    write_map(f, "/averaging", ck.averaging);
    f.make_group("/plugins");
    for (const auto& [name, m] : ck.plugins) write_map(f, "/plugins/" + name, m);
    if (ck.rng.defined()) f.write("/rng/torch_cpu", ck.rng);
    f.flush();
  }
  fsync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw DataError(concat(path, ": cannot rename ", tmp, " into place: ", std::strerror(errno)));
  fsync_path(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string(), true);
}

Checkpoint read_checkpoint(const std::string& path) {
  h5::File f = h5::File::open(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw DataError(concat(path, ": not an oodtrain checkpoint (no format attribute)"));
  const int64_t version = f.attr_int("/", "format_version");
  if (version != kFormatVersion)
    throw DataError(concat(path, ": checkpoint format version ", version, " is not supported (expected ", kFormatVersion, ")"));
  Checkpoint ck;
  ck.step = f.attr_int("/", "step");
  ck.epoch = f.attr_int("/", "epoch");
  ck.world_size = f.attr_int("/", "world_size");
  ck.seed = f.attr_int("/", "seed");
  ck.config = f.attr_string("/", "config");
  ck.git_revision = f.attr_string("/", "git_revision");
  ck.init_from = f.attr_string("/", "init_from");
  if (!f.exists("/model")) throw DataError(concat(path, ": /model is missing"));
  ck.model = read_map(f, "/model");
  ck.optimizer = read_map(f, "/optimizer");
  ck.averaging = read_map(f, "/averaging");
  for (const auto& name : f.list("/plugins")) ck.plugins[name] = read_map(f, "/plugins/" + name);
  if (f.exists("/rng/torch_cpu")) ck.rng = f.read("/rng/torch_cpu");
  if (f.has_attr("/", "checksum")) {  // checkpoints of earlier versions have none
    const std::string want = f.attr_string("/", "checksum"), got = digest_of(ck);
    if (want != got)
      throw DataError(concat(path, ": checksum mismatch (stored ", want, ", contents give ", got,
                             "): the file was damaged after it was written"));
  }
  return ck;
}

TensorMap module_state(const torch::nn::Module& module) {
  TensorMap m;
  for (const auto& kv : module.named_parameters()) m[kv.key()] = kv.value();
  for (const auto& kv : module.named_buffers()) m[kv.key()] = kv.value();
  return m;
}

TensorMap with_prefix(const TensorMap& m, const std::string& prefix) {
  TensorMap out;
  for (auto it = m.lower_bound(prefix); it != m.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
    out[it->first.substr(prefix.size())] = it->second;
  return out;
}

void load_module_state(torch::nn::Module& module, const TensorMap& state, const std::string& source,
                       const std::set<std::string>& may_be_missing) {
  TensorMap own = module_state(module);
  std::vector<std::string> problems;
  for (const auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end()) {
      if (!may_be_missing.count(name)) problems.push_back(concat("missing '", name, "'"));
    }
    else if (it->second.sizes() != t.sizes())
      problems.push_back(concat("'", name, "' has shape ", it->second.sizes(), ", the model expects ", t.sizes()));
  }
  for (const auto& [name, t] : state)
    if (!own.count(name)) problems.push_back(concat("unexpected '", name, "'"));
  if (!problems.empty()) {
    std::string msg;
    for (size_t i = 0; i < problems.size() && i < 5; ++i) msg += "\n  " + problems[i];
    if (problems.size() > 5) msg += concat("\n  ... and ", problems.size() - 5, " more");
    throw DataError(concat(source, ": model state does not match the configured model:", msg));
  }
  at::NoGradGuard no_grad;
  for (auto& [name, t] : own)
    if (auto it = state.find(name); it != state.end()) t.copy_(it->second);
}

const char* git_revision();  // generated at build time (cmake/OodtVersion.cmake)

Checkpoint weights_checkpoint(const State& state, const std::string& origin) {
  Checkpoint ck;
  ck.step = state.step;
  ck.epoch = state.epoch;
  ck.world_size = state.comm ? state.comm->world_size() : 1;
  ck.seed = static_cast<int64_t>(state.seed);
  ck.config = state.config;
  ck.git_revision = git_revision();
  ck.init_from = origin.empty() ? state.init_from : origin;
  ck.model = module_state(*state.model);
  return ck;
}

}  // namespace oodt
