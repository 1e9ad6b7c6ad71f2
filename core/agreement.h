#pragma once
// The step agreement: every rank's local flags for one step (a non-finite value found, a stop
// signal received, whatever a plugin adds), agreed in one all-reduce (max) before the update,
// so every rank takes the same decision at the same step. One collective per step, however
// many flags there are.
#include <string>
#include <vector>

namespace oodt {

class Communicator;

class StepAgreement {
 public:
  // Registers a flag (before training starts, the same on every rank) and returns its index.
  int add(const std::string& name);
  // This rank's value for the flag this step: the largest raised since the last agreement
  // counts (values are >= 0; 0 means not raised).
  void raise(int flag, double value = 1.0);
  // The collective: afterwards value(flag) is the largest any rank raised; the local values
  // start again from 0.
  void agree(Communicator& comm);
  double value(int flag) const { return agreed_.at(static_cast<size_t>(flag)); }
  bool raised(int flag) const { return value(flag) > 0; }

 private:
  std::vector<std::string> names_;
  std::vector<double> local_, agreed_;
};

}  // namespace oodt
