#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/checkpoint.h"
#include "core/h5.h"
#include "core/models/model.h"
#include "test_util.h"

namespace oodt {
namespace {
namespace fs = std::filesystem;

std::shared_ptr<Model> small_cnn(int64_t seed) {
  at::manual_seed(seed);
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [4, 8]}"), "model", nullptr);
  return build_model(cfg, ModelShape{{1, 8, 8}, 3});
}

TEST(Checkpoint, RoundTripKeepsEverything) {
  const auto dir = test::temp_dir("ckpt");
  auto model = small_cnn(1);
  Checkpoint ck;
  ck.step = 42;
  ck.epoch = 3;
  ck.world_size = 2;
  ck.seed = 7;
  ck.config = "run: {seed: 7}\n";
  ck.git_revision = "abc";
  ck.model = module_state(*model);
  ck.optimizer["step"] = at::full({1}, 42, at::kLong);
  ck.optimizer["trunk.block0.conv.weight.momentum_buffer"] = at::randn({4, 1, 3, 3});
  ck.plugins["mixup"]["lambda"] = at::tensor({0.25});
  ck.plugins["empty"] = {};
  ck.plugins["sparse"]["mask"] = at::rand({3, 3}) > 0.5;  // bool: stored as uint8, checksum still holds
  ck.rng = at::randint(0, 255, {2, 16}, at::kByte);
  const std::string path = dir + "/" + checkpoint_name(42);
  write_checkpoint(path, ck);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  const Checkpoint back = read_checkpoint(path);
  EXPECT_EQ(back.step, 42);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.world_size, 2);
  EXPECT_EQ(back.seed, 7);
  EXPECT_EQ(back.config, ck.config);
  EXPECT_EQ(back.git_revision, "abc");
  ASSERT_EQ(back.model.size(), ck.model.size());
  for (const auto& [k, v] : ck.model) EXPECT_TRUE(at::equal(back.model.at(k), v)) << k;
  for (const auto& [k, v] : ck.optimizer) EXPECT_TRUE(at::equal(back.optimizer.at(k), v)) << k;
  EXPECT_TRUE(at::equal(back.plugins.at("mixup").at("lambda"), ck.plugins["mixup"]["lambda"]));
  EXPECT_TRUE(back.plugins.count("empty"));
  EXPECT_TRUE(at::equal(back.plugins.at("sparse").at("mask").to(at::kBool), ck.plugins["sparse"]["mask"]));
  EXPECT_TRUE(at::equal(back.rng, ck.rng));

  auto other = small_cnn(2);
  load_module_state(*other, back.model, path);
  for (const auto& [k, v] : module_state(*other)) EXPECT_TRUE(at::equal(v, ck.model.at(k))) << k;
}

