// `oodtrain weights import | export`: pretrained weights from torchvision, timm and open_clip
// into an oodtrain checkpoint, and back (core/weights.h; the name tables are
// core/models/weight_maps.yaml). Every tensor is accounted for: mapped, ignored by the table
// (and listed), or an error that names it.
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/weights.h"
#include "launch/cli.h"

namespace oodt {
namespace fs = std::filesystem;
const char* git_revision();

namespace {

// Up to `limit` names, then how many more.
std::string list(const std::vector<std::string>& names, size_t limit = 12) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += "\n    " + names[i];
  if (names.size() > limit) out += concat("\n    ... and ", names.size() - limit, " more");
  return out;
}

void refuse_same_file(const std::string& in, const std::string& out) {
  std::error_code ec;
  if (fs::weakly_canonical(out, ec) == fs::weakly_canonical(in, ec))
    throw ConfigError("--out", concat("'", out, "' is the input file; write the result elsewhere"));
}

int weights_import(const Args& args) {
  std::string in, out, source, arch, head_file;
  int64_t image_size = 224, channels = 3;
  std::vector<std::string> sets;
  po::options_description desc("weights import options");
  desc.add_options()
      ("file", po::value(&in)->required(), "safetensors or torch.save state dict (.pt/.pth/.bin)")
      ("from", po::value(&source)->required(), "whose names the file uses: torchvision | timm | open_clip")
      ("arch", po::value(&arch)->required(), "zoo model: resnet18|34|50|101, vit_b16, vit_s16, clip_vit_b32, clip_vit_b16, ...")
      ("out,o", po::value(&out)->required(), "oodtrain checkpoint to write")
      ("image-size", po::value(&image_size)->default_value(image_size), "input height = width the model is built for (ViT positions)")
      ("channels", po::value(&channels)->default_value(channels), "input channels")
      ("head", po::value(&head_file), "classifier for the checkpoint: a weight file with 'weight' [K, F] and 'bias' [K] "
                                      "(e.g. CLIP zero-shot class embeddings)")
      ("set", po::value(&sets)->composing(), "model option, key=value (e.g. --set input_norm=clip); repeatable");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_args("weights import", "weights import FILE --from timm --arch vit_b16 -o vit_b16.h5", args, desc, vm, &pos))
    return 0;
  refuse_same_file(in, out);
  if (image_size <= 0 || channels <= 0) throw ConfigError("--image-size", "image size and channels must be positive");
  const WeightMap& map = weight_map(source, arch);

  std::string note;
  const NamedTensors file = read_weight_file(in, &note);
  // A whole-model file (all of CLIP) names the part with the table's prefix.
  bool prefixed = false;
  if (!map.prefix.empty())
    for (const auto& [name, t] : file) prefixed = prefixed || name.rfind(map.prefix, 0) == 0;
  std::map<std::string, std::pair<std::string, at::Tensor>> mapped;  // zoo name -> (file name, tensor)
  std::vector<std::string> ignored, unexpected, problems;
  for (const auto& [name, t] : file) {
    std::string inner = name;
    if (prefixed) {
      if (name.rfind(map.prefix, 0) != 0) {
        (map.ignored(name) ? ignored : unexpected).push_back(name);
        continue;
      }
      inner = name.substr(map.prefix.size());
    }
    const auto zoo = map.to_zoo(inner);
    if (!zoo) {
      unexpected.push_back(concat(name, " (no rule of the ", source, " table matches)"));
      continue;
    }
    if (mapped.count(*zoo)) {
      problems.push_back(concat("both '", mapped[*zoo].first, "' and '", name, "' map to ", *zoo));
      continue;
    }
    mapped[*zoo] = {name, t};
  }

