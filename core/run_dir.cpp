#include "core/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace oodt {
namespace fs = std::filesystem;
namespace {

bool matches(const std::string& name, const std::string& pattern) {
  const size_t star = pattern.find('*');
  if (star == std::string::npos) return name == pattern;
  const std::string head = pattern.substr(0, star), tail = pattern.substr(star + 1);
  return name.size() >= head.size() + tail.size() && name.compare(0, head.size(), head) == 0 &&
         name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_run_file(const std::string& name) {
  for (const auto& p : RunDirectory::run_files())
    if (matches(name, p)) return true;
  return false;
}

std::string holder_of(const std::string& lock) {
  char buf[256] = {};
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "another run";
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  std::string who(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
  return who.empty() ? "another run" : who;
}

}  // namespace

const std::vector<std::string>& RunDirectory::run_files() {
  static const std::vector<std::string> files = {
      "config.yaml", "plugins.txt", "metrics.jsonl", "metrics.csv", "tb", "ckpt_*.h5", "ckpt_*.h5.sum", "ckpt_*.tmp",
      "candidate_*.h5", "candidates.json", "sparse_soup.jsonl", "done", "stopped"};
  return files;
}

RunDirectory RunDirectory::open(const std::string& path, RunDirMode mode) {
  RunDirectory d;
  d.path_ = path;
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec))
    throw ConfigError("run.dir", concat(path, " exists and is not a directory"));
  if (!fs::exists(path, ec)) {
    fs::create_directories(path, ec);
    if (ec) throw ConfigError("run.dir", concat("cannot create ", path, ": ", ec.message()));
    d.created_ = true;
  }
  const std::string lock = (fs::path(path) / ".lock").string();
  d.fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (d.fd_ < 0) {
    const std::string why = std::strerror(errno);
    throw ConfigError("run.dir", concat("cannot write in ", path, ": ", why));
  }
  if (::flock(d.fd_, LOCK_EX | LOCK_NB) != 0)
    throw ConfigError("run.dir", concat(path, " is in use by ", holder_of(lock),
                                        "; one run at a time per directory (choose another run.dir)"));
  std::vector<std::string> earlier;
  for (const auto& e : fs::directory_iterator(path, ec))
    if (is_run_file(e.path().filename().string())) earlier.push_back(e.path().string());
  if (!earlier.empty() && mode == RunDirMode::Fresh)
    throw ConfigError("run.dir", concat(path, " holds an earlier run (", fs::path(earlier.front()).filename().string(),
                                        earlier.size() > 1 ? concat(" and ", earlier.size() - 1, " more") : "",
                                        "): continue it with --resume, start afresh there with --overwrite, or "
                                        "choose another run.dir"));
  if (mode == RunDirMode::Overwrite)
    for (const auto& f : earlier) {
      fs::remove_all(f, ec);  // tb/ is a folder of events files
      if (ec) throw ConfigError("run.dir", concat("cannot remove ", f, ": ", ec.message()));
    }
  // Who holds the lock, for the message a second run gets; also proves the directory writable.
  char host[128] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string who = concat("pid ", ::getpid(), " on ", host, "\n");
  if (::ftruncate(d.fd_, 0) != 0 || ::pwrite(d.fd_, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size())) {
    const std::string why = std::strerror(errno);
    throw ConfigError("run.dir", concat("cannot write in ", path, ": ", why));
  }
  return d;
}

bool RunDirectory::in_use(const std::string& path) {
  const std::string lock = (fs::path(path) / ".lock").string();
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // drops the shared lock if it was taken
  return held;
}

RunDirectory::RunDirectory(RunDirectory&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), created_(o.created_), keep_(o.keep_) {
  o.fd_ = -1;
}

RunDirectory& RunDirectory::operator=(RunDirectory&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_), fd_ = o.fd_, created_ = o.created_, keep_ = o.keep_;
    o.fd_ = -1;
  }
  return *this;
}

RunDirectory::~RunDirectory() { release(); }

void RunDirectory::release() {
  if (fd_ < 0) return;
  if (created_ && !keep_) {
    // Set-up failed in a directory this run made: leave nothing behind.
    std::error_code ec;
    fs::remove(fs::path(path_) / ".lock", ec);
    fs::remove(path_, ec);  // only if empty
  }
  ::close(fd_);  // releases the lock
  fd_ = -1;
}

}  // namespace oodt
