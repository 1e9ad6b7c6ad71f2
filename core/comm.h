#pragma once
// The communicator: the only way the trainer, averaging strategies and algorithms talk to
// other ranks. Backends: MPI, which hands CUDA tensors to NCCL (core/nccl.h) when built with it
// and stages them through host memory otherwise, and a single-process one.
//
// Every collective must be entered by every rank in the same order with tensors of the same
// shape and dtype. Each communicator counts its collectives and keeps the last one (sequence
// number, kind, shape, dtype), so an error report can say where the failing rank was.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/torch_fwd.h"

namespace oodt {

enum class ReduceOp { Sum, Max, Min };

// What this thread is doing, for the collective ledger: nested scopes joined by " / ", e.g.
// "step 12 / after_backward / <plugin>". Set by the trainer and the plugin engine.
class CollectiveContext {
 public:
  explicit CollectiveContext(std::string what);
  ~CollectiveContext();
  CollectiveContext(const CollectiveContext&) = delete;
  CollectiveContext& operator=(const CollectiveContext&) = delete;
  static std::string current();
};

// The watchdog's side channel: ranks ask each other where they are, off the communicator's
// own collectives, from the watchdog thread (which needs MPI_THREAD_MULTIPLE).
class PeerProbe {
 public:
  virtual ~PeerProbe() = default;
  // Answers whatever peers asked since the last call with `status` (never blocks).
  virtual void answer(const std::string& status) = 0;
  // Asks every other rank where it is and waits at most `seconds` (answering peers meanwhile):
  // [rank] its answer, or "" for a rank that did not answer (this rank's own entry is empty).
  virtual std::vector<std::string> ask(const std::string& status, double seconds) = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Rank and count among the processes on this node (from a shared-memory split, not from
  // environment variables).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string backend() const = 0;

  // In-place reduction of a contiguous tensor; every rank ends with the result. float16 and
  // bfloat16 are summed through float32 element by element (compressed gradients).
  virtual void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // The same, for a communication thread that shares its core with compute: it waits by
  // polling with short sleeps instead of spinning, so backward keeps the core meanwhile.
  // Only one thread may be inside a collective at a time (MPI_THREAD_SERIALIZED).
  virtual void all_reduce_background(at::Tensor& t, ReduceOp op = ReduceOp::Sum) { all_reduce(t, op); }
  // In-place broadcast of a contiguous tensor from `root`.
  virtual void broadcast(at::Tensor& t, int root = 0) = 0;
  // Gathers equal-shaped tensors: the result has a new leading dimension [world_size].
  virtual at::Tensor all_gather(const at::Tensor& t) = 0;
  virtual void barrier() = 0;
  // Ends the whole job (every rank) with `code`. Used when one rank fails mid-run.
  [[noreturn]] virtual void abort(int code) = 0;
  // A communicator over the ranks that pass the same `color` (a collective of this one),
  // ordered by `key` and then by rank. Used for groups of ranks that train one model each.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // The watchdog's side channel (a collective to create), or nullptr where the backend has
  // none (one process; MPI without MPI_THREAD_MULTIPLE).
  virtual std::unique_ptr<PeerProbe> make_peer_probe() const { return nullptr; }

  // Convenience reductions of scalars (one collective each).
  double all_reduce_scalar(double v, ReduceOp op = ReduceOp::Sum);
  // True on every rank when `flag` is true on any rank.
  bool any(bool flag) { return all_reduce_scalar(flag ? 1.0 : 0.0, ReduceOp::Max) > 0.5; }

  // Number of collectives entered so far on this rank, and a description of the last one.
  uint64_t sequence() const { return sequence_; }
  std::string last_collective() const;
  // The ledger: the last collectives this rank entered, oldest first ("#seq kind shape dtype
  // [context]"), and how long the one in progress has been waiting (0 when none is).
  std::vector<std::string> ledger() const;
  double in_flight_seconds() const;
  // Payload bytes this rank has passed to collectives so far (what benchmarks compare).
  uint64_t bytes() const { return bytes_; }

 protected:
  // Called on entering a collective; the returned guard marks its end.
  struct InFlight {
    Communicator* comm;
    ~InFlight() { comm->in_flight_since_ns_.store(0); }
  };
  [[nodiscard]] InFlight record(const char* what, const at::Tensor& t);

 private:
  static constexpr size_t kLedger = 16;
  uint64_t sequence_ = 0;
  uint64_t bytes_ = 0;
  // Kept raw and formatted only when read: a collective on the hot path pays for copying a few
  // numbers and its context, not for printing them.
  struct Entry {
    uint64_t sequence = 0;
    const char* what = "";
    bool has_tensor = false;
    std::vector<int64_t> sizes;
    at::ScalarType dtype = at::kFloat;
    std::string context;
  };
  static std::string format(const Entry& e);
  mutable std::mutex ledger_mu_;  // the watchdog thread reads the ledger
  std::deque<Entry> ledger_;
  std::atomic<int64_t> in_flight_since_ns_{0};
};

// A thread that ends the job when a collective has waited longer than `timeout_seconds` on
// this rank (a peer died without taking the job down, or ranks entered different
// collectives): it asks every other rank where it is (PeerProbe), prints that and this rank's
// ledger to stderr, naming the ranks that did not answer (stopped, hung outside a collective,
// or gone), gives the other ranks a few seconds to do the same, then exits with code 3 (the
// launcher then ends the job). Created on every rank together (a collective).
class Watchdog {
 public:
  Watchdog(const Communicator& comm, double timeout_seconds);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  const Communicator& comm_;
  double timeout_;
  std::unique_ptr<PeerProbe> probe_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A single process: collectives are identities.
std::unique_ptr<Communicator> make_local_communicator();

// MPI over MPI_COMM_WORLD; initialises MPI if needed and finalises it on destruction.
// Returns a local communicator when the world has one rank.
std::unique_ptr<Communicator> make_communicator();

}  // namespace oodt