  // The head: the file's, the --head file's, or none (a fine-tune starts it fresh).
  at::Tensor head_w, head_b;
  std::string head_from;
  if (!head_file.empty()) {
    for (const auto& [name, t] : read_weight_file(head_file)) {
      if (name == "weight" || name == "head.fc.weight") head_w = t;
      if (name == "bias" || name == "head.fc.bias") head_b = t;
    }
    if (!head_w.defined() || head_w.dim() != 2)
      throw DataError(concat(head_file, " (--head): needs a 2-d tensor 'weight' [classes, features]"));
    head_from = head_file;
  } else if (auto it = mapped.find("head.fc.weight"); it != mapped.end()) {
    head_w = it->second.second;
    if (auto b = mapped.find("head.fc.bias"); b != mapped.end()) head_b = b->second.second;
    head_from = in;
  }
  const bool replaced_head = !head_file.empty() && mapped.count("head.fc.weight");
  if (!head_file.empty()) {
    mapped.erase("head.fc.weight");
    mapped.erase("head.fc.bias");
  }
  if (head_w.defined() && head_w.dim() != 2) throw DataError(concat(in, ": the classifier weight is not 2-d"));
  const int64_t classes = head_w.defined() ? head_w.size(0) : 2;

  // The model the names and shapes must fit.
  ConfigTree tree;
  tree.root["model"]["name"] = arch;
  for (const auto& kv : sets) tree.set("model." + kv);
  ConfigReader model_cfg(tree.root["model"], "model", tree.origins);
  auto model = build_model(model_cfg, ModelShape{{channels, image_size, image_size}, classes});
  TensorMap state;
  std::vector<std::string> missing;
  for (const auto& [name, t] : model->named_state()) {
    const bool is_head = name.rfind("head.", 0) == 0;
    if (is_head && !head_from.empty() && !head_file.empty()) {
      const at::Tensor& src = name == "head.fc.weight" ? head_w : head_b;
      if (!src.defined()) {
        state[name] = at::zeros_like(t);  // a head file without bias: zero bias
        continue;
      }
      if (src.sizes() != t.sizes())
        problems.push_back(concat("'", name, "' from ", head_file, " has shape ", src.sizes(), ", the model expects ", t.sizes()));
      else state[name] = src.to(t.scalar_type()).clone();
      continue;
    }
    auto it = mapped.find(name);
    if (it == mapped.end()) {
      if (!(is_head && head_from.empty())) missing.push_back(name);
      continue;
    }
    const at::Tensor& src = it->second.second;
    if (src.sizes() != t.sizes())
      problems.push_back(concat("'", it->second.first, "' (", name, ") has shape ", src.sizes(), ", ", arch, " at ",
                                image_size, " px expects ", t.sizes(),
                                name.find("pos") != std::string::npos ? " (a different --image-size?)" : ""));
    else state[name] = src.to(t.scalar_type()).clone();
    mapped.erase(it);
  }
  for (const auto& [zoo, src] : mapped) unexpected.push_back(concat(src.first, " (-> ", zoo, ", which ", arch, " does not have)"));
  if (!missing.empty() || !unexpected.empty() || !problems.empty()) {
    std::string msg = concat(in, ": does not fit ", arch, " with the ", source, " names");
    if (!problems.empty()) msg += concat("\n  mis-shaped (", problems.size(), "):", list(problems));
    if (!missing.empty()) msg += concat("\n  missing from the file (", missing.size(), "):", list(missing));
    if (!unexpected.empty()) msg += concat("\n  unexpected in the file (", unexpected.size(), "):", list(unexpected));
    throw DataError(msg);
  }

