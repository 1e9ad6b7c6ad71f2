#include "core/preempt.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace oodt {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) { g_signal = sig; }

struct Injection {
  int rank = -1;
  long long step = -1;
  int signal = 0;
  Injection() {
    if (const char* spec = std::getenv("OODT_INJECT_SIGNAL"))
      if (std::sscanf(spec, "%d:%lld:%d", &rank, &step, &signal) != 3) rank = -1;
  }
};

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // interrupted system calls (MPI's polling, file I/O) resume
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() { return g_signal; }

void maybe_inject_signal(int rank, long long step) {
  static const Injection injection;
  if (injection.rank == rank && injection.step == step) std::raise(injection.signal);
}

}  // namespace oodt
