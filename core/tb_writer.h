#pragma once
// TensorBoard event files, written without TensorFlow or a protobuf library.
//
// An events file is a sequence of TFRecords, each
//   uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data
// where data is a serialized tensorflow.Event. The fields used here:
//   Event      { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//                SessionLog session_log = 7; }
//   Summary    { repeated Value value = 1; }
//   Value      { string tag = 1; float simple_value = 2; }
//   SessionLog { SessionStatus status = 1; }   (START = 1)
// The first record carries file_version "brain.Event:2", and a SessionLog START event precedes
// the first step a process writes. TensorBoard reads the files of a folder in name order and,
// at each START after the first, drops the events it holds from that step on: a run resumed
// from a checkpoint behind its last logged step shows one curve, not the replayed steps twice.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace oodt {

// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial value and final XOR
// 0xFFFFFFFF), continuing from `crc` (the CRC of the bytes before; 0 for none).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
// The CRC as TFRecord stores it: rotated right by 15 bits plus 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

// One TFRecord around `data`.
std::string tf_record(const std::string& data);
// A serialized tensorflow.Event holding a Summary of simple_value scalars.
std::string scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& values);
// The serialized first Event of a file: wall_time and file_version "brain.Event:2".
std::string version_event(double wall_time);
// A serialized Event with SessionLog START at `step`: a (re)start from there.
std::string session_start_event(double wall_time, int64_t step);

// Scalars into one events file. Records are kept in memory until flush() (or destruction)
// appends them; a write that fails is an Error naming the file.
class TensorBoardWriter {
 public:
  TensorBoardWriter() = default;
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  ~TensorBoardWriter();

  // Creates `dir` if needed and starts a new file there, events.out.tfevents.<unix
  // time>.<hostname> (TensorBoard reads every file whose name holds "tfevents"; a name already
  // taken gets a suffix .1, .2, ...), with the version record.
  void open(const std::string& dir);
  bool is_open() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // A START event at `step`, the first step this process writes (before its scalars).
  void session_start(int64_t step);
  // One event at `step` with these scalars, stamped with the current time. No-op when not open.
  void scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values);
  // Appends what is pending to the file.
  void flush();
  // Bytes waiting for flush().
  size_t pending() const { return pending_.size(); }

 private:
  std::string path_;
  std::ofstream out_;
  std::string pending_;
};

// Seconds since the Unix epoch, as an event's wall_time.
double unix_time_now();

}  // namespace oodt
