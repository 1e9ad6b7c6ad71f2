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

namespace oodt {

class Communicator;

class AveragingStrategy {
 public:
  virtual ~AveragingStrategy() = default;
  virtual std::string name() const = 0;
  // Once at fit start, after plugins' fit_start hooks: every rank must then hold the same
  // model. The default broadcasts rank 0's parameters and buffers.
  virtual void setup(State& state);
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

// The default: mean of gradients across ranks after every backward pass, in buckets filled in
// reverse parameter order (the order backward produces them, so a later overlap of
// communication with backward keeps the same buckets).
class GradientAllReduce final : public AveragingStrategy {
 public:
  explicit GradientAllReduce(int64_t bucket_bytes) : bucket_bytes_(bucket_bytes), bucketer_(bucket_bytes) {}
  std::string name() const override { return "gradient_all_reduce"; }
  void setup(State& state) override;
  void average(State& state) override;
  size_t num_buckets() const { return bucketer_.num_buckets(); }

 private:
  int64_t bucket_bytes_;
  Bucketer bucketer_;
};

}  // namespace oodt
