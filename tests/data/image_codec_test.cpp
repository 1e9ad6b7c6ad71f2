// data/image_codec: decodes against PIL's own decodes of the same files (tests/fixtures/images,
// made by tests/golden/make_image_fixtures.py), header probing, DCT scaling, error handling and
// concurrent use.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/h5.h"
#include "data/image_codec.h"
#include "test_util.h"

namespace oodt {
namespace {

constexpr int64_t kH = 23, kW = 37;  // every fixture image

std::vector<uint8_t> read_bytes(const std::string& name) {
  std::ifstream in(test::fixture("images/" + name), std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

at::Tensor decode_fixture(const std::string& name, int64_t min_h = 0, int64_t min_w = 0) {
  const auto bytes = read_bytes(name);
  return decode_image(bytes.data(), bytes.size(), name, min_h, min_w);
}

at::Tensor expected(const std::string& dataset) {
  return h5::File::open(test::fixture("images/expected.h5")).read(dataset);
}

const std::vector<std::string> kJpegs = {"baseline.jpg", "sub444.jpg",  "sub422.jpg", "progressive.jpg",
                                         "gray.jpg",     "cmyk.jpg",    "ycck.jpg"};
const std::vector<std::string> kPngs = {"rgb.png",     "rgba.png",     "la.png",           "gray.png",
                                        "gray1.png",   "palette.png",  "palette_trns.png", "gray16.png",
                                        "rgb16.png",   "interlaced.png"};

// The message of the DataError `f` throws ("" and a test failure if it throws none).
template <typename F>
std::string data_error(F f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a DataError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(ImageCodec, SniffsByMagicBytes) {
  const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0};
  const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0};
  const uint8_t png_cut[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A};
  const uint8_t text[] = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r'};
  EXPECT_EQ(sniff_image(jpeg, sizeof jpeg), ImageFormat::Jpeg);
  EXPECT_EQ(sniff_image(jpeg, 3), ImageFormat::Jpeg);
  EXPECT_EQ(sniff_image(jpeg, 2), ImageFormat::Unknown);
  EXPECT_EQ(sniff_image(png, sizeof png), ImageFormat::Png);
  EXPECT_EQ(sniff_image(png_cut, sizeof png_cut), ImageFormat::Unknown);
  EXPECT_EQ(sniff_image(text, sizeof text), ImageFormat::Unknown);
  EXPECT_EQ(sniff_image(nullptr, 0), ImageFormat::Unknown);
  for (const auto& name : kJpegs) {
    const auto b = read_bytes(name);
    EXPECT_EQ(sniff_image(b.data(), b.size()), ImageFormat::Jpeg) << name;
  }
  for (const auto& name : kPngs) {
    const auto b = read_bytes(name);
    EXPECT_EQ(sniff_image(b.data(), b.size()), ImageFormat::Png) << name;
  }
}

TEST(ImageCodec, ProbeReportsTheHeader) {
  struct Case {
    std::string name;
    ImageFormat format;
    int64_t h, w;
    int channels, bit_depth;
    std::string color;
  };
  // As the fixture script made them (PNG depths read from the IHDR bytes: PIL writes a
  // 13-colour palette with 4-bit indices).
  const std::vector<Case> cases = {
      {"baseline.jpg", ImageFormat::Jpeg, kH, kW, 3, 8, "rgb"},
      {"progressive.jpg", ImageFormat::Jpeg, kH, kW, 3, 8, "rgb"},
      {"sub444.jpg", ImageFormat::Jpeg, kH, kW, 3, 8, "rgb"},
      {"gray.jpg", ImageFormat::Jpeg, kH, kW, 1, 8, "gray"},
      {"cmyk.jpg", ImageFormat::Jpeg, kH, kW, 4, 8, "cmyk"},
      {"ycck.jpg", ImageFormat::Jpeg, kH, kW, 4, 8, "ycck"},
      {"rgb.png", ImageFormat::Png, kH, kW, 3, 8, "rgb"},
      {"rgba.png", ImageFormat::Png, kH, kW, 4, 8, "rgba"},
      {"la.png", ImageFormat::Png, kH, kW, 2, 8, "gray+alpha"},
      {"gray.png", ImageFormat::Png, kH, kW, 1, 8, "gray"},
      {"gray1.png", ImageFormat::Png, kH, kW, 1, 1, "gray"},
      {"palette.png", ImageFormat::Png, kH, kW, 1, 4, "palette"},
      {"gray16.png", ImageFormat::Png, kH, kW, 1, 16, "gray"},
      {"rgb16.png", ImageFormat::Png, kH, kW, 3, 16, "rgb"},
      {"interlaced.png", ImageFormat::Png, kH, kW, 3, 8, "rgb"},
      // Header-only: these fail to decode, but their headers are sound.
      {"truncated.jpg", ImageFormat::Jpeg, kH, kW, 3, 8, "rgb"},
      {"corrupt_scan.jpg", ImageFormat::Jpeg, kH, kW, 3, 8, "rgb"},
      {"bad_crc.png", ImageFormat::Png, kH, kW, 3, 8, "rgb"},
      {"huge.jpg", ImageFormat::Jpeg, 65000, 65000, 3, 8, "rgb"},
      {"huge.png", ImageFormat::Png, 30000, 30000, 1, 8, "gray"},
  };
  for (const auto& c : cases) {
    const auto bytes = read_bytes(c.name);
    const ImageInfo info = probe_image(bytes.data(), bytes.size(), c.name);
    EXPECT_EQ(info.format, c.format) << c.name;
    EXPECT_EQ(info.height, c.h) << c.name;
    EXPECT_EQ(info.width, c.w) << c.name;
    EXPECT_EQ(info.channels, c.channels) << c.name;
    EXPECT_EQ(info.bit_depth, c.bit_depth) << c.name;
    EXPECT_EQ(info.color, c.color) << c.name;
  }
}

// Exact equality, JPEG included: PIL decodes with the same libjpeg-turbo 2.1.5 and the same
// settings (ISLOW IDCT, fancy upsampling), so there is no rounding difference to allow for.
TEST(ImageCodec, DecodesExactlyAsPil) {
  std::vector<std::string> all = kJpegs;
  all.insert(all.end(), kPngs.begin(), kPngs.end());
  for (const auto& name : all) {
    const at::Tensor got = decode_fixture(name);
    const at::Tensor want = expected(name);
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    EXPECT_EQ(got.scalar_type(), at::kByte) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << name;
  }
}

// PIL's draft('RGB', (W // s, H // s)) picks libjpeg scale 1/s; asking for the same minimums
// must pick the same factor (the smallest covering one) and give the same pixels.
TEST(ImageCodec, DctScalingMatchesPilDraft) {
  for (const auto& name : kJpegs) {
    for (int s : {2, 4, 8}) {
      const at::Tensor want = expected("draft" + std::to_string(s) + "/" + name);
      const at::Tensor got = decode_fixture(name, kH / s, kW / s);
      ASSERT_EQ(got.sizes(), want.sizes()) << name << " 1/" << s;
      EXPECT_EQ(test::max_abs_diff(got, want), 0.0) << name << " 1/" << s;
    }
  }
}

TEST(ImageCodec, PicksTheSmallestCoveringScale) {
  // Sizes worked out by hand from libjpeg-turbo's factors k/8 (k = 1..8), ceil(37 k / 8) x
  // ceil(23 k / 8): 1/8 -> 5x3, 1/4 -> 10x6, 3/8 -> 14x9, 1/2 -> 19x12, 5/8 -> 24x15, 1 -> 37x23.
  struct Case {
    int64_t min_h, min_w, h, w;
  };
  const std::vector<Case> cases = {
      {0, 0, 23, 37},    // no minimum: no scaling
      {1, 1, 3, 5},      // 1/8
      {9, 14, 9, 14},    // 3/8 exactly covers
      {10, 14, 12, 19},  // 3/8 too short (9 < 10): 1/2
      {0, 20, 15, 24},   // only the width counts: 1/2 too narrow (19), 5/8
      {16, 0, 18, 28},   // only the height: 5/8 gives 15 < 16, 3/4 gives 18 (x 28)
      {23, 37, 23, 37},  // exactly the full size
      {24, 1, 23, 37},   // nothing <= 1 covers: full size, never upscaled
  };
  for (const auto& c : cases) {
    const at::Tensor got = decode_fixture("baseline.jpg", c.min_h, c.min_w);
    EXPECT_EQ(got.sizes(), (at::IntArrayRef{c.h, c.w, 3})) << c.min_h << "x" << c.min_w;
  }
  // A 3/8 decode (no PIL counterpart) still shows the same picture: its mean colour is close to
  // the full decode's (128, 128, 163). Not equal: the partial edge blocks, padded by libjpeg,
  // weigh differently; a swapped or shifted channel would be off by tens.
  const at::Tensor full = decode_fixture("sub444.jpg").to(at::kFloat);
  const at::Tensor small = decode_fixture("sub444.jpg", 9, 14).to(at::kFloat);
  EXPECT_LT(test::max_abs_diff(full.mean(at::IntArrayRef{0, 1}), small.mean(at::IntArrayRef{0, 1})), 8.0);
  // PNG has no DCT: minimums are ignored.
  EXPECT_EQ(decode_fixture("rgb.png", 1, 1).sizes(), (at::IntArrayRef{kH, kW, 3}));
}

TEST(ImageCodec, BrokenDataIsADataErrorNamingTheFile) {
  struct Case {
    std::string name, reason;
  };
  const std::vector<Case> cases = {
      {"truncated.jpg", "corrupt or truncated JPEG data: Premature end of JPEG file"},
      {"corrupt_scan.jpg", "corrupt or truncated JPEG data: Corrupt JPEG data: bad Huffman code"},
      {"truncated.png", "PNG decoding failed: unexpected end of data"},
      {"bad_crc.png", "PNG decoding failed: IDAT: CRC error"},
      {"huge.jpg", "65000x65000 pixels is over the limit of 2^28 pixels"},
      {"huge.png", "30000x30000 pixels is over the limit of 2^28 pixels"},
      {"not_an_image.jpg", "not a JPEG or PNG image (starts with bytes 54 68 69 73)"},
      {"empty.jpg", "empty file"},
  };
  for (const auto& c : cases) {
    const auto bytes = read_bytes(c.name);
    const std::string what = "shard-3/" + c.name;
    const std::string msg = data_error([&] { decode_image(bytes.data(), bytes.size(), what); });
    EXPECT_EQ(msg.rfind(what + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.reason), std::string::npos) << c.name << ": " << msg;
  }
  // Scaled decodes are just as strict.
  const auto cut = read_bytes("truncated.jpg");
  EXPECT_NE(data_error([&] { decode_image(cut.data(), cut.size(), "t.jpg", 2, 2); }).find("t.jpg: "), std::string::npos);
  EXPECT_NE(data_error([&] { decode_image(nullptr, 0, "null"); }).find("null: empty file"), std::string::npos);
}

TEST(ImageCodec, ProbeRefusesWhatHasNoReadableHeader) {
  const auto text = read_bytes("not_an_image.jpg");
  EXPECT_NE(data_error([&] { probe_image(text.data(), text.size(), "a.jpg"); }).find("a.jpg: not a JPEG or PNG"),
            std::string::npos);
  EXPECT_NE(data_error([&] { probe_image(nullptr, 0, "b.jpg"); }).find("b.jpg: empty file"), std::string::npos);
  // Cut inside the headers: JPEG before its SOF, PNG inside IHDR.
  const auto jpeg = read_bytes("baseline.jpg");
  EXPECT_NE(data_error([&] { probe_image(jpeg.data(), 20, "c.jpg"); }).find("c.jpg: not a readable JPEG header"),
            std::string::npos);
  const auto png = read_bytes("rgb.png");
  EXPECT_NE(data_error([&] { probe_image(png.data(), 20, "d.png"); }).find("d.png: not a readable PNG header"),
            std::string::npos);
}

// Many threads decoding at once (JPEG, scaled JPEG, PNG, and failures, interleaved) give the
// single-threaded results.
TEST(ImageCodec, ConcurrentDecodesAgree) {
  struct Job {
    std::string name;
    int64_t min_h, min_w;
  };
  const std::vector<Job> jobs = {{"baseline.jpg", 0, 0}, {"progressive.jpg", 0, 0}, {"cmyk.jpg", 0, 0},
                                 {"sub444.jpg", 6, 10},  {"rgba.png", 0, 0},        {"interlaced.png", 0, 0},
                                 {"gray16.png", 0, 0},   {"palette_trns.png", 0, 0}};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<at::Tensor> reference;
  for (const auto& j : jobs) {
    bytes.push_back(read_bytes(j.name));
    reference.push_back(decode_image(bytes.back().data(), bytes.back().size(), j.name, j.min_h, j.min_w));
  }
  const auto bad = read_bytes("truncated.jpg");
  const auto bad_png = read_bytes("bad_crc.png");
  std::atomic<int> mismatches{0}, missed_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const size_t k = (t + i) % jobs.size();  // at any moment the threads work on different files
        const at::Tensor got = decode_image(bytes[k].data(), bytes[k].size(), jobs[k].name, jobs[k].min_h, jobs[k].min_w);
        if (!got.equal(reference[k])) ++mismatches;
        if (i % 10 == t % 10) {
          const auto& b = (t % 2) ? bad : bad_png;
          try {
            decode_image(b.data(), b.size(), "bad");
            ++missed_errors;
          } catch (const DataError&) {
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(missed_errors.load(), 0);
}

}  // namespace
}  // namespace oodt
