#pragma once
// How ranks are reconciled: exactly one strategy per run. The default averages gradients every
// step with bucketed all-reduce; plugins may replace it (parameter averaging every K steps,
// one soup candidate per rank, ...) by owning averaging.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/state.h"

namespace torch::autograd {
struct Node;
}

namespace oodt {

class Communicator;

class AveragingStrategy {
 public:
  virtual ~AveragingStrategy() = default;
  virtual std::string name() const = 0;
  // Once at fit start, after plugins' fit_start hooks: every rank must then hold the same
  // model. The default broadcasts rank 0's parameters and buffers.
  virtual void setup(State& state);
  // Once per step, right before the trainer's backward pass of the step's last micro-batch
  // (not before plugins' extra passes): a strategy that communicates during backward arms
  // its gradient hooks here.
  virtual void begin_backward(State&) {}
  // The factor the trainer multiplies into every loss it backpropagates in a step. A strategy
  // that averages by summing can have backward divide by the world size for free (the seed of
  // backward is one scalar) instead of spending a pass over every gradient.
  virtual double backward_scale() const { return 1.0; }
  // Once per step, between backward and the optimizer step.
  virtual void average(State& state) = 0;
  // Before every evaluation and checkpoint: makes buffers that ranks update from their own
  // data (BatchNorm running statistics) equal on every rank. The default copies rank 0's, as
  // PyTorch DDP does: averaging would be as good statistically, but rank 0's copy keeps a
  // resumed run bit-identical to an uninterrupted one (rank 0's buffers never change here).
  virtual void sync_buffers(State& state);
  // The ranks that hold the model being evaluated, which share the evaluation data: all of
  // them, unless ranks train different models.
  virtual Communicator& evaluation_comm(State& state);
  // Before every checkpoint, on every rank (a collective if it needs one): gathers what save()
  // writes on rank 0, e.g. state that differs between ranks.
  virtual void prepare_save(State&) {}
  virtual void save(TensorMap&) const {}
  virtual void load(const TensorMap&) {}
};

// Copies rank `root`'s parameters and buffers to every rank (bucketed broadcasts).
void broadcast_module(torch::nn::Module& module, Communicator& comm, int64_t bucket_bytes, int root = 0);
// Copies rank `root`'s tensors into every rank's (same names, shapes and dtypes everywhere).
void broadcast_tensors(const std::vector<at::Tensor>& tensors, Communicator& comm, int root,
                       int64_t bucket_bytes = 25 << 20);

// Groups tensors into flat buckets of at most `bucket_bytes` (a tensor larger than that gets a
// bucket of its own), keeping order and never mixing dtypes or devices; each bucket is copied
// into one buffer, handed to `reduce`, and copied back.
// Every rank's map, on rank 0 ([rank]; empty elsewhere); the maps may differ in names, shapes
// and dtypes. For state that differs between ranks (a federated client's, a soup candidate's)
// to reach the checkpoint rank 0 writes. Sent one rank at a time in chunks of at most 256 MiB,
// so no rank holds more than its own map and one other, and no MPI call exceeds its count limit.
std::vector<TensorMap> gather_maps_to_root(Communicator& comm, const TensorMap& mine);

class Bucketer;
// Mean of the model's gradients over `comm`, bucketed in reverse parameter order.
void all_reduce_gradients(torch::nn::Module& model, Communicator& comm, Bucketer& bucketer);

class Bucketer {
 public:
  explicit Bucketer(int64_t bucket_bytes) : bucket_bytes_(bucket_bytes) {}
  // Plans buckets for `tensors` (re-planned whenever the set of shapes changes).
  void apply(const std::vector<at::Tensor>& tensors, const std::function<void(at::Tensor&)>& reduce);
  size_t num_buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into the tensor list
    at::Tensor buffer;            // flat
  };
  void plan(const std::vector<at::Tensor>& tensors);
  int64_t bucket_bytes_;
  std::vector<std::vector<int64_t>> planned_shapes_;
  std::vector<Bucket> buckets_;
};

