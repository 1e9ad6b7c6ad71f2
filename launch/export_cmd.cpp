// `oodtrain export --quantized`: the integer weights and step sizes of an LSQ-trained
// checkpoint, for deployment. A pure checkpoint operation (no model is built).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "algorithms/lsq/lsq.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/h5.h"
#include "launch/cli.h"

namespace oodt {
namespace fs = std::filesystem;

int cmd_export(const Args& args) {
  std::string in, out;
  po::options_description desc("export options");
  desc.add_options()
      ("checkpoint", po::value(&in)->required(), "checkpoint trained with the lsq plugin")
      ("out,o", po::value(&out)->required(), "HDF5 file to write")
      ("quantized", "write integer weights and step sizes (the only format so far)");
  po::positional_options_description pos;
  pos.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args("export", "export --quantized ckpt.h5 --out model_int.h5", args, desc, vm, &pos)) return 0;
  if (!vm.count("quantized")) throw ConfigError("--quantized", "say which export you want: --quantized");
  {
    std::error_code ec;
    if (fs::weakly_canonical(out, ec) == fs::weakly_canonical(in, ec))
      throw ConfigError("--out", concat("'", out, "' is the checkpoint being exported; write the result elsewhere"));
  }
  const Checkpoint ck = read_checkpoint(in);
  // Layout: /layers/<layer>/weight (int8, or int16 above 8 bits) with attributes weight_step,
  // weight_bits, input_step, input_bits, input_signed; /float/<name> every other entry.
  h5::File f = h5::File::create(out + ".tmp");
  f.set_attr("/", "format", std::string("oodtrain-quantized"));
  f.set_attr("/", "source", fs::absolute(in).string());
  f.set_attr("/", "config", ck.config);
  int64_t layers = 0;
  std::set<std::string> used;
  for (const auto& [name, step] : ck.model) {
    const std::string suffix = ".weight_step";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string layer = name.substr(0, name.size() - suffix.size());
    for (const char* k : {".weight", ".weight_bits", ".input_step", ".input_bits", ".input_signed"})
      if (!ck.model.count(layer + k)) throw DataError(concat(in, ": quantizer of '", layer, "' has no '", layer, k, "'"));
    const int64_t bits = ck.model.at(layer + ".weight_bits").item<int64_t>();
    const auto [qn, qp] = lsq_range(bits, /*is_signed=*/true);
    const double s = step.item<double>();
    if (!(s > 0)) throw DataError(concat(in, ": '", name, "' is ", s, "; the quantizer was never initialised"));
    const at::Tensor w = ck.model.at(layer + ".weight");
    const at::Tensor ints = (w.to(at::kDouble) / s).clamp(static_cast<double>(-qn), static_cast<double>(qp)).round();
    const std::string g = "/layers/" + layer;
    f.make_group(g);
    f.write(g + "/weight", ints.to(bits <= 8 ? at::kChar : at::kShort));
    f.set_attr(g, "weight_step", s);
    f.set_attr(g, "weight_bits", bits);
    f.set_attr(g, "input_step", ck.model.at(layer + ".input_step").item<double>());
    f.set_attr(g, "input_bits", ck.model.at(layer + ".input_bits").item<int64_t>());
    f.set_attr(g, "input_signed", ck.model.at(layer + ".input_signed").item<int64_t>());
    for (const char* k : {".weight", ".weight_step", ".weight_bits", ".input_step", ".input_bits", ".input_signed"})
      used.insert(layer + k);
    ++layers;
  }
  if (layers == 0) {
    fs::remove(out + ".tmp");
    throw DataError(concat(in, ": no quantizers in this checkpoint (train with the lsq plugin)"));
  }
  f.make_group("/float");
  for (const auto& [name, t] : ck.model)
    if (!used.count(name)) f.write("/float/" + name, t);
  f.close();
  fs::rename(out + ".tmp", out);
  std::printf("wrote %s: %lld quantized layers\n", out.c_str(), static_cast<long long>(layers));
  return 0;
}

}  // namespace oodt
