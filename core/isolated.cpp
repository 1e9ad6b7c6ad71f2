#include "core/isolated.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "core/error.h"

// Set by sanitizer runtimes (libFuzzer registers its crash-report writer there); absent in a
// normal build.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace oodt {

void run_isolated(const std::string& what, const std::function<void()>& read, double limit_s) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw DataError(concat(what, ": cannot check it (pipe: ", std::strerror(errno), ")"));
  std::fflush(nullptr);
  // core/h5.cpp's fork handlers wait until no thread is inside libhdf5, and free its lock in
  // the child, whose only thread is this one.
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]), ::close(fds[1]);
    throw DataError(concat(what, ": cannot check it (fork: ", std::strerror(errno), ")"));
  }
  if (pid == 0) {
    ::close(fds[0]);
    // A crash here is this probe's answer, not a finding of a fuzzer running the parent.
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(nullptr);
    at::set_num_threads(1);  // the parent's ATen worker threads do not exist here
    std::string why;
    try {
      read();
    } catch (const std::exception& e) {
      why = e.what();
      if (why.empty()) why = "failed";
    }
    if (!why.empty()) (void)!::write(fds[1], why.data(), std::min<size_t>(why.size(), 4000));
    ::_exit(why.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  std::string why;
  auto drain = [&] {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) return;
      why.append(buf, static_cast<size_t>(n));
    }
  };
  int status = 0;
  bool ended = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (!ended && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 50) > 0 && (p.revents & POLLIN)) {
      char buf[4096];
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) why.append(buf, static_cast<size_t>(n));
    }
    ended = ::waitpid(pid, &status, WNOHANG) == pid;
  }
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  drain();
  ::close(fds[0]);
  if (!ended)
    throw DataError(concat(what, ": reading it did not finish within ", static_cast<int>(limit_s),
                           " s (libhdf5 loops forever on some damaged files)"));
  if (WIFSIGNALED(status))
    throw DataError(concat(what, ": reading it crashed a probe process (signal ", WTERMSIG(status),
                           ", inside libhdf5 on a damaged file)"));
  if (WEXITSTATUS(status) != 0)
    throw DataError(why.empty() ? concat(what, ": unreadable (the probe process exited ", WEXITSTATUS(status), ")")
                                : why);
}

}  // namespace oodt
