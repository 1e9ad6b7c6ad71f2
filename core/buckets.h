#pragma once
// Flat buckets: the one planner that groups tensors for collectives, and the collectives over
// lists of tensors built on it (broadcasts of weights and buffers, sums of state). Few large
// messages instead of many small ones: each collective pays a latency, and small tensors are
// most of a model's count. The per-step gradient all-reduce (core/gradient_sync.h) plans its
// buckets with the same planner.
#include <cstdint>
#include <functional>
#include <vector>

#include "core/torch_fwd.h"

namespace oodt {

class Communicator;

struct BucketLimits {
  int64_t bucket_bytes = int64_t{25} << 20;  // dist.bucket_mb: most bytes in one bucket
  // A cap on the first bucket (0: bucket_bytes). Gradients of the last layers, ready first,
  // then leave early in backward (as PyTorch DDP does).
  int64_t first_bucket_bytes = 0;
  // Tensors of at least this many bytes form a bucket of their own, used where it lies (no copy
  // in or out) at the price of one more collective (0: never).
  int64_t in_place_bytes = 0;
};

struct BucketSpec {
  std::vector<size_t> members;  // indices into the planned tensor list, in bucket order
  bool in_place = false;        // one tensor, used where it lies
  int64_t numel = 0;            // elements of all members
};

// Buckets for `tensors` taken in `order` (indices; every tensor once): consecutive members of
// one dtype and device, at most the byte limit (a tensor larger than that alone). The same
// inputs give the same plan on every rank.
std::vector<BucketSpec> plan_buckets(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& order,
                                     const BucketLimits& limits);
// The same in list order.
std::vector<BucketSpec> plan_buckets(const std::vector<at::Tensor>& tensors, const BucketLimits& limits);

// Runs `op` (an in-place collective) on `tensors` through buckets: each bucket is copied into
// one flat buffer, `op` runs on it, and the result is copied back; a contiguous tensor larger
// than a bucket is handed over as it is.
void bucketed(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, const std::function<void(at::Tensor&)>& op);

// Copies rank `root`'s tensors into every rank's (same names, shapes and dtypes everywhere).
void broadcast_tensors(const std::vector<at::Tensor>& tensors, Communicator& comm, int root, int64_t bucket_bytes);
// The same for a module's parameters and buffers.
void broadcast_module(torch::nn::Module& module, Communicator& comm, int root, int64_t bucket_bytes);
// The same for a module's buffers only.
void broadcast_buffers(torch::nn::Module& module, Communicator& comm, int root, int64_t bucket_bytes);
// Replaces every tensor by its sum over the ranks (by its mean with `mean`).
void all_reduce_tensors(const std::vector<at::Tensor>& tensors, Communicator& comm, int64_t bucket_bytes,
                        bool mean = false);

}  // namespace oodt
