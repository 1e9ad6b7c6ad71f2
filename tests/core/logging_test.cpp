// The run's flat logs: RFC 4180 CSV (core/csv.h) and TensorBoard event files (core/tb_writer.h).
// Expected bytes come from elsewhere: CRC-32C vectors from RFC 3720 (B.4) and the usual check
// value; event encodings from the protobuf library (tensorboard.compat.proto.event_pb2,
// SerializeToString); the record framing from TensorBoard's own reader
// (tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/csv.h"
#include "core/tb_writer.h"
#include "test_util.h"

namespace oodt {
namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) out += digits[c >> 4], out += digits[c & 15];
  return out;
}

TEST(Csv, QuotesOnlyWhatMustBeQuoted) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field(" spaced out "), " spaced out ");  // spaces belong to the field
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field("cr\rhere"), "\"cr\rhere\"");
  EXPECT_EQ(csv_field("\""), "\"\"\"\"");
}

TEST(Csv, RowsEndInCrlf) {
  EXPECT_EQ(csv_row({"step", "rot,0/in/acc", "", "q\""}), "step,\"rot,0/in/acc\",,\"q\"\"\"\r\n");
  EXPECT_EQ(csv_row({}), "\r\n");
}

TEST(Csv, NumbersAreShortestAndNonFiniteIsEmpty) {
  EXPECT_EQ(csv_number(0.05), "0.05");
  EXPECT_EQ(csv_number(24), "24");
  EXPECT_EQ(csv_number(-1.5e-300), "-1.5e-300");
  EXPECT_EQ(csv_number(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(csv_number(std::nan("")), "");
  EXPECT_EQ(csv_number(std::numeric_limits<double>::infinity()), "");
  EXPECT_EQ(csv_number(-std::numeric_limits<double>::infinity()), "");
}

TEST(Csv, ReadsBackWhatItWrites) {
  const std::vector<std::string> a = {"x", "a,b", "say \"hi\"", "two\r\nlines", ""};
  const std::vector<std::string> b = {"", ""};
  std::istringstream in(csv_row(a) + csv_row(b) + "last,row");  // the last record without a line end
  std::vector<std::string> row;
  ASSERT_TRUE(csv_read_row(in, row));
  EXPECT_EQ(row, a);
  ASSERT_TRUE(csv_read_row(in, row));
  EXPECT_EQ(row, b);
  ASSERT_TRUE(csv_read_row(in, row));
  EXPECT_EQ(row, (std::vector<std::string>{"last", "row"}));
  EXPECT_FALSE(csv_read_row(in, row));
  std::istringstream unix_lines("a,b\nc\n");
  ASSERT_TRUE(csv_read_row(unix_lines, row));
  EXPECT_EQ(row, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(csv_read_row(unix_lines, row));
  EXPECT_EQ(row, (std::vector<std::string>{"c"}));
  EXPECT_FALSE(csv_read_row(unix_lines, row));
}

TEST(TensorBoard, Crc32cKnownVectors) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  unsigned char buf[32];
  for (auto& c : buf) c = 0x00;
  EXPECT_EQ(crc32c(buf, 32), 0x8A9136AAu);
  for (auto& c : buf) c = 0xFF;
  EXPECT_EQ(crc32c(buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(buf, 32), 0x113FDB5Cu);
  // Continuing a CRC over a second part gives the CRC of the whole.
  EXPECT_EQ(crc32c(check.data() + 4, 5, crc32c(check.data(), 4)), 0xE3069283u);
}

TEST(TensorBoard, MaskedCrcAndRecordFraming) {
  const std::string check = "123456789";
  EXPECT_EQ(masked_crc32c(check.data(), check.size()), 0xC78AB0E5u);
  EXPECT_EQ(masked_crc32c("", 0), 0xA282EAD8u);
  EXPECT_EQ(hex(tf_record("hello")), "0500000000000000eab2043e68656c6c6fbb1f1c19");
}

TEST(TensorBoard, EventsEncodeAsProtobufDoes) {
  EXPECT_EQ(hex(scalar_event(1.5, 300, {{"train/loss", 0.25f}, {"a", -2.0f}})),
            "09000000000000f83f10ac022a1d0a110a0a747261696e2f6c6f7373150000803e0a080a016115000000c0");
  EXPECT_EQ(hex(scalar_event(1e9, (int64_t{1} << 40) + 5, {{"x", 1.0f}})),
            "090000000065cdcd41108580808080202a0a0a080a0178150000803f");
  EXPECT_EQ(hex(version_event(2.0)), "0900000000000000401a0d627261696e2e4576656e743a32");
  EXPECT_EQ(hex(session_start_event(3.25, 9)), "090000000000000a4010093a020801");
}

TEST(TensorBoard, WriterAppendsRecordsToANewFileEachTime) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("tb") + "/tb";
  std::string first;
  {
    TensorBoardWriter w;
    w.open(dir);
    first = w.path();
    EXPECT_NE(fs::path(first).filename().string().find("events.out.tfevents."), std::string::npos);
    w.session_start(1);
    w.scalars(1, {{"train/loss", 2.0f}});
    EXPECT_GT(w.pending(), 0u);
    w.flush();
    EXPECT_EQ(w.pending(), 0u);
    w.scalars(2, {{"train/loss", 1.0f}});
  }  // the destructor flushes
  TensorBoardWriter again;  // a resumed run, likely within the same second
  again.open(dir);
  EXPECT_NE(again.path(), first);
  // Walk the first file's records: lengths and CRCs consistent, four records.
  std::ifstream in(first, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = 0, records = 0;
  while (at < bytes.size()) {
    ASSERT_LE(at + 12, bytes.size());
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = len << 8 | static_cast<unsigned char>(bytes[at + i]);
    ASSERT_LE(at + 16 + len, bytes.size());
    EXPECT_EQ(tf_record(bytes.substr(at + 12, len)), bytes.substr(at, 16 + len));
    at += 16 + len;
    ++records;
  }
  EXPECT_EQ(records, 4u);
  // The first record is the version event: wall_time (9 bytes), then field 3's key and length.
  EXPECT_EQ(bytes.substr(12 + 11, 13), "brain.Event:2");
}

}  // namespace
}  // namespace oodt
