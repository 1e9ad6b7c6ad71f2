#include "core/report.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/error.h"
#include "core/state.h"

namespace oodt {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Under mpirun stdout is a pseudo-terminal even when redirected to a file: print lines then.
bool interactive() { return ::isatty(STDOUT_FILENO) && std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr; }

std::string utc_now(double* unix_seconds) {
  const auto now = std::chrono::system_clock::now();
  *unix_seconds = std::chrono::duration<double>(now.time_since_epoch()).count();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Writes or appends `text` whole: a write that fails (a full disk, a quota, a read-only
// mount) is an error naming the file, and an append that fails half-way is taken back, so a
// file never ends in a cut line.
void write_file(const fs::path& path, const std::string& text, bool append) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (fd < 0) throw Error(concat("cannot write ", path.string(), ": ", std::strerror(errno)));
  struct stat st {};
  const off_t before = ::fstat(fd, &st) == 0 ? st.st_size : 0;
  size_t done = 0;
  int err = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err != 0 && append && ::ftruncate(fd, before) != 0) {
    // Could not take the partial line back either; the error below still names the file.
  }
  ::close(fd);
  if (err != 0) throw Error(concat("cannot write ", path.string(), ": ", std::strerror(err)));
}

}  // namespace

std::vector<json> read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(concat(path, ": cannot be read"));
  std::vector<json> rows;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object()) throw DataError(concat(path, ": line ", number, " is not a JSON object (a damaged or cut row)"));
    rows.push_back(std::move(row));
  }
  return rows;
}

json json_number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

json evaluation_json(const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains) {
  const EvalSummary sum = summarize(metrics, domains);
  json out;
  out["summary"] = {{"val_acc", json_number(sum.val_acc)},
                    {"heldout_acc", json_number(sum.heldout_acc)},
                    {"heldout_conf", json_number(sum.heldout_conf)},
                    {"heldout_ece", json_number(sum.heldout_ece)}};
  json ds = json::object();
  for (size_t d = 0; d < domains.size(); ++d) {
    json entry = {{"held_out", domains[d].held_out}};
    for (const auto& m : metrics) {
      if (m.domain != static_cast<int64_t>(d)) continue;
      entry[m.part] = {{"acc", json_number(m.accuracy)}, {"loss", json_number(m.loss)}, {"ece", json_number(m.ece)},
                       {"conf", json_number(m.confidence)}, {"n", m.count}};
    }
    ds[domains[d].name] = std::move(entry);
  }
  out["domains"] = std::move(ds);
  return out;
}

RunReporter::RunReporter(Communicator& comm, std::string run_dir, bool verbose, int64_t log_every)
    : comm_(comm), run_dir_(std::move(run_dir)), verbose_(verbose), log_every_(log_every),
      last_progress_(std::chrono::steady_clock::now()) {}

bool RunReporter::writes() const { return comm_.rank() == 0; }

void RunReporter::open(RunDirMode mode) {
  if (writes()) dir_ = RunDirectory::open(run_dir_, mode);
}

void RunReporter::prepare(const std::string& config, const std::string& plugin_order) {
  if (!writes()) return;
  if (!dir_.is_open()) open(RunDirMode::Fresh);
  write_file(fs::path(run_dir_) / "config.yaml", config, false);
  write_file(fs::path(run_dir_) / "plugins.txt", plugin_order, false);
  // A mark from an earlier stop no longer holds once the run goes on.
  std::error_code ec;
  fs::remove(fs::path(run_dir_) / "stopped", ec);
  dir_.kept();
}

void RunReporter::step_done(double loss, int64_t samples, bool updated) {
  if (updated) window_loss_ += loss, window_updates_ += 1;
  window_steps_ += 1;
  window_samples_ += samples;
}

at::Tensor RunReporter::window() const {
  return at::tensor({window_loss_, window_seconds_, static_cast<double>(window_updates_),
                     static_cast<double>(window_steps_), static_cast<double>(window_samples_)},
                    at::kDouble);
}

void RunReporter::restore_window(const at::Tensor& w) {
  OODT_CHECK(w.numel() == 5, "a training window of ", w.numel(), " values, expected 5");
  const at::Tensor d = w.to(at::kDouble).contiguous();
  const double* v = d.data_ptr<double>();
  window_loss_ = v[0], window_seconds_ = v[1];
  window_updates_ = static_cast<int64_t>(v[2]), window_steps_ = static_cast<int64_t>(v[3]);
  window_samples_ = static_cast<int64_t>(v[4]);
}

