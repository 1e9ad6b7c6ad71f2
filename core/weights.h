#pragma once
// Weights from and to other libraries: reading safetensors and PyTorch `.pt`/`.pth` state dicts,
// writing safetensors, and the name tables that map torchvision's, timm's and open_clip's
// state-dict names onto the zoo's (core/models/weight_maps.yaml, kept as data and embedded in
// the binary). `oodtrain weights import/export` (launch/weights_cmd.cpp) is built on these.
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "core/torch_fwd.h"

namespace oodt {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// safetensors (https://github.com/huggingface/safetensors: an 8-byte little-endian header size,
// a JSON header {name: {dtype, shape, data_offsets}}, the data), parsed here: every offset and
// size is checked against the file before a byte is read. Tensors in file order.
NamedTensors read_safetensors(const std::string& path);
// Written contiguous in the given order, the header padded to 8 bytes, `metadata` in
// `__metadata__` (safetensors' own loaders accept the file).
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// A state dict saved by Python's torch.save (the zip format, torch >= 1.6): a dict of tensors,
// or a dict holding one under `state_dict` or `model` (checkpoint wrappers). Where every name
// starts with `module.` (saved from DistributedDataParallel) the prefix is dropped. `note`
// receives what was unwrapped, if anything.
NamedTensors read_torch_file(const std::string& path, std::string* note = nullptr);

// Any of: safetensors, a torch.save file, an oodtrain checkpoint (its model entries), by the
// file's first bytes. DataError naming the file otherwise.
NamedTensors read_weight_file(const std::string& path, std::string* note = nullptr);

// fnmatch-style: `*` any run of characters (dots included), `?` one character.
bool glob_match(const std::string& pattern, const std::string& name);
bool glob_any(const std::vector<std::string>& patterns, const std::string& name);

// One source library's names for a family of zoo models. Rules pair a source template with a
// zoo template: `<n>` stands for a number, `*` for the rest of a name; the first rule that
// matches wins, in either direction.
class WeightMap {
 public:
  std::string source;               // torchvision | timm | open_clip
  std::vector<std::string> models;  // zoo model names it serves
  std::string prefix;               // a whole-model file's prefix for this part (open_clip: `visual.`)
  std::vector<std::string> ignore;  // source names deliberately not imported (a CLIP text tower)
  std::string note;                 // what the source's model is, for messages

  // The zoo's name for a source name (the prefix already removed), if a rule matches.
  std::optional<std::string> to_zoo(const std::string& name) const;
  // The source's name for a zoo name, if a rule matches.
  std::optional<std::string> to_source(const std::string& name) const;
  bool ignored(const std::string& name) const { return glob_any(ignore, name); }

  struct Rule {
    std::string from, to;
    std::regex from_re, to_re;
  };
  std::vector<Rule> rules;
};

// The table for `source` and zoo model `model`; ConfigError (key `key`) listing what exists
// otherwise.
const WeightMap& weight_map(const std::string& source, const std::string& model, const std::string& key = "--from");
// Every source name the tables know, for messages.
std::vector<std::string> weight_sources();

}  // namespace oodt
