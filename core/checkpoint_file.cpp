// Checkpoint files: writing, verifying, reading and choosing them (core/checkpoint.h).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/isolated.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "oodtrain-checkpoint";
// 1: strings as variable-length HDF5 attributes, checksum over the tensors and config.
// 2: strings as byte datasets under /meta (nothing in HDF5's global heap), the checksum also
//    over step, epoch, world size, seed and init_from, and a sidecar digest of the file's bytes.
constexpr int64_t kFormatVersion = 2;
constexpr const char* kSidecarHeader = "oodtrain-checkpoint-sum 1";

// A 64-bit digest of a byte stream (not cryptographic: it finds damage, not forgery).
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
  void add(int64_t v) { add(&v, sizeof v); }
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

// The checksum stored inside a checkpoint: every tensor (group, name, dtype, shape, bytes) and
// the config; from version 2 also what a resume continues from (step, epoch, world size, seed,
// origin), so an edited step is refused too.
std::string digest_of(const Checkpoint& ck, int64_t version) {
  Digest d;
  auto add_map = [&](const std::string& group, const TensorMap& m) {
    for (const auto& [name, t] : m) d.add(group + "/" + name, t);
  };
  add_map("/model", ck.model);
  add_map("/optimizer", ck.optimizer);
  add_map("/averaging", ck.averaging);
  for (const auto& [name, m] : ck.plugins) add_map("/plugins/" + name, m);
  if (version >= 2) add_map("/trainer", ck.trainer);
  if (ck.rng.defined()) d.add("/rng/torch_cpu", ck.rng);
  d.add(ck.config);
  if (version >= 2) {
    for (int64_t v : {ck.step, ck.epoch, ck.world_size, ck.seed}) d.add(v);
    d.add(ck.init_from);
  }
  return d.hex();
}

// The digest and size of a file's bytes.
std::pair<std::string, uint64_t> file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(concat(path, ": cannot be read (", std::strerror(errno), ")"));
  Digest d;
  std::vector<char> buf(size_t{1} << 20);
  uint64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    d.add(buf.data(), static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  if (in.bad()) throw DataError(concat(path, ": read failed (", std::strerror(errno), ")"));
  return {d.hex(), size};
}

std::string sidecar_of(const std::string& path) { return path + ".sum"; }

// Checks the file's bytes against its sidecar, before libhdf5 parses anything of it.
void verify_bytes(const std::string& path) {
  const std::string sum = sidecar_of(path);
  std::ifstream in(sum);
  std::string header, size_key, digest_key, digest;
  uint64_t size = 0;
  std::getline(in, header);
  in >> size_key >> size >> digest_key >> digest;
  if (header != kSidecarHeader || size_key != "size" || digest_key != "digest" || digest.size() != 16 || !in)
    throw DataError(concat(sum, ": not a checkpoint digest (damaged?)"));
  const auto [got, got_size] = file_digest(path);
  if (got_size != size)
    throw DataError(concat(path, ": ", got_size, " bytes, its digest (", sum, ") says ", size,
                           ": the file was cut or damaged after it was written"));
  if (got != digest)
    throw DataError(concat(path, ": its bytes do not match their digest (", sum,
                           "): the file was damaged after it was written"));
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

// Writes `text` to `path` atomically (temp file, fsync, rename).
void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw DataError(concat(tmp, ": cannot be written (", std::strerror(errno), ")"));
  }
  fsync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw DataError(concat(path, ": cannot rename ", tmp, " into place: ", std::strerror(errno)));
}

