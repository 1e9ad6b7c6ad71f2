#pragma once
// Trains a configuration in this process, one step at a time and without MPI, recording every
// step's loss and the final evaluation: for tests that compare two ways of running the same
// training (memory formats, devices, precisions).
#include <string>
#include <vector>

#include "core/evaluate.h"

namespace oodt::test {

struct StepLosses {
  std::vector<double> loss;           // [step] the step's training loss
  std::vector<SplitMetrics> metrics;  // the evaluation after the last step
  bool channels_last = false;         // the trained model's weights were channels_last
};

// `yaml` is a whole config (or "" for none); `config_file` is merged first when not empty,
// `sets` (`key=value`) last. run.dir is a fresh temporary folder.
StepLosses train_steps(const std::string& config_file, const std::string& yaml, const std::vector<std::string>& sets);

}  // namespace oodt::test
