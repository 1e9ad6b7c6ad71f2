#include "core/weights.h"

#include <yaml-cpp/yaml.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "core/error.h"

namespace oodt {

const char* weight_maps_yaml();  // core/models/weight_maps.yaml, embedded at build time

namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  size_t bytes;
};
const std::vector<DtypeInfo>& safetensors_dtypes() {
  static const std::vector<DtypeInfo> t = {
      {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
      {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
      {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1}};
  return t;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(concat(path, ": cannot open (", std::strerror(errno), ")"));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DataError(concat(path, ": read error"));
  return bytes;
}

}  // namespace

NamedTensors read_safetensors(const std::string& path) {
  const std::string bytes = read_bytes(path);
  auto fail = [&](const std::string& why) { return DataError(concat(path, ": not a valid safetensors file: ", why)); };
  if (bytes.size() < 8) throw fail(concat("only ", bytes.size(), " bytes"));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  if (header_size > bytes.size() - 8)
    throw fail(concat("the header claims ", header_size, " bytes, the file has ", bytes.size() - 8, " after the size"));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_size));
  } catch (const std::exception& e) {
    throw fail(concat("the header is not JSON (", e.what(), ")"));
  }
  if (!header.is_object()) throw fail("the header is not a JSON object");
  const size_t data_start = 8 + header_size, data_size = bytes.size() - data_start;
  // In order of their data (the order the writer laid them out), names for ties.
  std::vector<std::tuple<uint64_t, std::string, at::Tensor>> found;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    auto bad = [&](const std::string& why) { return fail(concat("tensor '", name, "': ", why)); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw bad("needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) throw bad("dtype is not a string");
    const std::string dt = e["dtype"];
    const DtypeInfo* info = nullptr;
    for (const auto& d : safetensors_dtypes())
      if (dt == d.name) info = &d;
    if (!info) throw bad(concat("dtype ", dt, " is not supported (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)"));
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    if (!e["shape"].is_array()) throw bad("shape is not a list");
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) throw bad("shape has a negative or non-integer size");
      const uint64_t n = d.get<uint64_t>();
      if (n > (uint64_t{1} << 40)) throw bad(concat("dimension ", n, " is implausible"));
      shape.push_back(static_cast<int64_t>(n));
      numel *= n;
      if (numel > (uint64_t{1} << 40)) throw bad("too many elements");
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad("data_offsets must be two non-negative integers");
    const uint64_t begin = off[0], end = off[1];
    if (begin > end || end > data_size)
      throw bad(concat("data_offsets [", begin, ", ", end, "] lie outside the data area of ", data_size, " bytes",
                       end > data_size ? " (the file is truncated or the header wrong)" : ""));
    if (end - begin != numel * info->bytes)
      throw bad(concat("shape and dtype need ", numel * info->bytes, " bytes, data_offsets give ", end - begin));
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(info->type));
    if (end > begin) std::memcpy(t.data_ptr(), bytes.data() + data_start + begin, end - begin);
    found.emplace_back(begin, name, t);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) < std::get<0>(b) : std::get<1>(a) < std::get<1>(b);
  });
  NamedTensors out;
  for (auto& [begin, name, t] : found) out.emplace_back(name, t);
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<at::Tensor> data;
  for (const auto& [name, t0] : tensors) {
    const at::Tensor t = t0.detach().cpu().contiguous();
    const DtypeInfo* info = nullptr;
    for (const auto& d : safetensors_dtypes())
      if (d.type == t.scalar_type()) info = &d;
    OODT_CHECK(info != nullptr, "safetensors cannot hold '", name, "' of type ", t.scalar_type());
    const uint64_t n = static_cast<uint64_t>(t.numel()) * info->bytes;
    header[name] = {{"dtype", info->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw DataError(concat(path, ": cannot write (", std::strerror(errno), ")"));
    unsigned char size[8];
    for (int i = 0; i < 8; ++i) size[i] = static_cast<unsigned char>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(size), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    out.flush();
    if (!out) throw DataError(concat(path, ": write failed (disk full?)"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw DataError(concat(path, ": cannot rename ", tmp, " over it"));
}

NamedTensors read_weight_file(const std::string& path, std::string* note) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(concat(path, ": cannot open (", std::strerror(errno), ")"));
  char head[8] = {};
  in.read(head, 8);
  const std::streamsize got = in.gcount();
  in.close();
  if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return read_torch_file(path, note);
  if (got == 8 && std::memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) {
    const Checkpoint ck = read_checkpoint(path);
    if (note) *note = "an oodtrain checkpoint";
    return NamedTensors(ck.model.begin(), ck.model.end());
  }
  // Python's pickle protocol 2+ (torch.save's format before 1.6) starts with 0x80.
  if (got >= 1 && static_cast<unsigned char>(head[0]) == 0x80)
    throw DataError(concat(path, ": a torch.save file in the format before PyTorch 1.6, which LibTorch cannot read; "
                                 "re-save it in Python: torch.save(torch.load(f), 'new.pt')"));
  if (got == 8) return read_safetensors(path);
  throw DataError(concat(path, ": not a weight file (safetensors, torch.save zip or an oodtrain checkpoint)"));
}

bool glob_match(const std::string& p, const std::string& s) {
  // Iterative wildcard match with backtracking to the last `*`.
  size_t i = 0, j = 0, star = std::string::npos, mark = 0;
  while (j < s.size()) {
    if (i < p.size() && (p[i] == '?' || p[i] == s[j])) {
      ++i, ++j;
    } else if (i < p.size() && p[i] == '*') {
      star = i++, mark = j;
    } else if (star != std::string::npos) {
      i = star + 1, j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.size() && p[i] == '*') ++i;
  return i == p.size();
}

bool glob_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (glob_match(p, name)) return true;
  return false;
}

namespace {

// A name template as a regex: `<n>` a number, `*` the rest; both captured in order.
std::regex template_regex(const std::string& t) {
  std::string re;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t.compare(i, 3, "<n>") == 0) {
      re += "([0-9]+)";
      i += 2;
    } else if (t[i] == '*') {
      re += "(.*)";
    } else {
      if (std::strchr(".[]()+?^$|\\{}<>", t[i])) re += '\\';
      re += t[i];
    }
  }
  return std::regex(re);
}

std::string placeholders(const std::string& t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t.compare(i, 3, "<n>") == 0) out += 'n', i += 2;
    else if (t[i] == '*') out += '*';
  }
  return out;
}

