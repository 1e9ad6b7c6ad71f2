// Weight files from other libraries: safetensors and torch.save files written by the real
// `safetensors` package and PyTorch (tests/golden/make_weight_format_fixtures.py), damaged
// files, and the name tables.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/h5.h"
#include "core/weights.h"
#include "test_util.h"

namespace oodt {
namespace {

std::string weights_fixture(const std::string& name) { return test::fixture("weights/" + name); }

std::map<std::string, at::Tensor> as_map(const NamedTensors& v) { return {v.begin(), v.end()}; }

// Every tensor of `got` against expected.h5: same dtype as recorded, same values.
void expect_matches_python(const NamedTensors& got, const std::vector<std::string>& names) {
  h5::File f = h5::File::open(weights_fixture("expected.h5"));
  const auto dtypes = nlohmann::json::parse(f.read_text("dtypes"));
  const std::map<std::string, at::ScalarType> types = {{"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
                                                       {"F64", at::kDouble}, {"I64", at::kLong}, {"I32", at::kInt},
                                                       {"U8", at::kByte}};
  const auto m = as_map(got);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(m.count(name));
    const at::Tensor& t = m.at(name);
    EXPECT_EQ(t.scalar_type(), types.at(dtypes[name].get<std::string>()));
    const at::Tensor want = f.read(name);
    ASSERT_EQ(t.sizes(), want.sizes());
    EXPECT_TRUE(at::equal(t.to(at::kDouble), want.to(at::kDouble)));
  }
}

TEST(WeightFiles, SafetensorsFromThePythonPackage) {
  const NamedTensors got = read_safetensors(weights_fixture("tensors.safetensors"));
  EXPECT_EQ(got.size(), 9u);
  expect_matches_python(got, {"a", "b", "c", "d", "e", "f", "g", "h", "layer.0.weight"});
}

TEST(WeightFiles, TorchSaveStateDict) {
  std::string note;
  const NamedTensors got = read_weight_file(weights_fixture("tensors.pt"), &note);
  // In the dict's order, views (a transpose, a row) as their own tensors.
  std::vector<std::string> order;
  for (const auto& [n, t] : got) order.push_back(n);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "layer.0.weight", "t", "s"}));
  expect_matches_python(got, order);
  EXPECT_TRUE(note.empty()) << note;
}

TEST(WeightFiles, TorchSaveCheckpointWrapper) {
  std::string note;
  const NamedTensors got = read_weight_file(weights_fixture("nested.pt"), &note);
  EXPECT_NE(note.find("'state_dict'"), std::string::npos) << note;
  EXPECT_EQ(as_map(got).count("a"), 1u);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  }
  return "<no DataError>";
}

TEST(WeightFiles, DamagedFilesAreNamedErrors) {
  EXPECT_NE(error_of([] { read_weight_file(weights_fixture("tensors_legacy.pt")); }).find("before PyTorch 1.6"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_weight_file(weights_fixture("corrupt_header.safetensors")); }).find("the header claims"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_weight_file(weights_fixture("bad_offsets.safetensors")); }).find("outside the data area"),
            std::string::npos);
  const std::string truncated = error_of([] { read_weight_file(weights_fixture("truncated.safetensors")); });
  EXPECT_NE(truncated.find("truncated.safetensors"), std::string::npos) << truncated;
  EXPECT_NE(error_of([] { read_weight_file("/nonexistent/w.safetensors"); }).find("cannot open"), std::string::npos);
}

