#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/h5.h"
#include "data/domain_dataset.h"
#include "data/prefetch.h"
#include "data/prepare.h"
#include "test_util.h"

namespace oodt {
namespace {

TEST(Sharding, EveryItemOncePerEpochAcrossRanks) {
  for (int world : {1, 2, 3, 4}) {
    const int64_t n = 120;  // divisible by every world size here
    for (int64_t epoch : {0, 1, 5}) {
      std::multiset<int64_t> seen;
      for (int r = 0; r < world; ++r) {
        const auto s = epoch_shard(n, 11, epoch, r, world);
        EXPECT_EQ(static_cast<int64_t>(s.size()), n / world);
        seen.insert(s.begin(), s.end());
      }
      ASSERT_EQ(static_cast<int64_t>(seen.size()), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen.count(i), 1u) << "world " << world << " epoch " << epoch;
    }
  }
}

TEST(Sharding, UnevenCountsPadSoRanksStayInStep) {
  const int64_t n = 10;
  const int world = 4;
  std::set<int64_t> seen;
  for (int r = 0; r < world; ++r) {
    const auto s = epoch_shard(n, 3, 0, r, world);
    EXPECT_EQ(s.size(), 3u);  // ceil(10 / 4)
    seen.insert(s.begin(), s.end());
  }
  EXPECT_EQ(seen.size(), 10u);  // all covered; two repeated
}

TEST(Sharding, DeterministicPerSeedAndEpochAndShuffled) {
  EXPECT_EQ(epoch_shard(50, 1, 0, 0, 2), epoch_shard(50, 1, 0, 0, 2));
  EXPECT_NE(epoch_shard(50, 1, 0, 0, 2), epoch_shard(50, 1, 1, 0, 2));
  EXPECT_NE(epoch_shard(50, 1, 0, 0, 2), epoch_shard(50, 2, 0, 0, 2));
}

TEST(Holdout, FractionAndDeterminism) {
  const auto out = holdout_positions(100, 0.2, 9);
  EXPECT_EQ(out.size(), 20u);
  EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
  EXPECT_EQ(out, holdout_positions(100, 0.2, 9));
  EXPECT_NE(out, holdout_positions(100, 0.2, 10));
}

DataOptions options_for(const std::string& path) {
  DataOptions o;
  o.path = path;
  o.test_domains = {"dom2"};
  o.batch_size = 6;  // 3 per training domain
  o.holdout_fraction = 0.25;
  return o;
}

// Row index of each sample, decoded from the synthetic images (pixel = row % 251).
std::vector<int64_t> rows_of(const Batch& b) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < b.size(); ++i) v.push_back(std::lround(b.inputs[i][0][0][0].item<double>() * 255.0));
  return v;
}

TEST(DomainDataset, BalancedBatchesNeverFromHeldOutDomains) {
  const auto dir = test::temp_dir("data");
  const auto path = test::write_domain_file(dir, 3, 40, 5);
  DomainDataset ds(options_for(path), 0, 0, 1);
  EXPECT_EQ(ds.num_classes(), 5);
  EXPECT_EQ(ds.input_shape(), (std::vector<int64_t>{1, 4, 4}));
  EXPECT_TRUE(ds.domains()[2].held_out);
  EXPECT_FALSE(ds.domains()[0].held_out);
  int interleaved_steps = 0;
  for (int64_t step = 0; step < 20; ++step) {
    const Batch b = ds.train_batch(step);
    ASSERT_EQ(b.size(), 6);
    std::map<int64_t, int> per_domain;
    for (int64_t i = 0; i < b.size(); ++i) per_domain[b.domains[i].item<int64_t>()]++;
    EXPECT_EQ(per_domain[0], 3);
    EXPECT_EQ(per_domain[1], 3);
    EXPECT_EQ(per_domain.count(2), 0u);
    int changes = 0;  // domain changes along the batch: 1 if the domains came in blocks
    for (int64_t i = 0; i + 1 < b.size(); ++i) changes += b.domains[i].item<int64_t>() != b.domains[i + 1].item<int64_t>();
    interleaved_steps += changes > 1;
    // Labels travel with their images.
    const auto rows = rows_of(b);
    for (int64_t i = 0; i < b.size(); ++i) EXPECT_EQ(b.labels[i].item<int64_t>(), rows[i] % 5);
  }
  // Domains are shuffled together, not one block after another (a random order of 3 + 3 comes
  // out in two blocks with probability 0.1).
  EXPECT_GT(interleaved_steps, 12);
}

