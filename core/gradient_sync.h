#pragma once
// The one gradient all-reduce engine: the mean of a set of parameters' gradients over a
// communicator (all ranks, or a group of them), in flat buckets planned once (core/buckets.h),
// optionally overlapped with backward, with a replaceable per-bucket hook deciding what goes
// over the wire (as c10d's communication hooks do). Every averaging strategy that averages
// gradients uses it, so `dist.*` reaches them all.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/buckets.h"
#include "core/torch_fwd.h"

namespace torch::autograd {
struct Node;
}

namespace oodt {

class Communicator;
class CommThread;
class ConfigReader;

// What happens to one bucket of gradients (already divided by the world size) in transit:
// `encode` gives the tensor whose sum over the ranks is taken (the bucket itself, or a
// compressed copy), `decode` writes that sum back into the bucket. Both run on the main thread;
// only the collective itself runs on the communication thread.
class BucketHook {
 public:
  virtual ~BucketHook() = default;
  virtual std::string name() const = 0;
  virtual at::Tensor encode(const at::Tensor& bucket) = 0;
  virtual void decode(const at::Tensor& wire, at::Tensor& bucket) = 0;
};

// dist.compress: float32 as is, or rounded to float16 / bfloat16 (half the bytes; the error
// is measured in tests/dist).
enum class GradCompression { None, Fp16, Bf16 };
std::unique_ptr<BucketHook> make_bucket_hook(GradCompression compression);

// The `dist` section.
struct DistOptions {
  double bucket_mb = 25.0;    // gradient all-reduce bucket size
  double in_place_mb = 0.25;  // gradients at least this large are reduced without a bucket
  double timeout_s = 60;      // watchdog: a collective waiting longer ends the job (0: off)
  // All-reduce buckets during backward. auto: with CUDA tensors or ranks on several nodes; not
  // for CPU tensors on one node, where shared-memory MPI moves the bytes with the cores that
  // compute, so there is nothing to overlap with (measured: docs/performance.md).
  enum class Overlap { Auto, On, Off } overlap = Overlap::Auto;
  GradCompression compress = GradCompression::None;

  int64_t bucket_bytes() const { return static_cast<int64_t>(bucket_mb * 1024 * 1024); }
  static DistOptions from_config(ConfigReader& dist);
};

struct GradientSyncOptions {
  BucketLimits limits{int64_t{25} << 20, int64_t{1} << 20, int64_t{256} << 10};
  // All-reduce each bucket on a communication thread (or, for CUDA tensors, launch it
  // asynchronously) as soon as backward has filled it. Only when the gradients are final when
  // backward ends; the trainer decides (Capabilities::rewrites_gradients_after_backward).
  bool overlap = false;
  // The trainer seeds backward with 1 / ranks (backward_scale), so gradients arrive already
  // divided. Under the same condition as overlap.
  bool prescale = false;
};

// Averages gradients in buckets planned in reverse parameter order (the order backward
// produces them).
//  - A large gradient (limits.in_place_bytes) is a bucket of its own, summed where it lies.
//  - Smaller ones are copied into a flat bucket once; the bucket is summed in place, and then
//    every such parameter's gradient *is* its slice of the bucket (a view: nothing is copied
//    back). Such a gradient is valid until the next step's backward refills the bucket: code
//    that keeps a gradient across steps must clone it.
// With overlap, a hook runs after autograd has accumulated each parameter's gradient (on its
// AccumulateGrad node, as PyTorch's DDP reducer does), so the gradient is final, micro-batches
// included; a full bucket is handed to the communication thread at once, buckets always in
// the same order on every rank. The main thread reduces the last bucket itself in finish().
// After the first overlapped step the buckets are re-planned in the order the hooks fired on
// rank 0 (kept in checkpoints, so a resumed run uses the same buckets).
class GradientSync {
 public:
  GradientSync(GradientSyncOptions options, std::unique_ptr<BucketHook> hook);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Plans the buckets of `model`'s trainable parameters over `comm` (which must outlive this
  // object) and, with overlap, arms the gradient hooks. Once.
  void setup(torch::nn::Module& model, Communicator& comm);
  // Right before the step's last backward (not before plugins' extra passes).
  void begin_backward();
  // The factor for the seed of backward: 1 / ranks when prescaling, else 1.
  double backward_scale() const;
  // After backward: every parameter's gradient holds the mean over the ranks.
  void finish();

  size_t num_buckets() const { return buckets_.size(); }
  bool overlapping() const { return thread_ != nullptr || inline_launch_; }
  void save(TensorMap& out) const;  // the bucket order
  void load(const TensorMap& in);

  // Since the last call: seconds the communication thread spent in collectives, and seconds
  // the main thread waited for it in finish() (hidden share = 1 - wait / comm).
  struct Stats {
    double comm_seconds = 0, wait_seconds = 0;
    int64_t steps = 0;
  };
  Stats take_stats();

 private:
  struct Bucket {
    std::vector<size_t> members;    // indices into params_
    bool in_place = false;          // one large gradient, reduced where it lies
    std::vector<at::Tensor> slots;  // per member: its slice of buffer, shaped like the parameter
    at::Tensor buffer;              // flat; in place: this step's gradient, flattened
    at::Tensor wire;                // what is reduced: hook_->encode(buffer)
    size_t pending = 0;             // members not yet filled this step
  };
  void plan(const std::vector<size_t>& order);
  void on_grad(size_t i);
  void fill(size_t i);
  void launch_ready();
  void reset_step();

  GradientSyncOptions options_;
  std::unique_ptr<BucketHook> hook_;
  Communicator* comm_ = nullptr;
  std::vector<at::Tensor> params_;  // requires_grad, reverse registration order
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive with our hooks
  std::vector<uintptr_t> hook_keys_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;
  std::vector<char> filled_;
  std::vector<size_t> observed_;  // hook order in the first overlapped step
  std::vector<int64_t> order_;    // current plan's parameter order
  bool armed_ = false, rebuilt_ = false, inline_launch_ = false;
  size_t next_launch_ = 0;
  std::unique_ptr<CommThread> thread_;
  Stats stats_;
};

}  // namespace oodt