void RunReporter::progress(const State& s, bool force) {
  if (!writes() || !verbose_) return;
  const double loss = window_updates_ ? window_loss_ / static_cast<double>(window_updates_) : 0.0;
  const auto now = std::chrono::steady_clock::now();
  if (interactive()) {
    if (!force && std::chrono::duration<double>(now - last_progress_).count() < 0.25) return;
    last_progress_ = now;
    std::printf("\rstep %lld/%lld  epoch %lld  loss %.4f  lr %.4g   ", static_cast<long long>(s.step),
                static_cast<long long>(s.max_steps), static_cast<long long>(s.epoch), loss, s.lr);
  } else if (force || s.step % log_every_ == 0) {
    std::printf("step %lld/%lld  epoch %lld  loss %.4f  lr %.4g\n", static_cast<long long>(s.step),
                static_cast<long long>(s.max_steps), static_cast<long long>(s.epoch), loss, s.lr);
  } else {
    return;
  }
  std::fflush(stdout);
}

void RunReporter::evaluation(const State& s, const std::vector<SplitMetrics>& metrics,
                             const std::vector<DomainInfo>& domains, int64_t skipped) {
  // Every rank's window in one collective: sums over ranks, and the largest memory.
  const at::Tensor all = comm_.all_gather(at::tensor({window_loss_, static_cast<double>(window_updates_),
                                                      static_cast<double>(window_samples_), window_seconds_,
                                                      static_cast<double>(window_steps_),
                                                      static_cast<double>(skipped), peak_rss_mb()},
                                                     at::kDouble));
  const at::Tensor sums = all.sum(0);
  const auto* v = sums.data_ptr<double>();
  const double rss = all.select(1, 6).max().item<double>();
  const int world = comm_.world_size();
  const double train_loss = v[1] > 0 ? v[0] / v[1] : NAN;
  // Samples per second of the whole job: all ranks' samples over the mean rank's busy time.
  const double seconds = v[3] / world;
  const double throughput = seconds > 0 ? v[2] / seconds : 0.0;
  const double steps = v[4] / world;
  window_loss_ = 0, window_updates_ = 0, window_samples_ = 0, window_seconds_ = 0, window_steps_ = 0;
  if (!writes()) return;

  double unix_time = 0;
  const std::string time = utc_now(&unix_time);
  json row = {{"step", s.step},
              {"epoch", s.epoch},
              {"time", time},
              {"unix_time", unix_time},
              {"lr", json_number(s.lr)},
              {"train_loss", json_number(train_loss)},
              {"samples_per_s", json_number(throughput)},
              {"step_s", json_number(steps > 0 ? seconds / steps : NAN)},
              {"peak_rss_mb", json_number(rss)},
              {"world_size", world},
              {"skipped_steps", static_cast<int64_t>(std::llround(v[5] / world))}};  // every rank counted it
  const json eval = evaluation_json(metrics, domains);
  row["summary"] = eval["summary"];
  row["domains"] = eval["domains"];
  if (!s.metrics.empty()) {
    json plugins = json::object();
    for (const auto& [k, value] : s.metrics) plugins[k] = json_number(value);
    row["plugins"] = std::move(plugins);
  }
  append_json_line("metrics.jsonl", row);

  if (!verbose_) return;
  const EvalSummary sum = summarize(metrics, domains);
  if (interactive()) std::printf("\n");
  std::printf("eval step %lld  train_loss %.4f  val acc %.4f  held-out acc %.4f  %.0f samples/s\n",
              static_cast<long long>(s.step), train_loss, sum.val_acc, sum.heldout_acc, throughput);
  std::fflush(stdout);
}

void RunReporter::table(const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains) const {
  if (!writes()) return;
  std::printf("\n%-14s %-9s %8s %8s %8s %8s\n", "domain", "role", "in acc", "out acc", "out ece", "out loss");
  auto find = [&](size_t d, const char* part) -> const SplitMetrics* {
    for (const auto& m : metrics)
      if (m.domain == static_cast<int64_t>(d) && m.part == part) return &m;
    return nullptr;
  };
  for (size_t d = 0; d < domains.size(); ++d) {
    const SplitMetrics* in = find(d, "in");
    const SplitMetrics* out = find(d, "out");
    std::printf("%-14s %-9s %8.4f %8.4f %8.4f %8.4f\n", domains[d].name.c_str(),
                domains[d].held_out ? "held-out" : "train", in ? in->accuracy : NAN, out ? out->accuracy : NAN,
                out ? out->ece : NAN, out ? out->loss : NAN);
  }
  std::fflush(stdout);
}

void RunReporter::write_text(const std::string& file, const std::string& text) const {
  if (writes()) write_file(fs::path(run_dir_) / file, text, false);
}

void RunReporter::write_json(const std::string& file, const json& value) const {
  if (writes()) write_file(fs::path(run_dir_) / file, value.dump() + "\n", false);
}

void RunReporter::append_json_line(const std::string& file, const json& value) const {
  if (writes()) write_file(fs::path(run_dir_) / file, value.dump() + "\n", true);
}

}  // namespace oodt