TEST(DomainDataset, TwoRanksCoverEachInSplitSampleOncePerEpoch) {
  const auto dir = test::temp_dir("data");
  const auto path = test::write_domain_file(dir, 3, 40, 5);  // 30 in-split samples per domain
  DomainDataset r0(options_for(path), 5, 0, 2), r1(options_for(path), 5, 1, 2);
  // 15 samples per rank and domain, 3 per step: one epoch of a domain is 5 steps.
  std::multiset<int64_t> seen;
  for (int64_t step = 0; step < 5; ++step) {
    for (auto* ds : {&r0, &r1}) {
      for (int64_t r : rows_of(ds->train_batch(step))) seen.insert(r);
    }
  }
  std::multiset<int64_t> want;
  for (int64_t d : {0, 1})
    for (int64_t r : r0.split_rows(d, "in")) want.insert(r);
  EXPECT_EQ(seen, want);
  // The in and out parts of a domain are disjoint and together make the domain.
  for (int64_t d = 0; d < 3; ++d) {
    std::set<int64_t> all(r0.split_rows(d, "in").begin(), r0.split_rows(d, "in").end());
    for (int64_t r : r0.split_rows(d, "out")) EXPECT_TRUE(all.insert(r).second);
    EXPECT_EQ(all.size(), 40u);
    EXPECT_EQ(r0.split_rows(d, "out").size(), 10u);
  }
}

TEST(DomainDataset, BatchesArePureFunctionsOfTheStep) {
  const auto dir = test::temp_dir("data");
  const auto path = test::write_domain_file(dir, 3, 40, 5);
  DomainDataset a(options_for(path), 1, 0, 1), b(options_for(path), 1, 0, 1);
  for (int64_t s = 0; s < 30; ++s) a.train_batch(s);  // advance a
  EXPECT_TRUE(at::equal(a.train_batch(17).inputs, b.train_batch(17).inputs));
  EXPECT_FALSE(at::equal(a.train_batch(3).inputs, b.train_batch(4).inputs));
}

TEST(DomainDataset, EvalSharesCoverEverySplitOnce) {
  const auto dir = test::temp_dir("data");
  const auto path = test::write_domain_file(dir, 3, 40, 5);
  DomainDataset r0(options_for(path), 0, 0, 2), r1(options_for(path), 0, 1, 2);
  for (const EvalSplit& split : r0.eval_splits()) {
    std::multiset<int64_t> seen;
    for (auto* ds : {&r0, &r1})
      ds->for_each_eval_batch(split, 4, [&](const Batch& b) {
        EXPECT_LE(b.size(), 4);
        for (int64_t r : rows_of(b)) seen.insert(r);
      });
    const auto& rows = r0.split_rows(split.domain, split.part);
    EXPECT_EQ(seen, std::multiset<int64_t>(rows.begin(), rows.end()));
  }
}

TEST(Prefetch, SameBatchesAsReadingOnTheSpotInAnyOrder) {
  // Sequential steps (read ahead), a jump (a resume), a step revisited, a reshard in between
  // and evaluation batches interleaved: every batch equals the plain reader's.
  const auto dir = test::temp_dir("data");
  const auto path = test::write_domain_file(dir, 3, 40, 5);
  DomainDataset plain(options_for(path), 3, 0, 1);
  PrefetchingSource ahead(std::make_unique<DomainDataset>(options_for(path), 3, 0, 1), 2);
  auto same = [&](int64_t step) {
    EXPECT_TRUE(at::equal(ahead.train_batch(step).inputs, plain.train_batch(step).inputs)) << "step " << step;
  };
  for (int64_t s = 0; s < 12; ++s) {
    same(s);
    if (s == 5) {
      int64_t n = 0;
      ahead.for_each_eval_batch(EvalSplit{0, "out"}, 4, [&](const Batch& b) { n += b.size(); });
      EXPECT_EQ(n, 10);
    }
  }
  EXPECT_GE(ahead.hits(), 9);  // after the first, sequential steps were read ahead
  same(40);                    // a jump: read on the spot
  same(7);
  same(8);
  ASSERT_NE(ahead.as<ReshardableSource>(), nullptr);  // offered because the wrapped source offers it
  plain.reshard(9, 1, 2);
  ahead.as<ReshardableSource>()->reshard(9, 1, 2);  // drops what was read ahead for the old shard
  for (int64_t s = 8; s < 14; ++s) same(s);
}

