#include "core/report.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/csv.h"
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

// Seconds as H:MM:SS (hours unbounded); "?" when not known.
std::string clock_time(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto t = static_cast<long long>(std::llround(seconds));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  return buf;
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

RunReporter::RunReporter(Communicator& comm, std::string run_dir, ReportOptions options)
    : comm_(comm), run_dir_(std::move(run_dir)), options_(options), start_(std::chrono::steady_clock::now()),
      last_line_(start_), last_redraw_(start_) {}

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
  // A new file per process: a resumed run's events go to a file of their own (core/tb_writer.h).
  if (options_.log.tensorboard) tb_.open((fs::path(run_dir_) / "tb").string());
  dir_.kept();
  start_ = last_line_ = last_redraw_ = std::chrono::steady_clock::now();
}

void RunReporter::step_done(double loss, int64_t samples, bool updated) {
  if (updated) window_loss_ += loss, window_updates_ += 1, line_loss_ += loss, line_updates_ += 1;
  window_steps_ += 1;
  window_samples_ += samples;
  line_samples_ += samples;
  last_loss_ = loss;
}

void RunReporter::step_time(double seconds) {
  window_seconds_ += seconds;
  line_seconds_ += seconds;
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
  if (!writes()) return;
  if (start_step_ < 0) {
    start_step_ = s.step - 1;
    tb_.session_start(s.step);  // TensorBoard drops what an earlier process logged from here on
  }
  tb_.scalars(s.step, {{"train/loss", static_cast<float>(last_loss_)}, {"train/lr", static_cast<float>(s.lr)}});
  const auto now = std::chrono::steady_clock::now();
  const double since_line = std::chrono::duration<double>(now - last_line_).count();
  const bool due = force || (options_.log_every > 0 && s.step % options_.log_every == 0) ||
                   (options_.log_every_s > 0 && since_line >= options_.log_every_s);
  const bool terminal = interactive();
  const bool redraw = terminal && std::chrono::duration<double>(now - last_redraw_).count() >= 0.25;
  if (due) tb_.flush();  // the events file keeps up with the log
  if (options_.verbose && ((due && !terminal) || redraw || (terminal && force))) {
    const double loss = line_updates_ ? line_loss_ / static_cast<double>(line_updates_) : NAN;
    const double rate =
        line_seconds_ > 0 ? static_cast<double>(line_samples_) * comm_.world_size() / line_seconds_ : 0.0;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const int64_t done = s.step - start_step_, left = std::max<int64_t>(s.max_steps - s.step, 0);
    const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(left) : NAN;
    std::printf("%sstep %lld/%lld  epoch %lld  loss(avg %lld steps) %.4f  lr %.4g  %.0f samples/s  elapsed %s  eta %s%s",
                terminal ? "\r" : "", static_cast<long long>(s.step), static_cast<long long>(s.max_steps),
                static_cast<long long>(s.epoch), static_cast<long long>(line_updates_), loss, s.lr, rate,
                clock_time(elapsed).c_str(), clock_time(eta).c_str(), terminal ? "   " : "\n");
    std::fflush(stdout);
    last_redraw_ = now;
  }
  if (due) {
    line_loss_ = 0, line_seconds_ = 0, line_updates_ = 0, line_samples_ = 0;
    last_line_ = now;
  }
}

void RunReporter::flush() {
  if (writes()) tb_.flush();
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

  const double step_s = steps > 0 ? seconds / steps : NAN;
  double unix_time = 0;
  const std::string time = utc_now(&unix_time);
  json row = {{"step", s.step},
              {"epoch", s.epoch},
              {"time", time},
              {"unix_time", unix_time},
              {"lr", json_number(s.lr)},
              {"train_loss", json_number(train_loss)},
              {"samples_per_s", json_number(throughput)},
              {"step_s", json_number(step_s)},
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

  const EvalSummary sum = summarize(metrics, domains);
  // The same numbers flat: TensorBoard scalars and a metrics.csv record.
  std::vector<std::pair<std::string, float>> tb;
  std::vector<std::pair<std::string, std::string>> csv = {
      {"step", std::to_string(s.step)},      {"epoch", std::to_string(s.epoch)},
      {"lr", csv_number(s.lr)},              {"train_loss", csv_number(train_loss)},
      {"samples_per_s", csv_number(throughput)}, {"step_s", csv_number(step_s)}};
  auto scalar = [&](const std::string& tb_tag, const std::string& csv_column, double x) {
    if (!tb_tag.empty() && std::isfinite(x)) tb.emplace_back(tb_tag, static_cast<float>(x));
    if (!csv_column.empty()) csv.emplace_back(csv_column, csv_number(x));
  };
  scalar("train/window_loss", "", train_loss);
  scalar("train/samples_per_s", "", throughput);
  scalar("train/step_s", "", step_s);
  scalar("eval/val_acc", "val_acc", sum.val_acc);
  scalar("eval/heldout_acc", "heldout_acc", sum.heldout_acc);
  scalar("eval/heldout_conf", "heldout_conf", sum.heldout_conf);
  scalar("eval/heldout_ece", "heldout_ece", sum.heldout_ece);
  for (size_t d = 0; d < domains.size(); ++d)
    for (const char* part : {"in", "out"})
      for (const auto& m : metrics) {
        if (m.domain != static_cast<int64_t>(d) || m.part != part) continue;
        const std::string prefix = concat(domains[d].name, "/", part, "/");
        const std::pair<const char*, double> values[] = {
            {"acc", m.accuracy}, {"loss", m.loss}, {"ece", m.ece}, {"conf", m.confidence}};
        for (const auto& [name, x] : values) scalar("eval/" + prefix + name, prefix + name, x);
      }
  for (const auto& [k, value] : s.metrics) scalar("plugins/" + k, "", value);
  tb_.scalars(s.step, tb);
  tb_.flush();
  if (options_.log.csv) append_csv(csv);

  if (!options_.verbose) return;
  if (interactive()) std::printf("\n");
  std::printf("eval step %lld  train_loss %.4f  val acc %.4f  held-out acc %.4f  %.0f samples/s\n",
              static_cast<long long>(s.step), train_loss, sum.val_acc, sum.heldout_acc, throughput);
  std::fflush(stdout);
}

void RunReporter::append_csv(const std::vector<std::pair<std::string, std::string>>& columns) {
  const fs::path path = fs::path(run_dir_) / "metrics.csv";
  std::string text;
  if (csv_header_.empty()) {
    // A resumed run keeps the header of the file it continues.
    std::ifstream in(path, std::ios::binary);
    if (!in || !csv_read_row(in, csv_header_) || (csv_header_.size() == 1 && csv_header_[0].empty())) {
      csv_header_.clear();
      for (const auto& c : columns) csv_header_.push_back(c.first);
      text = csv_row(csv_header_);
    }
  }
  std::vector<std::string> fields;
  size_t matched = 0;
  for (const auto& name : csv_header_) {
    auto it = std::find_if(columns.begin(), columns.end(), [&](const auto& c) { return c.first == name; });
    fields.push_back(it == columns.end() ? "" : it->second);
    matched += it != columns.end();
  }
  if ((matched != columns.size() || matched != csv_header_.size()) && !csv_warned_) {
    csv_warned_ = true;
    std::fprintf(stderr,
                 "oodtrain: warning: %s has other columns than this run's evaluations (another data set or "
                 "data.eval_train_in?); rows follow its header: its other columns stay empty, new ones are dropped\n",
                 path.c_str());
  }
  write_file(path, text + csv_row(fields), true);
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
