#include <gtest/gtest.h>

#include <fstream>

#include "core/config.h"
#include "core/trainer.h"
#include "test_util.h"

namespace oodt {
namespace {

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

TEST(Config, FilesMergeInOrderThenSetOverrides) {
  const auto dir = test::temp_dir("config");
  ConfigTree t;
  t.merge_file(write(dir, "a.yaml", "optim: {lr: 0.1, momentum: 0.5}\ntrain: {steps: 10}\n"));
  t.merge_file(write(dir, "b.yaml", "optim: {lr: 0.2}\n"));
  t.set("optim.momentum=0.7");
  t.set("train.eval_every=5");
  TrainerOptions o = TrainerOptions::from_config(t);
  EXPECT_DOUBLE_EQ(o.optim.lr, 0.2);        // b.yaml beats a.yaml
  EXPECT_DOUBLE_EQ(o.optim.momentum, 0.7);  // --set beats both
  EXPECT_EQ(o.steps, 10);
  EXPECT_EQ(o.eval_every, 5);
  EXPECT_EQ(o.checkpoint_every, TrainerOptions().checkpoint_every);  // default
}

TEST(Config, ResolvedTreeContainsDefaults) {
  ConfigTree t;
  t.set("optim.name=adam");
  TrainerOptions::from_config(t);
  const std::string dump = t.dump();
  EXPECT_NE(dump.find("beta2: 0.999"), std::string::npos) << dump;
  EXPECT_NE(dump.find("bucket_mb: 25"), std::string::npos) << dump;
  EXPECT_EQ(dump.find("momentum"), std::string::npos) << "sgd-only key leaked into adam: " << dump;
  // The dump parses back to the same options.
  ConfigTree again;
  again.merge(parse_yaml(dump, "dump"), "dump");
  EXPECT_EQ(TrainerOptions::from_config(again).optim.name, "adam");
}

TEST(Config, UnknownKeyNamesPathFileAndNearestKey) {
  const auto dir = test::temp_dir("config");
  ConfigTree t;
  const auto file = write(dir, "exp.yaml", "optim:\n  lrr: 0.1\n");
  t.merge_file(file);
  const std::string msg = error_of([&] { TrainerOptions::from_config(t); });
  EXPECT_NE(msg.find("optim.lrr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'optim.lr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
}

TEST(Config, UnknownSectionIsReportedWithValidKeys) {
  ConfigTree t;
  t.set("trian.steps=3");
  // The top-level check happens in the launcher; ConfigReader::finish is what it calls.
  ConfigReader root(t.root, "", t.origins);
  root.child("train");
  const std::string msg = error_of([&] { root.finish(); });
  EXPECT_NE(msg.find("trian"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'train'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--set"), std::string::npos) << msg;
}

TEST(Config, WrongTypeAndRangeErrors) {
  {
    ConfigTree t;
    t.set("train.steps=many");
    const std::string msg = error_of([&] { TrainerOptions::from_config(t); });
    EXPECT_NE(msg.find("train.steps: expected an integer, got 'many'"), std::string::npos) << msg;
  }
  {
    ConfigTree t;
    t.set("train.steps=2.5");  // never silently truncated
    EXPECT_NE(error_of([&] { TrainerOptions::from_config(t); }).find("expected an integer"), std::string::npos);
  }
  {
    ConfigTree t;
    t.set("train.steps=1e3");  // but 1e3 is an integer
    EXPECT_EQ(TrainerOptions::from_config(t).steps, 1000);
  }
  {
    ConfigTree t;
    t.set("optim.lr=-1");
    const std::string msg = error_of([&] { TrainerOptions::from_config(t); });
    EXPECT_NE(msg.find("optim.lr: must be a positive number"), std::string::npos) << msg;
  }
  {
    ConfigTree t;
    t.set("optim.name=sdg");
    const std::string msg = error_of([&] { TrainerOptions::from_config(t); });
    EXPECT_NE(msg.find("did you mean 'sgd'"), std::string::npos) << msg;
  }
  {
    ConfigTree t;
    t.set("optim={lr: 1}");
    t.set("optim=3");
    EXPECT_NE(error_of([&] { TrainerOptions::from_config(t); }).find("optim: expected a map"), std::string::npos);
  }
}

TEST(Config, SetAddressesListEntriesByNameOrIndex) {
  ConfigTree t;
  t.set("algorithms=[mixup, {label_smoothing: {smoothing: 0.2}}]");
  t.set("algorithms.mixup.alpha=0.3");
  t.set("algorithms.1.smoothing=0.05");
  EXPECT_DOUBLE_EQ(t.root["algorithms"][0]["mixup"]["alpha"].as<double>(), 0.3);
  EXPECT_DOUBLE_EQ(t.root["algorithms"][1]["label_smoothing"]["smoothing"].as<double>(), 0.05);
  const std::string msg = error_of([&] { t.set("algorithms.mixpu.alpha=1"); });
  EXPECT_NE(msg.find("did you mean 'mixup'"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { t.set("algorithms.7.x=1"); }).find("is out of range"), std::string::npos);
}

TEST(Config, SelectingAnotherVariantReplacesTheSection) {
  const auto dir = test::temp_dir("config");
  ConfigTree t;
  t.merge_file(write(dir, "base.yaml", "optim: {name: sgd, lr: 0.1, momentum: 0.8}\nmodel: {name: cnn, channels: [4]}\n"));
  t.merge_file(write(dir, "exp.yaml", "optim: {name: adamw, beta2: 0.99}\nmodel: {name: cnn, dropout: 0.3}\n"));
  // optim switched from sgd to adamw: sgd's momentum (and the old lr) are gone.
  EXPECT_FALSE(t.root["optim"]["momentum"].IsDefined());
  EXPECT_FALSE(t.root["optim"]["lr"].IsDefined());
  EXPECT_DOUBLE_EQ(t.root["optim"]["beta2"].as<double>(), 0.99);
  // Same model name: merged as usual.
  EXPECT_EQ(t.root["model"]["channels"].size(), 1u);
  EXPECT_DOUBLE_EQ(t.root["model"]["dropout"].as<double>(), 0.3);
  EXPECT_EQ(TrainerOptions::from_config(t).optim.name, "adamw");
  // --set of a selector does the same; later --set keys then add to the fresh section.
  t.set("model.name=vit");
  t.set("model.dim=32");
  EXPECT_FALSE(t.root["model"]["channels"].IsDefined());
  EXPECT_EQ(t.root["model"]["dim"].as<int>(), 32);
  t.set("model.name=vit");  // the same name again keeps the section
  EXPECT_EQ(t.root["model"]["dim"].as<int>(), 32);
}

TEST(Config, BadYamlAndBadSetSyntax) {
  const auto dir = test::temp_dir("config");
  ConfigTree t;
  const std::string msg = error_of([&] { t.merge_file(write(dir, "bad.yaml", "optim: {lr: 0.1\n")); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { t.merge_file(dir + "/missing.yaml"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { t.set("optim.lr"); }).find("expected key=value"), std::string::npos);
  EXPECT_NE(error_of([&] { t.merge_file(write(dir, "list.yaml", "- 1\n- 2\n")); }).find("must be a YAML map"),
            std::string::npos);
}

TEST(Config, NearestOnlySuggestsCloseWords) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(nearest("stpes", {"steps", "seed"}), "steps");
  EXPECT_EQ(nearest("completely_different", {"steps", "seed"}), "");
}

}  // namespace
}  // namespace oodt
