// `oodtrain data prepare <name> --out DIR` and `oodtrain data import ROOT --out FILE`
#include <cstdio>

#include "core/config.h"
#include "core/error.h"
#include "data/prepare.h"
#include "data/image_import.h"
#include "launch/cli.h"

namespace oodt {

namespace {

int data_import(const Args& args) {
  ImportOptions o;
  std::string decode;
  po::options_description desc("data import options");
  desc.add_options()
      ("source", po::value(&o.source)->required(),
       "a folder in DomainBed's layout (ROOT/<domain>/<class>/<image>) or a manifest .csv (path,label,domain[,split])")
      ("out,o", po::value(&o.out)->required(), "HDF5 file to write")
      ("name", po::value(&o.name), "check the layout against a DomainBed dataset: pacs | vlcs | officehome | "
                                    "terraincognita | domainnet (recognised by its domain folders otherwise)")
      ("root", po::value(&o.root), "manifest: folder the relative paths start from (default: the manifest's)")
      ("decode", po::value(&decode), "store decoded 8-bit RGB resized to HxW (e.g. 224x224) instead of the encoded files")
      ("threads", po::value(&o.threads)->default_value(0), "decoding threads (0: every core)")
      ("skip-bad", "skip unreadable images and empty class folders (listed) instead of failing")
      ("allow-missing-classes", "domains may lack some class folders (the union of the names is used)")
      ("quiet", "no progress line");
  po::positional_options_description pos;
  pos.add("source", 1);
  po::variables_map vm;
  if (!parse_args("data import", "data import ROOT_OR_MANIFEST --out data.h5 [--decode 224x224]", args, desc, vm, &pos))
    return 0;
  o.skip_bad = vm.count("skip-bad") > 0;
  o.allow_missing_classes = vm.count("allow-missing-classes") > 0;
  o.progress = !vm.count("quiet");
  if (!decode.empty()) {
    const auto x = decode.find('x');
    try {
      if (x == std::string::npos) throw std::invalid_argument("no x");
      size_t used = 0;
      o.decode_h = std::stoll(decode.substr(0, x), &used);
      if (used != x) throw std::invalid_argument("h");
      o.decode_w = std::stoll(decode.substr(x + 1), &used);
      if (used != decode.size() - x - 1) throw std::invalid_argument("w");
    } catch (const std::exception&) {
      throw ConfigError("--decode", concat("'", decode, "' is not HxW (e.g. 224x224)"));
    }
  }
  const ImportReport r = import_images(o);
  std::printf("imported %lld images: %zu domains (%s), %zu classes%s\n", static_cast<long long>(r.images), r.domains.size(),
              [&] { std::string s; for (const auto& d : r.domains) s += (s.empty() ? "" : ", ") + d; return s; }().c_str(),
              r.classes.size(), r.dataset.empty() ? "" : (" (layout: " + r.dataset + ")").c_str());
  std::printf("read %.1f MB, wrote %.1f MB to %s in %.1f s (%.0f images/s)\n", static_cast<double>(r.bytes_read) / 1e6,
              static_cast<double>(r.bytes_written) / 1e6, o.out.c_str(), r.seconds,
              static_cast<double>(r.images) / std::max(1e-9, r.seconds));
  for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
  auto show = [](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    std::printf("%s %zu:\n", what, v.size());
    for (size_t i = 0; i < v.size() && i < 20; ++i) std::printf("  %s\n", v[i].c_str());
    if (v.size() > 20) std::printf("  ... and %zu more\n", v.size() - 20);
  };
  show("skipped (unreadable)", r.skipped);
  show("ignored (not .jpg/.jpeg/.png)", r.ignored);
  return 0;
}

}  // namespace

int cmd_data(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("usage: oodtrain data prepare <%s> --out DIR [options]\n"
                "       oodtrain data import ROOT_OR_MANIFEST --out FILE.h5 [--decode HxW] [options]\n",
                "rotated-fmnist|colored-fmnist");
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "import") return data_import(Args(args.begin() + 1, args.end()));
  if (args[0] != "prepare")
    throw ConfigError("", concat("oodtrain data: unknown action '", args[0], "' (known: prepare, import)"));
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
