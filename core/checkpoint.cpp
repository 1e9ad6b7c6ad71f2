// The model side of checkpoints: named state of modules, loading it back, prefixes.
#include "core/checkpoint.h"

#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

TensorMap module_state(const torch::nn::Module& module) {
  TensorMap m;
  for (const auto& kv : module.named_parameters()) m[kv.key()] = kv.value();
  for (const auto& kv : module.named_buffers()) m[kv.key()] = kv.value();
  return m;
}

TensorMap with_prefix(const TensorMap& m, const std::string& prefix) {
  TensorMap out;
  for (auto it = m.lower_bound(prefix); it != m.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
    out[it->first.substr(prefix.size())] = it->second;
  return out;
}

void load_module_state(torch::nn::Module& module, const TensorMap& state, const std::string& source,
                       const std::set<std::string>& may_be_missing) {
  TensorMap own = module_state(module);
  std::vector<std::string> problems;
  for (const auto& [name, t] : own) {
    auto it = state.find(name);
    if (it == state.end()) {
      if (!may_be_missing.count(name)) problems.push_back(concat("missing '", name, "'"));
    }
    else if (it->second.sizes() != t.sizes())
      problems.push_back(concat("'", name, "' has shape ", it->second.sizes(), ", the model expects ", t.sizes()));
  }
  for (const auto& [name, t] : state)
    if (!own.count(name)) problems.push_back(concat("unexpected '", name, "'"));
  if (!problems.empty()) {
    std::string msg;
    for (size_t i = 0; i < problems.size() && i < 5; ++i) msg += "\n  " + problems[i];
    if (problems.size() > 5) msg += concat("\n  ... and ", problems.size() - 5, " more");
    throw DataError(concat(source, ": model state does not match the configured model:", msg));
  }
  at::NoGradGuard no_grad;
  for (auto& [name, t] : own)
    if (auto it = state.find(name); it != state.end()) t.copy_(it->second);
}

const char* git_revision();  // generated at build time (cmake/OodtVersion.cmake)

Checkpoint weights_checkpoint(const State& state, const std::string& origin) {
  Checkpoint ck;
  ck.step = state.step;
  ck.epoch = state.epoch;
  ck.world_size = state.comm ? state.comm->world_size() : 1;
  ck.seed = static_cast<int64_t>(state.seed);
  ck.config = state.config;
  ck.git_revision = git_revision();
  ck.init_from = origin.empty() ? state.init_from : origin;
  ck.model = module_state(*state.model);
  return ck;
}

}  // namespace oodt
