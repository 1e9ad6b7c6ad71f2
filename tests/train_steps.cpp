#include "train_steps.h"

#include "core/comm.h"
#include "core/device_feed.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "launch/setup.h"
#include "test_util.h"

namespace oodt::test {

StepLosses train_steps(const std::string& config_file, const std::string& yaml, const std::vector<std::string>& sets) {
  ConfigTree tree;
  if (!config_file.empty()) tree.merge_file(config_file);
  if (!yaml.empty()) tree.merge(parse_yaml(yaml, "test config"), "test config");
  for (const auto& s : sets) tree.set(s);
  tree.set("run.dir=" + temp_dir("train_steps") + "/run");
  Registry registry;
  register_builtins(registry);
  TrainConfig config = read_train_config(tree, registry);
  config.trainer.verbose = false;
  static const std::unique_ptr<Communicator> comm = make_local_communicator();
  const std::unique_ptr<Trainer> trainer = start_training(config, *comm, StartOptions{});
  StepLosses out;
  for (int64_t k = 1; k <= config.trainer.steps; ++k) {
    FitResult r = trainer->fit(k);  // stops after step k (and writes a checkpoint there)
    out.loss.push_back(trainer->state().loss.item<double>());
    if (k == config.trainer.steps) out.metrics = r.final_metrics;
  }
  out.channels_last = uses_channels_last(trainer->model());
  return out;
}

}  // namespace oodt::test
