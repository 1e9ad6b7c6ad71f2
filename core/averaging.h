#pragma once
// How ranks are reconciled: exactly one strategy per run. The default averages gradients every
// step (GradientAllReduce); a plugin may replace it by owning averaging (AveragingOwner in
// core/algorithm.h): parameter averaging every K steps, one model per group of ranks, ...
#include <memory>
#include <string>
#include <vector>

#include "core/gradient_sync.h"
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

// The default: the mean of gradients over all ranks every step (core/gradient_sync.h).
class GradientAllReduce final : public AveragingStrategy {
 public:
  std::string name() const override { return "gradient_all_reduce"; }
  // Broadcasts rank 0's weights, then plans the buckets.
  void setup(State& state) override;
  void begin_backward(State&) override { sync_->begin_backward(); }
  double backward_scale() const override { return sync_ ? sync_->backward_scale() : 1.0; }
  void average(State&) override { sync_->finish(); }
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override { pending_ = in; }
  GradientSync& sync() { return *sync_; }

 private:
  std::unique_ptr<GradientSync> sync_;
  TensorMap pending_;  // from load(), applied by setup()
};

// A gradient sync engine as the run configures them (state.gradient_sync, state.bucket_hook).
std::unique_ptr<GradientSync> make_gradient_sync(const State& state);

// Every rank's map, on rank 0 ([rank]; empty elsewhere); the maps may differ in names, shapes
// and dtypes. For state that differs between ranks (a client's, one group's model)
// to reach the checkpoint rank 0 writes. Sent one rank at a time in chunks of at most 256 MiB,
// so no rank holds more than its own map and one other, and no MPI call exceeds its count limit.
std::vector<TensorMap> gather_maps_to_root(Communicator& comm, const TensorMap& mine);

}  // namespace oodt
