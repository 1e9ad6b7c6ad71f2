#include "core/tb_writer.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"

namespace oodt {
namespace fs = std::filesystem;

namespace {

// crc_table[b]: the CRC register after shifting byte b through it, one bit at a time.
std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t r = b;
    for (int bit = 0; bit < 8; ++bit) r = (r & 1) ? (r >> 1) ^ 0x82F63B78u : r >> 1;
    table[b] = r;
  }
  return table;
}

// Protocol buffers' wire format, the three kinds used here.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_fixed(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A field's key: its number and wire type (0 varint, 1 64-bit, 2 length-delimited, 5 32-bit).
void put_key(std::string& out, int field, int wire_type) { put_varint(out, static_cast<uint64_t>(field) << 3 | wire_type); }

void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}

void put_double(std::string& out, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, 1);
  put_fixed(out, bits, 8);
}

void put_float(std::string& out, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, 5);
  put_fixed(out, bits, 4);
}

std::string hostname() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "localhost";
  std::string h = host;
  for (char& c : h)
    if (c == '/') c = '_';
  return h;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t r = ~crc;
  for (size_t i = 0; i < size; ++i) r = table[(r ^ p[i]) & 0xFF] ^ (r >> 8);
  return ~r;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tf_record(const std::string& data) {
  std::string out;
  put_fixed(out, data.size(), 8);
  put_fixed(out, masked_crc32c(out.data(), 8), 4);
  out += data;
  put_fixed(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

namespace {
void put_step(std::string& event, int64_t step) {
  // int64 is a varint of the two's complement; 0, the default, is left out as protobuf does.
  if (step == 0) return;
  put_key(event, 2, 0);
  put_varint(event, static_cast<uint64_t>(step));
}
}  // namespace

std::string scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    put_bytes(v, 1, tag);
    put_float(v, 2, value);
    put_bytes(summary, 1, v);
  }
  std::string event;
  put_double(event, 1, wall_time);
  put_step(event, step);
  put_bytes(event, 5, summary);
  return event;
}

std::string version_event(double wall_time) {
  std::string event;
  put_double(event, 1, wall_time);
  put_bytes(event, 3, "brain.Event:2");
  return event;
}

std::string session_start_event(double wall_time, int64_t step) {
  std::string log;
  put_key(log, 1, 0);
  put_varint(log, 1);  // SessionStatus START
  std::string event;
  put_double(event, 1, wall_time);
  put_step(event, step);
  put_bytes(event, 7, log);
  return event;
}

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const std::exception&) {
    // A destructor cannot report it; the flushes during the run did.
  }
}

void TensorBoardWriter::open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(concat("cannot create ", dir, ": ", ec.message()));
  const double now = unix_time_now();
  const std::string base =
      (fs::path(dir) / concat("events.out.tfevents.", static_cast<long long>(now), ".", hostname())).string();
  std::string path = base;
  // A run resumed within the same second (or two writers on one host): never append to another file.
  for (int i = 1; fs::exists(path, ec); ++i) path = concat(base, ".", i);
  out_.open(path, std::ios::binary | std::ios::out | std::ios::app);
  if (!out_) throw Error(concat("cannot write ", path, ": ", std::strerror(errno)));
  path_ = path;
  pending_ = tf_record(version_event(now));
  flush();
}

void TensorBoardWriter::session_start(int64_t step) {
  if (is_open()) pending_ += tf_record(session_start_event(unix_time_now(), step));
}

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values) {
  if (!is_open() || values.empty()) return;
  pending_ += tf_record(scalar_event(unix_time_now(), step, values));
}

void TensorBoardWriter::flush() {
  if (!is_open() || pending_.empty()) return;
  out_.write(pending_.data(), static_cast<std::streamsize>(pending_.size()));
  out_.flush();
  pending_.clear();
  if (!out_) throw Error(concat("cannot write ", path_, " (a full disk or a lost mount?)"));
}

}  // namespace oodt
