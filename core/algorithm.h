#pragma once
// The algorithm plugin interface. A plugin overrides only what it needs:
//   prepare_model()  once, when the trainer is built, before the optimizer exists and before
//              the model moves to its device: module surgery (core/models/layer.h), the only
//              way a plugin changes what the model computes;
//   hooks()    the phases it runs in, each with its handler: what a plugin declares is by
//              construction what it handles;
//   active()   whether its hooks run now (e.g. only during the first 90% of steps);
//   claims()   resources it must own alone: two plugins claiming the same one is a config
//              error at start-up naming both;
//   capabilities()  typed facts the trainer plans around (see Capabilities);
//   save()/load()   its own state, stored in checkpoints under /plugins/<name>/.
// And, where it needs one, an optional interface below (each an implicit claim): it owns the
// averaging strategy, deals the training batches, or predicts at evaluation.
//
// Plugins talk to other ranks only through state.comm. Extra forward/backward passes a plugin
// runs never synchronise: averaging happens only in the averaging phase.
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/phase.h"
#include "core/state.h"

namespace oodt {

class AveragingStrategy;
class BucketHook;

// What a plugin may own alone.
enum class Claim {
  Averaging,            // how ranks are reconciled (AveragingOwner)
  Batches,              // where training batches come from (BatchDealer)
  Prediction,           // what evaluation scores (EvaluationPredictor)
  GradientCompression,  // what happens to gradient buckets in transit (BucketHookProvider)
  LearningRate,         // the step's learning rate
  SecondPass,           // the gradients of the step, from an extra forward/backward pass
  BatchNormStatistics,  // how BatchNorm layers compute their statistics
  Attention,            // how attention layers attend
  LayerPrecision,       // the arithmetic of conv/linear layers (learned low-bit weights and inputs)
  HeadSamples,          // how many predictions the head makes per input in training
};
const char* claim_name(Claim c);

struct Capabilities {
  // Swaps layers of the model for its own in prepare_model (module surgery). The engine checks
  // that a plugin without it leaves the model's modules as they were.
  bool swaps_layers = false;
  // Changes the step's gradients between backward and averaging (a second pass, a flatness
  // term, a mask): the trainer then waits for the whole gradient before any of it is sent (no
  // overlap with backward, no division by the world size inside backward) and refuses
  // micro-batches. A plugin hooking after_backward or before_averaging must say so.
  bool rewrites_gradients_after_backward = false;
  // Why the plugin cannot train under train.precision bf16 or fp16 (its passes under autocast,
  // fp16's loss scale on every gradient until the step agreement: core/precision.h); empty when
  // it can. The trainer then refuses such a run at set-up, with this reason.
  std::string reduced_precision_refusal;

  static Capabilities swapping_layers() {
    Capabilities c;
    c.swaps_layers = true;
    return c;
  }
  static Capabilities rewriting_gradients(bool rewrites = true) {
    Capabilities c;
    c.rewrites_gradients_after_backward = rewrites;
    return c;
  }
};

// A plugin's phase handlers, filled by Algorithm::hooks().
class HookTable {
 public:
  using Handler = std::function<void(State&)>;
  // `fn` runs in `phase`; a phase takes one handler per plugin.
  HookTable& on(Phase phase, Handler fn);
  const Handler& at(Phase phase) const { return handlers_[static_cast<size_t>(phase)]; }
  bool hooks(Phase phase) const { return static_cast<bool>(at(phase)); }

 private:
  std::array<Handler, kNumPhases> handlers_;
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  // "algorithms.<name>", the config key errors name.
  std::string key() const { return "algorithms." + name_; }

  virtual void prepare_model(State&) {}
  virtual void hooks(HookTable& table) = 0;
  virtual bool active(const State&) const { return true; }
  virtual std::vector<Claim> claims() const { return {}; }
  virtual Capabilities capabilities() const { return {}; }
  virtual void save(TensorMap&) const {}
  virtual void load(const TensorMap&) {}

 private:
  std::string name_;
};

// Replaces the per-step gradient all-reduce with another way of reconciling ranks (parameter
// averaging every K steps, one model per group of ranks). The plugin and the trainer share
// the strategy.
class AveragingOwner {
 public:
  virtual ~AveragingOwner() = default;
  virtual std::shared_ptr<AveragingStrategy> averaging() = 0;
};

// Deals every step's training batch itself (federated clients), instead of the data source.
// Called at the start of the step, before any phase.
class BatchDealer {
 public:
  virtual ~BatchDealer() = default;
  virtual Batch train_batch(State& state) = 0;
};

// Replaces model(x) at evaluation (a self-ensemble of stochastic passes, say): every
// evaluation during training and of the merged models plugins make scores this.
class EvaluationPredictor {
 public:
  virtual ~EvaluationPredictor() = default;
  virtual at::Tensor predict(Model& model, const at::Tensor& inputs) = 0;
};

// Decides what happens to each gradient bucket in transit (dist.compress's place): a plugin's
// own compression.
class BucketHookProvider {
 public:
  virtual ~BucketHookProvider() = default;
  virtual std::unique_ptr<BucketHook> bucket_hook() = 0;
};

}  // namespace oodt
