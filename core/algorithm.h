#pragma once
// The algorithm plugin interface. A plugin overrides only what it needs:
//   prepare_model()  once, when the trainer is built and before the optimizer exists: the
//              place for model surgery that adds parameters (quantizer steps);
//   hooks()    the phases it runs in (fixed);
//   active()   whether it runs now (e.g. only during the first 90% of steps);
//   run()      what it does in a phase;
//   claims()   resources it must own alone (two plugins claiming the same one is a config
//              error at start-up, before step 1);
//   owns_averaging()/make_averaging()  replace the per-step gradient all-reduce with another
//              way of reconciling ranks (an implicit claim on "averaging");
//   provides_batches()/train_batch()  deal the training data itself (federated clients): the
//              trainer then takes every step's batch from it (an implicit claim on "batches");
//   save()/load()     its own state, stored in checkpoints under /plugins/<name>/.
// Plugins talk to other ranks only through state.comm. Extra forward/backward passes a plugin
// runs never synchronise: averaging happens only in the averaging phase.
#include <memory>
#include <string>
#include <vector>

#include "core/averaging.h"
#include "core/phase.h"
#include "core/state.h"

namespace oodt {

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  virtual void prepare_model(Model&) {}
  virtual PhaseSet hooks() const = 0;
  virtual bool active(const State&) const { return true; }
  virtual void run(Phase phase, State& state) = 0;

  virtual std::vector<std::string> claims() const { return {}; }
  virtual bool owns_averaging() const { return false; }
  virtual std::unique_ptr<AveragingStrategy> make_averaging() { return nullptr; }
  // Called at the start of every step, before any phase, when provides_batches().
  virtual bool provides_batches() const { return false; }
  virtual Batch train_batch(State&) { return {}; }

  virtual void save(TensorMap&) const {}
  virtual void load(const TensorMap&) {}

 private:
  std::string name_;
};

}  // namespace oodt