// Every prefix of a torch.save file and single flipped bytes in its pickle fail cleanly (a
// DataError) or, where the damage misses anything read, still load: never a crash.
TEST(WeightFiles, DamagedTorchSaveNeverCrashes) {
  std::ifstream in(weights_fixture("tensors.pt"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string dir = test::temp_dir("torch_damage");
  const std::string path = dir + "/x.pt";
  auto attempt = [&](const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    try {
      read_torch_file(path);
    } catch (const DataError&) {
    }
  };
  for (size_t cut = 0; cut < bytes.size(); cut += 29) attempt(bytes.substr(0, cut));
  const size_t pkl = bytes.find("\x80\x02");
  ASSERT_NE(pkl, std::string::npos);
  for (size_t i = pkl; i < pkl + 872 && i < bytes.size(); i += 3) {
    std::string damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    attempt(damaged);
  }
}

TEST(WeightFiles, SafetensorsRoundTrip) {
  const std::string path = test::temp_dir("safetensors") + "/w.safetensors";
  NamedTensors in = {{"z.weight", at::randn({3, 4})},
                     {"a.half", at::randn({5}).to(at::kHalf)},
                     {"b.bf16", at::randn({2, 2}).to(at::kBFloat16)},
                     {"scalar", at::tensor(2.5, at::kDouble)},
                     {"count", at::arange(7, at::kLong)},
                     {"empty", at::zeros({0, 3})},
                     {"t", at::randn({3, 4}).t()}};
  write_safetensors(path, in);
  const NamedTensors out = read_safetensors(path);
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].first, in[i].first);  // file order = written order
    EXPECT_EQ(out[i].second.scalar_type(), in[i].second.scalar_type());
    EXPECT_TRUE(at::equal(out[i].second, in[i].second)) << in[i].first;
  }
  // The header is padded to 8 bytes, as the format asks.
  std::ifstream f(path, std::ios::binary);
  unsigned char size[8];
  f.read(reinterpret_cast<char*>(size), 8);
  EXPECT_EQ(size[0] % 8, 0);
}

TEST(WeightMaps, Globs) {
  EXPECT_TRUE(glob_match("head.*", "head.fc.weight"));
  EXPECT_TRUE(glob_match("*.bias", "trunk.layer1.0.bn1.bias"));
  EXPECT_TRUE(glob_match("trunk.layer?.*", "trunk.layer4.1.conv2.weight"));
  EXPECT_FALSE(glob_match("head.*", "trunk.head.weight"));
  EXPECT_FALSE(glob_match("trunk.layer4.*", "trunk.layer40"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYd"));
}

TEST(WeightMaps, BothDirections) {
  struct Pair {
    std::string source, model, theirs, ours;
  };
  const std::vector<Pair> pairs = {
      {"torchvision", "resnet50", "fc.bias", "head.fc.bias"},
      {"torchvision", "resnet50", "layer4.2.downsample.0.weight", "trunk.layer4.2.downsample.0.weight"},
      {"torchvision", "resnet18", "bn1.num_batches_tracked", "trunk.bn1.num_batches_tracked"},
      {"timm", "vit_b16", "blocks.11.mlp.fc2.bias", "trunk.blocks.11.fc2.bias"},
      {"timm", "vit_s16", "cls_token", "trunk.patch.cls"},
      {"timm", "vit_b16", "head.weight", "head.fc.weight"},
      {"open_clip", "clip_vit_b32", "transformer.resblocks.3.attn.in_proj_weight", "trunk.blocks.3.attn.qkv.weight"},
      {"open_clip", "clip_vit_b16", "proj", "trunk.proj.weight"},
      {"torchvision", "vit_b16", "encoder.layers.encoder_layer_7.mlp.3.weight", "trunk.blocks.7.fc2.weight"},
  };
  for (const auto& p : pairs) {
    const WeightMap& m = weight_map(p.source, p.model);
    EXPECT_EQ(m.to_zoo(p.theirs).value_or("<none>"), p.ours) << p.theirs;
    EXPECT_EQ(m.to_source(p.ours).value_or("<none>"), p.theirs) << p.ours;
  }
  // torchvision 0.12's ViT MLP names import too.
  EXPECT_EQ(weight_map("torchvision", "vit_b16").to_zoo("encoder.layers.encoder_layer_0.mlp.linear_1.bias").value_or(""),
            "trunk.blocks.0.fc1.bias");
  EXPECT_FALSE(weight_map("open_clip", "clip_vit_b32").to_zoo("text_projection").has_value());
  EXPECT_TRUE(weight_map("open_clip", "clip_vit_b32").ignored("token_embedding.weight"));
}

TEST(WeightMaps, UnknownSourceOrModelIsAConfigError) {
  auto message = [](const std::string& source, const std::string& model) -> std::string {
    try {
      weight_map(source, model);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "<none>";
  };
  EXPECT_NE(message("timm", "resnet50").find("vit_b16"), std::string::npos);
  EXPECT_NE(message("keras", "resnet50").find("torchvision"), std::string::npos);
}

}  // namespace
}  // namespace oodt