std::optional<std::string> apply(const std::regex& re, const std::string& to, const std::string& name) {
  std::smatch m;
  if (!std::regex_match(name, m, re)) return std::nullopt;
  std::string out;
  size_t group = 1;
  for (size_t i = 0; i < to.size(); ++i) {
    if (to.compare(i, 3, "<n>") == 0) {
      out += m[group++].str();
      i += 2;
    } else if (to[i] == '*') {
      out += m[group++].str();
    } else {
      out += to[i];
    }
  }
  return out;
}

std::vector<WeightMap> load_maps() {
  const YAML::Node root = YAML::Load(weight_maps_yaml());
  std::vector<WeightMap> maps;
  for (const auto& src : root) {
    for (const auto& entry : src.second) {
      WeightMap m;
      m.source = src.first.as<std::string>();
      m.models = entry["models"].as<std::vector<std::string>>();
      if (entry["prefix"]) m.prefix = entry["prefix"].as<std::string>();
      if (entry["ignore"]) m.ignore = entry["ignore"].as<std::vector<std::string>>();
      if (entry["note"]) m.note = entry["note"].as<std::string>();
      for (const auto& r : entry["rules"]) {
        const std::string from = r[0].as<std::string>(), to = r[1].as<std::string>();
        OODT_CHECK(placeholders(from) == placeholders(to), "weight_maps.yaml: rule ", from, " -> ", to,
                   " has different placeholders on its sides");
        m.rules.push_back({from, to, template_regex(from), template_regex(to)});
      }
      maps.push_back(std::move(m));
    }
  }
  return maps;
}

const std::vector<WeightMap>& all_maps() {
  static const std::vector<WeightMap> maps = load_maps();
  return maps;
}

}  // namespace

std::optional<std::string> WeightMap::to_zoo(const std::string& name) const {
  for (const auto& r : rules)
    if (auto out = apply(r.from_re, r.to, name)) return out;
  return std::nullopt;
}

std::optional<std::string> WeightMap::to_source(const std::string& name) const {
  for (const auto& r : rules)
    if (auto out = apply(r.to_re, r.from, name)) return out;
  return std::nullopt;
}

std::vector<std::string> weight_sources() {
  std::vector<std::string> out;
  for (const auto& m : all_maps())
    if (std::find(out.begin(), out.end(), m.source) == out.end()) out.push_back(m.source);
  return out;
}

const WeightMap& weight_map(const std::string& source, const std::string& model, const std::string& key) {
  std::string served;
  bool known_source = false;
  for (const auto& m : all_maps()) {
    if (m.source != source) continue;
    known_source = true;
    for (const auto& name : m.models) {
      if (name == model) return m;
      served += (served.empty() ? "" : ", ") + name;
    }
  }
  if (!known_source) {
    std::string all;
    for (const auto& s : weight_sources()) all += (all.empty() ? "" : ", ") + s;
    throw ConfigError(key, concat("'", source, "' is not one of: ", all));
  }
  throw ConfigError(key, concat(source, " has no name table for model '", model, "'; it has one for: ", served));
}

}  // namespace oodt
