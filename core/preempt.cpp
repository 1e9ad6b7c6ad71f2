#include "core/preempt.h"

#include <csignal>

namespace oodt {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) { g_signal = sig; }

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // interrupted system calls (MPI's polling, file I/O) resume
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A launcher that is being stopped too (mpirun on SIGTERM) closes the ranks' output pipes
  // before it kills them; a rank writing its progress line then must not die of SIGPIPE on the
  // way to its checkpoint. Writes to a closed pipe fail quietly instead; the run's files are
  // not pipes.
  std::signal(SIGPIPE, SIG_IGN);
}

int stop_signal() { return g_signal; }

}  // namespace oodt