enum class GradCompression { None, Fp16, Bf16 };

struct GradientSyncOptions {
  int64_t bucket_bytes = 25 << 20;
  // The first bucket (the last layers' gradients, ready first) is capped smaller, so its
  // all-reduce starts early in backward (as PyTorch DDP does).
  int64_t first_bucket_bytes = 1 << 20;
  // All-reduce each bucket on a communication thread as soon as backward has filled it. Only
  // honoured when the gradients are final when backward ends (no plugin hooks after_backward
  // or before_averaging); the trainer decides.
  bool overlap = true;
  // A gradient of at least this many bytes is reduced where it lies, in a collective of its
  // own: no copy into a bucket and back, for one more collective's latency.
  int64_t in_place_bytes = 256 << 10;
  // The trainer seeds backward with 1/world size (backward_scale), so gradients arrive
  // already divided. Only when the gradients are final when backward ends (as for overlap).
  bool prescale = true;
  // Gradients in transit: float32, or divided by the world size and rounded to float16 /
  // bfloat16 (half the bytes; the error is measured in tests/dist).
  GradCompression compression = GradCompression::None;
};

class CommThread;

// The default: mean of gradients across ranks every step, in buckets planned in reverse
// parameter order (the order backward produces gradients). Gradients arrive divided by the
// world size (backward_scale), or are divided on their way into the bucket.
//  - A large gradient (in_place_bytes) is a bucket of its own, summed where it lies.
//  - Smaller ones are copied into a flat bucket once; the bucket is summed in place, and then
//    every such parameter's gradient *is* its slice of the bucket (a view: nothing is copied
//    back). Such a gradient is valid until the next step's backward refills the bucket: code
//    that keeps a gradient across steps must clone it (the trainer clears gradients at the
//    start of every step).
// With overlap, a hook runs after autograd has accumulated each parameter's gradient (on its
// AccumulateGrad node, as PyTorch's DDP reducer does), so the gradient is final, micro-batches
// included; a full bucket is handed to the communication thread at once (buckets always in
// the same order on every rank, so collectives match). The last bucket is only complete when
// backward ends, so the main thread reduces it itself in average(), after waiting for the
// thread: handing it over would only add a thread switch. After the first overlapped step
// the buckets are re-planned in the order the hooks actually fired on rank 0 (kept in
// checkpoints, so a resumed run uses the same buckets).
class GradientAllReduce final : public AveragingStrategy {
 public:
  explicit GradientAllReduce(GradientSyncOptions options);
  ~GradientAllReduce() override;
  std::string name() const override { return "gradient_all_reduce"; }
  void setup(State& state) override;
  void begin_backward(State& state) override;
  double backward_scale() const override;
  void average(State& state) override;
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override;

  size_t num_buckets() const { return buckets_.size(); }
  bool overlapping() const { return thread_ != nullptr || inline_launch_; }
  // Since the last call: seconds the communication thread spent in collectives, and seconds
  // the main thread waited for it in average() (hidden share = 1 - wait / comm).
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
    at::Tensor wire;                // what is reduced: buffer, or its float16/bfloat16 copy
    size_t pending = 0;             // members not yet filled this step
  };
  void plan(const std::vector<size_t>& order);
  void on_grad(size_t i);
  void fill(size_t i);
  void launch_ready();
  void set_wire(Bucket& b) const;
  void reset_step();

  GradientSyncOptions options_;
  Communicator* comm_ = nullptr;
  std::vector<at::Tensor> params_;  // requires_grad, reverse registration order
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive with our hooks
  std::vector<uintptr_t> hook_keys_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;
  std::vector<char> filled_;
  std::vector<size_t> observed_;     // hook order in the first overlapped step
  std::vector<int64_t> order_;       // current plan's parameter order
  bool armed_ = false, rebuilt_ = false, inline_launch_ = false;
  size_t next_launch_ = 0;
  std::unique_ptr<CommThread> thread_;
  Stats stats_;
};

}  // namespace oodt
