#pragma once
// Runs a risky read in a child process first. libhdf5 (1.10.8 on Debian 12) can overflow a
// buffer, crash or loop forever on a damaged file (docs/errors.md#fuzzing); a file read whole
// by a child, the same way, is then safe to read in this process.
#include <functional>
#include <string>

namespace oodt {

// Forks; the child runs `read` (with ATen on one thread, no MPI, no CUDA) and leaves with
// _exit. Throws DataError naming `what` when the child throws (its message), is killed by a
// signal (a crash), or runs longer than `limit_s` seconds (then it is killed). Returns when the
// child finished cleanly.
void run_isolated(const std::string& what, const std::function<void()>& read, double limit_s);

}  // namespace oodt
