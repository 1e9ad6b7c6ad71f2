// libFuzzer target: the YAML config loader. Bytes are parsed as a config file, merged on a
// base, overridden with a --set assignment taken from the input's first line, and read back
// the way the trainer reads its sections (typed get, nested child, one_of, finish). Anything
// but oodt::Error (ConfigError) escaping is a bug; so is any sanitizer report.
#include <cstdint>
#include <string>

#include "core/config.h"

namespace {

void read_like_the_trainer(oodt::ConfigTree& tree) {
  oodt::ConfigReader root(tree.root, "", tree.origins);
  {
    auto run = root.child("run");
    run.get<std::string>("dir", "runs/x");
    run.get<int64_t>("seed", 0);
    run.finish();
  }
  {
    auto train = root.child("train");
    train.get<int64_t>("steps", 10);
    train.get<double>("timeout_s", 60.0);
    train.get<bool>("overlap", true);
    train.one_of("device", "auto", {"auto", "cpu", "cuda"});
    train.get<std::vector<int64_t>>("channels", {1, 2});
    train.get<std::vector<std::string>>("test_domains", {});
    train.finish();
  }
  if (root.has("algorithms")) root.raw("algorithms");
  root.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    oodt::ConfigTree tree;
    tree.merge(oodt::parse_yaml("run: {dir: a}\ntrain: {steps: 3}\n", "base.yaml"), "base.yaml");
    tree.merge(oodt::parse_yaml(text, "fuzz.yaml"), "fuzz.yaml");
    const size_t eol = text.find('\n');
    if (eol != std::string::npos && text.find('=') < eol) tree.set(text.substr(0, eol));
    tree.dump();
    read_like_the_trainer(tree);
    oodt::nearest(text.substr(0, 32), {"optim", "train", "data", "model"});
  } catch (const oodt::Error&) {
    // a clean, reported error: what bad input should produce
  }
  return 0;
}
