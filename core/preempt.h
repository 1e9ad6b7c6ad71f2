#pragma once
// Stopping on request: SIGUSR1 or SIGTERM (what Slurm sends ahead of a time limit or a
// preemption) sets a flag; the trainer checks it at every step boundary with one all-reduce,
// so every rank stops after the same step, writes a checkpoint and exits with
// kExitRequeue. A later `train --resume` continues bit-identically. (Tests raise the signal at a
// chosen step through the trainer's stop source; see launch/train.cpp.)
namespace oodt {

// The exit code of a run stopped by a signal with its checkpoint written: "not done, requeue
// me". 75 is EX_TEMPFAIL in sysexits.h; the Slurm array script turns it into a requeue.
constexpr int kExitRequeue = 75;

// Installs the handlers (idempotent). Only async-signal-safe work happens in them.
void install_stop_signals();
// The signal received so far on this process, or 0.
int stop_signal();

}  // namespace oodt
