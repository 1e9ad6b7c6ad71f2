// oodtrain: one binary, subcommands.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <torch/version.h>

#include "core/config.h"
#include "core/error.h"
#include "core/trainer.h"
#include "launch/commands.h"

namespace {

constexpr const char* kUsage = R"(oodtrain - data-parallel training for out-of-distribution robust deep learning

usage: oodtrain <command> [options]
       mpirun -np N oodtrain train -c config.yaml [--set key=value ...]

commands:
  train             train a model (one process or N ranks under mpirun / srun)
  data prepare      build an OOD benchmark file (rotated-fmnist, colored-fmnist) as HDF5
  list-algorithms   list the algorithm plugins with the phases they hook
  soup              uniform or greedy model soup of checkpoints, scored on validation data
  eval              score checkpoints per domain and split (on their training data or -c data.yaml)
  interpolate       WiSE-FT: accuracy of (1-a)*theta_0 + a*theta_1 over a, as CSV and a figure
  export            --quantized: integer weights and step sizes of an LSQ-trained checkpoint
  sweep             plan | run | status | slurm of an ablation sweep (grid/random axes, seeds, held-out domains)
  collect           sweep results as a table per held-out domain, with DomainBed's model selection
  weights           import pretrained weights (torchvision, timm, open_clip; safetensors or .pt) as a
                    checkpoint for --init-from, or export a checkpoint in their names

options:
  -h, --help        this help; `oodtrain <command> --help` for a command's options
  --version         version, git revision and the LibTorch it was built against

docs: docs/cli.md, docs/config.md, docs/architecture.md
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  oodt::Args rest(argv + 2, argv + argc);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::printf("oodtrain %s (git %s)\nLibTorch %s\n", oodt::oodt_version(), oodt::git_revision(), TORCH_VERSION);
    return 0;
  }
  try {
    if (cmd == "train") return oodt::cmd_train(rest);
    if (cmd == "data") return oodt::cmd_data(rest);
    if (cmd == "list-algorithms") return oodt::cmd_list_algorithms(rest);
    if (cmd == "interpolate") return oodt::cmd_interpolate(rest);
    if (cmd == "soup") return oodt::cmd_soup(rest);
    if (cmd == "export") return oodt::cmd_export(rest);
    if (cmd == "sweep") return oodt::cmd_sweep(rest);
    if (cmd == "collect") return oodt::cmd_collect(rest);
    if (cmd == "eval") return oodt::cmd_eval(rest);
    if (cmd == "weights") return oodt::cmd_weights(rest);
  } catch (const oodt::ConfigError& e) {
    std::fprintf(stderr, "oodtrain: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "oodtrain: error: %s\n", e.what());
    return 1;
  }
  const std::string hint = oodt::nearest(cmd, {"train", "data", "list-algorithms", "interpolate", "soup", "export", "sweep", "collect", "eval", "weights", "--help", "--version"});
  std::fprintf(stderr, "oodtrain: unknown command '%s'%s\nrun `oodtrain --help` for the list of commands\n",
               cmd.c_str(), hint.empty() ? "" : (" (did you mean '" + hint + "'?)").c_str());
  return 2;
}
