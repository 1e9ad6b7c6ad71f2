#pragma once
// The `oodtrain` subcommands. Each returns the process exit code:
// 0 success, 1 run-time failure, 2 usage or configuration error.
#include <string>
#include <vector>

#include "core/config.h"

namespace oodt {

using Args = std::vector<std::string>;

int cmd_train(const Args& args);
int cmd_data(const Args& args);
int cmd_list_algorithms(const Args& args);
int cmd_interpolate(const Args& args);
int cmd_soup(const Args& args);
int cmd_export(const Args& args);
int cmd_sweep(const Args& args);
int cmd_collect(const Args& args);
int cmd_eval(const Args& args);
int cmd_weights(const Args& args);

// Validates a training config tree and fills in every default, as `train` does before it
// opens any data (ConfigError on a bad key or value).
void resolve_train_config(ConfigTree& tree);

}  // namespace oodt
