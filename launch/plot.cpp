// plot(): writes the embedded oodt_plot.py to a private temporary folder and runs it without a
// shell (posix_spawn: no quoting of paths; safe in an MPI process, unlike a full fork).
#include "launch/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"

extern char** environ;

namespace oodt {
namespace fs = std::filesystem;
namespace {

constexpr const char* kInstallHint = "figures need python3-matplotlib: apt-get install python3-matplotlib";
constexpr int kNoMatplotlib = 3;  // oodt_plot.py's exit code when `import matplotlib` fails

// A folder only this user can read (mkdtemp: mode 0700), removed however plot() returns.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string name = std::string(base && *base ? base : "/tmp") + "/oodt-plot-XXXXXX";
    if (!mkdtemp(name.data())) throw DataError(concat("figures: cannot create a temporary folder in ", name, ": ", std::strerror(errno)));
    path = name;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The last `n` characters of a file, from a line start when there is one.
std::string tail(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (text.size() > n) {
    text = text.substr(text.size() - n);
    if (const size_t nl = text.find('\n'); nl != std::string::npos && nl + 1 < text.size()) text = text.substr(nl + 1);
    text = "...\n" + text;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

void plot(const std::string& kind, const std::string& input, const std::vector<std::string>& outputs,
          const std::vector<std::string>& extra) {
  if (outputs.empty()) return;
  const char* env = std::getenv("OODT_PYTHON");
  const std::string python = env && *env ? env : "/usr/bin/python3";
  TempDir dir;
  const std::string script = dir.path + "/oodt_plot.py", errors = dir.path + "/stderr.txt";
  {
    std::ofstream f(script);
    f << oodt_plot_script();
    if (!f.flush()) throw DataError(concat("figures: cannot write ", script));
  }
  std::vector<std::string> args = {python, script, kind, "--in", input};
  for (const auto& o : outputs) args.insert(args.end(), {"--out", o});
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // The child's stderr goes to a file: read after it exits, so a chatty script cannot block.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, errors.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  // A bare name (OODT_PYTHON=python3) is looked up on PATH, a path is used as it is.
  const int rc = python.find('/') == std::string::npos
                     ? posix_spawnp(&pid, python.c_str(), &actions, nullptr, argv.data(), environ)
                     : posix_spawn(&pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  const std::string no_python = concat(kInstallHint, " (cannot run '", python, "'");
  if (rc != 0) throw DataError(concat(no_python, ": ", std::strerror(rc), "; OODT_PYTHON names another interpreter)"));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw DataError(concat("figures: waiting for ", python, ": ", std::strerror(errno)));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)  // exec failed in the child (older C libraries)
    throw DataError(concat(no_python, "; OODT_PYTHON names another interpreter)"));
  if (WIFEXITED(status) && WEXITSTATUS(status) == kNoMatplotlib)
    throw DataError(concat(kInstallHint, " (", python, " cannot import matplotlib; OODT_PYTHON names another interpreter)"));
  const std::string how = WIFEXITED(status) ? concat("exit code ", WEXITSTATUS(status))
                                            : concat("signal ", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  throw DataError(concat("the ", kind, " figure of ", input, " failed (", python, " oodt_plot.py, ", how, "):\n",
                         tail(errors, 2000)));
}

}  // namespace oodt