TEST(Prefetch, ErrorsReachTheTrainingThread) {
  struct Failing final : DataSource {
    std::vector<DomainInfo> d{{"x", false}};
    int64_t num_classes() const override { return 2; }
    std::vector<int64_t> input_shape() const override { return {1, 1, 1}; }
    const std::vector<DomainInfo>& domains() const override { return d; }
    int64_t batch_size() const override { return 1; }
    Batch train_batch(int64_t step) override {
      if (step == 2) throw DataError("step 2 is unreadable");
      Batch b;
      b.labels = at::zeros({1}, at::kLong);
      return b;
    }
    int64_t epoch_of(int64_t) const override { return 0; }
    int64_t steps_per_epoch() const override { return 1; }
    std::vector<EvalSplit> eval_splits() const override { return {}; }
    void for_each_eval_batch(const EvalSplit&, int64_t, const std::function<void(const Batch&)>&) override {}
  };
  PrefetchingSource ahead(std::make_unique<Failing>(), 3);
  EXPECT_EQ(ahead.as<ReshardableSource>(), nullptr);  // the wrapped source offers no optional interface
  EXPECT_EQ(ahead.as<PooledSource>(), nullptr);
  ahead.train_batch(0);
  ahead.train_batch(1);
  EXPECT_THROW(ahead.train_batch(2), DataError);
  EXPECT_EQ(ahead.train_batch(3).size(), 1);
}

std::string error_of(const DataOptions& o) {
  try {
    DomainDataset ds(o, 0, 0, 1);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<none>";
}

TEST(DomainDataset, ClearErrorsForBadFiles) {
  const auto dir = test::temp_dir("data");
  DataOptions o = options_for(dir + "/missing.h5");
  EXPECT_NE(error_of(o).find("missing.h5: file not found"), std::string::npos) << error_of(o);

  const auto path = test::write_domain_file(dir, 3, 40, 5);
  o = options_for(path);
  o.test_domains = {"dom7"};
  EXPECT_NE(error_of(o).find("data.test_domains: 'dom7' is not a domain"), std::string::npos) << error_of(o);

  {
    h5::File f = h5::File::create(dir + "/nolabels.h5");
    f.write("/images", at::zeros({4, 1, 2, 2}, at::kByte));
    f.write("/domains", at::zeros({4}, at::kLong));
  }
  o.path = dir + "/nolabels.h5";
  EXPECT_NE(error_of(o).find("/labels is missing"), std::string::npos) << error_of(o);

  {
    h5::File f = h5::File::create(dir + "/shapes.h5");
    f.write("/images", at::zeros({4, 1, 2, 2}, at::kByte));
    f.write("/labels", at::zeros({3}, at::kLong));
    f.write("/domains", at::zeros({4}, at::kLong));
  }
  o.path = dir + "/shapes.h5";
  EXPECT_NE(error_of(o).find("/labels must have shape [4]"), std::string::npos) << error_of(o);
}

TEST(Prepare, RotationByNinetyDegreesIsAnExactRot90) {
  const int64_t n = 28;
  std::vector<uint8_t> img(n * n);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>((i * 37) % 256);
  const auto same = rotate_image(img.data(), n, n, 0);
  EXPECT_EQ(same, img);
  const auto r = rotate_image(img.data(), n, n, 90);
  // Counter-clockwise: the right column becomes the top row.
  for (int64_t y = 0; y < n; ++y)
    for (int64_t x = 0; x < n; ++x) ASSERT_EQ(r[y * n + x], img[x * n + (n - 1 - y)]) << y << "," << x;
}

TEST(Prepare, IdxErrorsNameTheFile) {
  const auto dir = test::temp_dir("idx");
  std::ofstream(dir + "/images") << "garbage";
  std::ofstream(dir + "/labels") << "garbage";
  try {
    read_idx(dir + "/images", dir + "/labels");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not an IDX image file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace oodt