TEST(Checkpoint, ChangedContentsFailTheChecksum) {
  const auto dir = test::temp_dir("ckpt");
  Checkpoint ck;
  ck.config = "x: 1\n";
  ck.model["w"] = at::arange(6, at::kFloat);
  const std::string path = dir + "/" + checkpoint_name(1);
  write_checkpoint(path, ck);
  {
    h5::File f = h5::File::open(path, /*writable=*/true);
    H5Ldelete(f.id(), "/model/w", H5P_DEFAULT);
    f.write("/model/w", at::arange(6, at::kFloat) * 2);
  }
  auto error_of = [&] {
    try {
      read_checkpoint(path);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("<accepted>");
  };
  // The bytes no longer match the sidecar: refused before libhdf5 parses the file.
  EXPECT_NE(error_of().find("do not match their digest"), std::string::npos) << error_of();
  // Without the sidecar, the checksum over the contents still refuses it.
  fs::remove(path + ".sum");
  EXPECT_NE(error_of().find("checksum mismatch"), std::string::npos) << error_of();
}

TEST(Checkpoint, EveryFlippedByteIsRefusedBeforeParsingAndTheOlderOneIsUsed) {
  const auto dir = test::temp_dir("ckpt");
  Checkpoint ck;
  ck.config = "x: 1\n";
  ck.model["w"] = at::arange(64, at::kFloat);
  ck.step = 3;
  write_checkpoint(dir + "/" + checkpoint_name(3), ck);
  ck.step = 5;
  const std::string newest = dir + "/" + checkpoint_name(5);
  write_checkpoint(newest, ck);
  std::string bytes;
  {
    std::ifstream in(newest, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 1000u);
  // A flipped byte at many places (header, attributes, global structures, data): every one is
  // refused by the digest, and the previous checkpoint is chosen.
  for (size_t pos = 0; pos < bytes.size(); pos += bytes.size() / 97 + 1) {
    std::string bad = bytes;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x5a);
    std::ofstream(newest, std::ios::binary | std::ios::trunc) << bad;
    const CheckpointChoice c = newest_readable_checkpoint(dir);
    ASSERT_EQ(c.path, dir + "/" + checkpoint_name(3)) << "flipped byte " << pos;
    ASSERT_EQ(c.skipped.size(), 1u);
    EXPECT_NE(c.skipped[0].find("do not match their digest"), std::string::npos) << c.skipped[0];
  }
  // A cut file and a damaged sidecar are refused too.
  std::ofstream(newest, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  EXPECT_NE(newest_readable_checkpoint(dir).skipped.at(0).find("cut or damaged"), std::string::npos);
  std::ofstream(newest, std::ios::binary | std::ios::trunc) << bytes;
  std::ofstream(newest + ".sum", std::ios::trunc) << "garbage";
  EXPECT_NE(newest_readable_checkpoint(dir).skipped.at(0).find("not a checkpoint digest"), std::string::npos);
}

// Without a digest, libhdf5 parses the bytes: first in a child process (it can crash or hang
// on damaged files), then here. A flipped byte anywhere leaves the process standing and either
// refuses the file or (a byte libhdf5 never reads) gives back exactly what was written.
TEST(Checkpoint, DamagedCheckpointsWithoutDigestAreProbedInAChildProcess) {
  const auto dir = test::temp_dir("ckpt");
  Checkpoint ck;
  ck.config = "x: 1\n";
  ck.model["w"] = at::arange(64, at::kFloat);
  ck.step = 3;
  write_checkpoint(dir + "/" + checkpoint_name(3), ck);
  ck.step = 5;
  const std::string newest = dir + "/" + checkpoint_name(5);
  write_checkpoint(newest, ck);
  fs::remove(newest + ".sum");
  // Intact: read through the probe.
  CheckpointChoice c = newest_readable_checkpoint(dir);
  ASSERT_EQ(c.path, newest);
  EXPECT_TRUE(c.checkpoint.model.at("w").equal(ck.model.at("w")));
  std::string bytes;
  {
    std::ifstream in(newest, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  int refused = 0;
  for (size_t pos = 0; pos < bytes.size(); pos += bytes.size() / 41 + 1) {
    std::string bad = bytes;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x5a);
    std::ofstream(newest, std::ios::binary | std::ios::trunc) << bad;
    c = newest_readable_checkpoint(dir);
    if (c.path == newest) {
      EXPECT_EQ(c.checkpoint.step, 5) << "flipped byte " << pos;
      EXPECT_TRUE(c.checkpoint.model.at("w").equal(ck.model.at("w"))) << "flipped byte " << pos;
    } else {
      ASSERT_EQ(c.path, dir + "/" + checkpoint_name(3)) << "flipped byte " << pos;
      ASSERT_EQ(c.skipped.size(), 1u);
      EXPECT_NE(c.skipped[0].find(newest), std::string::npos) << c.skipped[0];
      ++refused;
    }
  }
  EXPECT_GE(refused, 5);  // many bytes are padding libhdf5 never reads; these were not
}

TEST(Checkpoint, TheChecksumCoversTheStepEpochAndWorldSize) {
  const auto dir = test::temp_dir("ckpt");
  Checkpoint ck;
  ck.config = "x: 1\n";
  ck.model["w"] = at::arange(6, at::kFloat);
  ck.step = 7;
  const std::string path = dir + "/" + checkpoint_name(7);
  for (const char* attr : {"step", "epoch", "world_size"}) {
    write_checkpoint(path, ck);
    fs::remove(path + ".sum");  // an edit that also rewrote the sidecar would pass it
    {
      h5::File f = h5::File::open(path, /*writable=*/true);
      f.set_attr("/", attr, int64_t{9});
    }
    try {
      read_checkpoint(path);
      ADD_FAILURE() << "an edited " << attr << " was accepted";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << attr << ": " << e.what();
    }
  }
}

TEST(Checkpoint, NamesAreModulePaths) {
  auto model = small_cnn(1);
  const TensorMap m = module_state(*model);
  for (const char* name : {"trunk.block0.conv.weight", "trunk.block0.bn.running_mean", "trunk.block1.bn.weight",
                           "head.fc.weight", "head.fc.bias"})
    EXPECT_TRUE(m.count(name)) << name;
}

TEST(Checkpoint, ListsNewestFirst) {
  const auto dir = test::temp_dir("ckpt");
  for (int64_t s : {5, 100, 20}) std::ofstream(dir + "/" + checkpoint_name(s)) << "x";
  std::ofstream(dir + "/other.h5") << "x";
  const auto found = list_checkpoints(dir);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_NE(found[0].find(checkpoint_name(100)), std::string::npos);
  EXPECT_NE(found[2].find(checkpoint_name(5)), std::string::npos);
}

TEST(Checkpoint, TruncatedOrForeignFilesGiveClearErrors) {
  const auto dir = test::temp_dir("ckpt");
  auto model = small_cnn(1);
  Checkpoint ck;
  ck.model = module_state(*model);
  const std::string good = dir + "/good.h5";
  write_checkpoint(good, ck);
  const auto size = fs::file_size(good);
  const std::string cut = dir + "/cut.h5";
  fs::copy_file(good, cut);
  fs::resize_file(cut, size / 2);
  auto message = [](const std::string& p) -> std::string {
    try {
      read_checkpoint(p);
    } catch (const DataError& e) {
      return e.what();
    }
    return "<no error>";
  };
  EXPECT_NE(message(cut).find(cut), std::string::npos);
  EXPECT_NE(message(dir + "/nope.h5").find("file not found"), std::string::npos);
  std::ofstream(dir + "/text.h5") << "not hdf5";
  EXPECT_NE(message(dir + "/text.h5").find("not an HDF5 file"), std::string::npos);
  h5::File::create(dir + "/empty.h5");
  EXPECT_NE(message(dir + "/empty.h5").find("not an oodtrain checkpoint"), std::string::npos);
}

TEST(Checkpoint, MismatchedModelIsRefusedWithNames) {
  auto model = small_cnn(1);
  TensorMap state = module_state(*model);
  state["head.fc.weight"] = at::zeros({5, 8});
  state.erase("head.fc.bias");
  state["extra.weight"] = at::zeros({1});
  try {
    load_module_state(*model, state, "x.h5");
    FAIL();
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("x.h5"), std::string::npos);
    EXPECT_NE(msg.find("missing 'head.fc.bias'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'head.fc.weight' has shape [5, 8]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected 'extra.weight'"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace oodt