std::string parent_of(const std::string& path) {
  const fs::path p = fs::path(path).parent_path();
  return p.empty() ? "." : p.string();
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

void remove_checkpoint(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
  fs::remove(sidecar_of(path), ec);
}

void write_checkpoint(const std::string& path, const Checkpoint& ck) {
  const std::string tmp = path + ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    f.set_attr_fixed("/", "format", kFormat);
    f.set_attr("/", "format_version", kFormatVersion);
    f.set_attr("/", "step", ck.step);
    f.set_attr("/", "epoch", ck.epoch);
    f.set_attr("/", "world_size", ck.world_size);
    f.set_attr("/", "seed", ck.seed);
    const std::time_t now = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    f.set_attr_fixed("/", "checksum", digest_of(ck, kFormatVersion));
    f.write_text("/meta/config", ck.config);
    f.write_text("/meta/git_revision", ck.git_revision);
    f.write_text("/meta/init_from", ck.init_from);
    f.write_text("/meta/created", when);
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
    write_map(f, "/trainer", ck.trainer);
    if (ck.rng.defined()) f.write("/rng/torch_cpu", ck.rng);
    f.flush();
  }
  fsync_path(tmp, false);
  // The sidecar is written after the file is in place: a file without one is either older than
  // sidecars or was being finished when the process died (and is complete: it was renamed).
  const auto [digest, size] = file_digest(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw DataError(concat(path, ": cannot rename ", tmp, " into place: ", std::strerror(errno)));
  write_atomically(sidecar_of(path), concat(kSidecarHeader, "\nsize ", size, "\ndigest ", digest, "\n"));
  fsync_path(parent_of(path), true);
}

namespace {

Checkpoint parse_checkpoint(const std::string& path);

}  // namespace

Checkpoint read_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DataError(concat(path, ": file not found"));
  if (fs::exists(sidecar_of(path), ec)) {
    verify_bytes(path);
  } else {
    // libhdf5 (1.10.8 here) can overflow a buffer, crash or hang on a damaged file (the
    // checkpoint fuzzer finds such files within minutes). Without a digest to check the bytes
    // by (a checkpoint copied alone, written before format 2, or whose writer died between the
    // rename and the digest), the file is parsed in a child process first, exactly as below.
    std::error_code size_ec;
    const auto bytes = fs::file_size(path, size_ec);
    run_isolated(concat(path, " (it has no digest, ", fs::path(sidecar_of(path)).filename().string(),
                        ", to check it by)"),
                 [&] { (void)parse_checkpoint(path); }, 20.0 + (size_ec ? 0.0 : static_cast<double>(bytes) / 10e6));
  }
  return parse_checkpoint(path);
}

namespace {

Checkpoint parse_checkpoint(const std::string& path) {
  h5::File f = h5::File::open(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw DataError(concat(path, ": not an oodtrain checkpoint (no format attribute)"));
  const int64_t version = f.attr_int("/", "format_version");
  if (version != 1 && version != kFormatVersion)
    throw DataError(concat(path, ": checkpoint format version ", version, " is not supported (expected 1 or ",
                           kFormatVersion, ")"));
  Checkpoint ck;
  ck.step = f.attr_int("/", "step");
  ck.epoch = f.attr_int("/", "epoch");
  ck.world_size = f.attr_int("/", "world_size");
  ck.seed = f.attr_int("/", "seed");
  if (version >= 2) {
    ck.config = f.read_text("/meta/config");
    ck.git_revision = f.read_text("/meta/git_revision");
    ck.init_from = f.read_text("/meta/init_from");
  } else {
    ck.config = f.attr_string("/", "config");
    ck.git_revision = f.attr_string("/", "git_revision");
    ck.init_from = f.attr_string("/", "init_from");
  }
  if (ck.world_size < 1 || ck.step < 0 || ck.epoch < 0)
    throw DataError(concat(path, ": step ", ck.step, ", epoch ", ck.epoch, ", world size ", ck.world_size,
                           " cannot be a run's"));
  if (!f.exists("/model")) throw DataError(concat(path, ": /model is missing"));
  ck.model = read_map(f, "/model");
  ck.optimizer = read_map(f, "/optimizer");
  ck.averaging = read_map(f, "/averaging");
  for (const auto& name : f.list("/plugins")) ck.plugins[name] = read_map(f, "/plugins/" + name);
  ck.trainer = read_map(f, "/trainer");
  if (f.exists("/rng/torch_cpu")) ck.rng = f.read("/rng/torch_cpu");
  if (f.has_attr("/", "checksum")) {  // checkpoints of the first version may have none
    const std::string want = f.attr_string("/", "checksum"), got = digest_of(ck, version);
    if (want != got)
      throw DataError(concat(path, ": checksum mismatch (stored ", want, ", contents give ", got,
                             "): the file was damaged after it was written"));
  } else if (version >= 2) {
    throw DataError(concat(path, ": the checksum is missing"));
  }
  return ck;
}

}  // namespace

CheckpointChoice newest_readable_checkpoint(const std::string& dir) {
  CheckpointChoice choice;
  for (const auto& path : list_checkpoints(dir)) {
    try {
      choice.checkpoint = read_checkpoint(path);
      choice.path = path;
      return choice;
    } catch (const std::exception& e) {  // whatever the reason, the previous one is tried
      choice.skipped.push_back(e.what());
    }
  }
  return choice;
}

}  // namespace oodt
