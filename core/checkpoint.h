#pragma once
// Checkpoints: one HDF5 file, readable with h5py, and a digest of its bytes beside it.
//   /            attrs: format, format_version (2), step, epoch, world_size, seed, checksum
//                (fixed-length strings and integers: nothing in HDF5's global heap)
//   /meta/{config,git_revision,init_from,created}   uint8 datasets: the resolved YAML, ...
//   /model/<name>         every parameter and buffer, named by module path
//   /optimizer/<key>      optimizer state (see Optimizer::state_dict)
//   /averaging/<key>      averaging-strategy state, if any
//   /plugins/<plugin>/<key>  each plugin's own state
//   /trainer/<key>        the trainer's own (the training-loss window of every rank)
//   /rng/torch_cpu        [world_size, n] uint8: every rank's CPU generator state
//   <path>.sum            the size and a 64-bit digest of the file's bytes
// Written atomically: to `<path>.tmp`, flushed and fsync'ed, renamed over `path`; then the
// sidecar, also atomically. Reading checks the bytes against the sidecar before libhdf5 parses
// anything (a flipped byte can crash libhdf5), then the checksum over the contents and the
// step, epoch and world size. Version-1 checkpoints (no sidecar, strings as attributes) load.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/state.h"

namespace oodt {

struct Checkpoint {
  int64_t step = 0;
  int64_t epoch = 0;
  int64_t world_size = 1;
  int64_t seed = 0;
  std::string config;        // resolved YAML
  std::string git_revision;
  std::string init_from;     // the checkpoint this run's weights started from, if any
  TensorMap model;
  TensorMap optimizer;
  TensorMap averaging;
  std::map<std::string, TensorMap> plugins;
  TensorMap trainer;
  at::Tensor rng;            // [world_size, n] uint8
};

void write_checkpoint(const std::string& path, const Checkpoint& ck);
// Reads and validates a checkpoint; DataError naming the file and the problem otherwise.
Checkpoint read_checkpoint(const std::string& path);

// The checkpoint file name for a step: ckpt_000001234.h5.
std::string checkpoint_name(int64_t step);
// Checkpoints in `dir`, newest (highest step) first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Removes a checkpoint and its sidecar.
void remove_checkpoint(const std::string& path);

// The newest checkpoint in `dir` that reads and verifies; each newer one that does not is
// skipped with the reason (whatever failed: checking, parsing, memory). An empty path when
// none reads.
struct CheckpointChoice {
  std::string path;
  Checkpoint checkpoint;
  std::vector<std::string> skipped;  // why each newer checkpoint was passed over
};
CheckpointChoice newest_readable_checkpoint(const std::string& dir);

// The current weights with the run's metadata and no optimizer or plugin state: what plugins
// export mid-run (one of several models trained at once). `origin` goes to init_from (default: the run's).
Checkpoint weights_checkpoint(const State& state, const std::string& origin = "");

// Copies `state` into `module`'s parameters and buffers; every name must be present with the
// same shape (DataError listing the first mismatches otherwise), except names in
// `may_be_missing`, which keep their value when absent.
void load_module_state(torch::nn::Module& module, const TensorMap& state, const std::string& source,
                       const std::set<std::string>& may_be_missing = {});
TensorMap module_state(const torch::nn::Module& module);

// Entries of `m` whose names start with `prefix`, the prefix removed (namespaced state inside
// one TensorMap, e.g. `rank1.` or `group_2.model.`).
TensorMap with_prefix(const TensorMap& m, const std::string& prefix);

}  // namespace oodt