  Checkpoint ck;
  ck.config = concat("# oodtrain weights import ", in, " --from ", source, " --arch ", arch, "\n", YAML::Dump(tree.root), "\n");
  ck.git_revision = git_revision();
  ck.init_from = fs::absolute(in).string();
  ck.model = state;
  write_checkpoint(out, ck);
  int64_t values = 0;
  for (const auto& [name, t] : state) values += t.numel();
  std::printf("imported %zu tensors (%.1fM values) from %s%s as %s\n", state.size(), static_cast<double>(values) / 1e6,
              in.c_str(), note.empty() ? "" : (" (" + note + ")").c_str(), arch.c_str());
  if (head_from.empty())
    std::printf("head: none in the file; a fine-tune (--init-from) starts head.fc fresh for its classes\n");
  else
    std::printf("head: %lld classes from %s%s\n", static_cast<long long>(head_w.size(0)), head_from.c_str(),
                replaced_head ? " (the file's own classifier is not used)" : "");
  if (!ignored.empty())
    std::printf("ignored %zu tensors outside '%s' (the rest of the %s model):%s\n", ignored.size(), map.prefix.c_str(),
                source.c_str(), list(ignored, 6).c_str());
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int weights_export(const Args& args) {
  std::string in, out, source, prefix, dtype = "float32";
  po::options_description desc("weights export options");
  desc.add_options()
      ("checkpoint", po::value(&in)->required(), "oodtrain checkpoint")
      ("to", po::value(&source)->required(), "whose names to write: torchvision | timm | open_clip")
      ("out,o", po::value(&out)->required(), "safetensors file to write")
      ("prefix", po::value(&prefix), "put before every name (e.g. 'visual.' for a whole open_clip model's names)")
      ("dtype", po::value(&dtype)->default_value(dtype), "float32 | float16 | bfloat16 for floating-point tensors")
      ("skip-unmapped", "leave out entries the table has no name for (plugin state, a head the source lacks) "
                        "instead of failing");
  po::positional_options_description pos;
  pos.add("checkpoint", 1);
  po::variables_map vm;
  if (!parse_args("weights export", "weights export ckpt.h5 --to timm -o model.safetensors", args, desc, vm, &pos)) return 0;
  refuse_same_file(in, out);
  const std::map<std::string, at::ScalarType> dtypes = {
      {"float32", at::kFloat}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16}};
  if (!dtypes.count(dtype)) throw ConfigError("--dtype", concat("'", dtype, "' is not one of: float32, float16, bfloat16"));
  const Checkpoint ck = read_checkpoint(in);
  const YAML::Node config = parse_yaml(ck.config, in + " (stored config)");
  const std::string arch = config["model"] && config["model"]["name"] ? config["model"]["name"].as<std::string>() : "";
  if (arch.empty()) throw DataError(concat(in, ": the stored config names no model (model.name)"));
  const WeightMap& map = weight_map(source, arch, "--to");
  // The model's own entries (names do not depend on the input shape): what plugins added
  // (quantizer steps, ...) has no name in the source library.
  std::set<std::string> own;
  {
    ConfigTree tree;
    tree.merge(config, in);
    ConfigReader model_cfg(tree.root["model"], "model", tree.origins);
    for (const auto& [name, t] : build_model(model_cfg, ModelShape::for_validation(tree.root["model"]))->named_state())
      own.insert(name);
  }
  NamedTensors tensors;
  std::vector<std::string> unmapped;
  for (const auto& [name, t] : ck.model) {
    const auto name_there = own.count(name) ? map.to_source(name) : std::nullopt;
    if (!name_there) {
      unmapped.push_back(name);
      continue;
    }
    tensors.emplace_back(prefix + *name_there, t.is_floating_point() ? t.to(dtypes.at(dtype)) : t);
  }
  if (!unmapped.empty() && !vm.count("skip-unmapped"))
    throw DataError(concat(in, ": ", unmapped.size(), " entries have no ", source, " name (--skip-unmapped leaves them out):",
                           list(unmapped)));
  write_safetensors(out, tensors, {{"format", "pt"}, {"source", "oodtrain"}, {"arch", arch}});
  std::printf("wrote %s: %zu tensors in %s's names%s\n", out.c_str(), tensors.size(), source.c_str(),
              unmapped.empty() ? "" : concat(", left out ", unmapped.size(), ":", list(unmapped, 6)).c_str());
  return 0;
}

}  // namespace

int cmd_weights(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf(
        "usage: oodtrain weights import FILE --from torchvision|timm|open_clip --arch NAME -o CKPT.h5\n"
        "       oodtrain weights export CKPT.h5 --to torchvision|timm|open_clip -o FILE.safetensors\n"
        "`oodtrain weights import --help` and `export --help` list the options; docs/cli.md has examples\n");
    return args.empty() ? 2 : 0;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "import") return weights_import(rest);
  if (args[0] == "export") return weights_export(rest);
  throw ConfigError("", concat("oodtrain weights: unknown action '", args[0], "' (known: import, export)"));
}

}  // namespace oodt
