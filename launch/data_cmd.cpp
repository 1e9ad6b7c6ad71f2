// `oodtrain data prepare <name> --out DIR`
#include <cstdio>

#include "core/config.h"
#include "core/error.h"
#include "data/prepare.h"
#include "launch/cli.h"

namespace oodt {

int cmd_data(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("usage: oodtrain data prepare <%s> --out DIR [options]\n", "rotated-fmnist|colored-fmnist");
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "prepare") throw ConfigError("", concat("oodtrain data: unknown action '", args[0], "' (known: prepare)"));
  PrepareOptions o;
  std::string name;
  int64_t seed = 0;
  po::options_description desc("data prepare options");
  desc.add_options()
      ("name", po::value(&name)->required(), "dataset: rotated-fmnist | colored-fmnist")
      ("out,o", po::value(&o.out_dir)->default_value(o.out_dir), "output folder")
      ("source", po::value(&o.source)->default_value(o.source), "folder with Fashion-MNIST's IDX files")
      ("seed", po::value(&seed)->default_value(0), "seed of the pooling shuffle and label noise")
      ("max-samples", po::value(&o.max_samples)->default_value(0), "use only this many samples (0: all)");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_args("data prepare", "data prepare <rotated-fmnist|colored-fmnist> --out DIR", Args(args.begin() + 1, args.end()),
                  desc, vm, &pos))
    return 0;
  o.seed = static_cast<uint64_t>(seed);
  const auto names = prepare_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    const std::string hint = nearest(name, names);
    throw ConfigError("", concat("oodtrain data prepare: unknown dataset '", name, "' (known: rotated-fmnist, colored-fmnist)",
                              hint.empty() ? "" : concat("; did you mean '", hint, "'?")));
  }
  const std::string path = prepare_dataset(name, o);
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

}  // namespace oodt
