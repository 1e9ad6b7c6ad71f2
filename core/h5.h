#pragma once
// Thin RAII layer over the HDF5 C API. Every failure becomes a DataError naming the file and
// the object; HDF5's own error-stack printing is switched off.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/torch_fwd.h"

namespace oodt::h5 {

// libhdf5 as Debian builds it (serial, without --enable-threadsafe) must not be entered by two
// threads at once, and the data prefetch thread reads while the training thread writes a
// checkpoint: every call into it in this layer holds this process-wide lock. Recursive, so
// layered calls take it again. A fork() waits for it, and the child starts with it free.
class LibraryLock {
 public:
  LibraryLock();
  ~LibraryLock();
  LibraryLock(const LibraryLock&) = delete;
  LibraryLock& operator=(const LibraryLock&) = delete;
};

// Owns one hid_t and closes it with the right H5*close.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset();
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

class File {
 public:
  // Opens an existing file read-only (or read-write); DataError if missing or not HDF5.
  static File open(const std::string& path, bool writable = false);
  // Creates (truncates) a file.
  static File create(const std::string& path);
  const std::string& path() const { return path_; }
  hid_t id() const { return h_.id(); }
  void flush();
  void close() { h_.reset(); }

  bool exists(const std::string& object) const;
  // Creates the group and any missing parents.
  void make_group(const std::string& group);
  // Names of the members of a group.
  std::vector<std::string> list(const std::string& group) const;

  // Tensors (float32/64, int64/32, uint8, bool stored as uint8). `chunk_rows` > 0 stores the
  // dataset chunked along dim 0 and deflate-compressed at `level`.
  void write(const std::string& name, const at::Tensor& t, int64_t chunk_rows = 0, int level = 4);
  at::Tensor read(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;

  // Text as a uint8 dataset (no variable-length type: nothing in HDF5's global heap).
  void write_text(const std::string& name, const std::string& text);
  std::string read_text(const std::string& name) const;
  // The element type of a dataset.
  at::ScalarType dtype(const std::string& name) const;

  // Attributes on an object ("/" for the file). Strings are variable-length UTF-8 (as h5py
  // writes str), or with set_attr_fixed a fixed-length string stored in the object header.
  void set_attr(const std::string& object, const std::string& key, const std::string& value);
  void set_attr_fixed(const std::string& object, const std::string& key, const std::string& value);
  void set_attr(const std::string& object, const std::string& key, int64_t value);
  void set_attr(const std::string& object, const std::string& key, double value);
  void set_attr(const std::string& object, const std::string& key, const std::vector<std::string>& value);
  bool has_attr(const std::string& object, const std::string& key) const;
  std::string attr_string(const std::string& object, const std::string& key) const;
  int64_t attr_int(const std::string& object, const std::string& key) const;
  double attr_double(const std::string& object, const std::string& key) const;
  std::vector<std::string> attr_strings(const std::string& object, const std::string& key) const;

  // A dataset handle with a chunk cache of `cache_bytes` (for datasets read many times).
  Handle open_dataset(const std::string& name, size_t cache_bytes) const;
  // Rows [start, start + count) of a dataset into `out` (contiguous, at least `count` rows of
  // its dtype, reused by the caller): one regular hyperslab, HDF5's fast path (a block that is
  // exactly one chunk is decoded straight into `out`).
  void read_block_into(hid_t dataset, int64_t start, int64_t count, at::Tensor& out) const;
  // A dataset written a block of rows at a time (write_rows_from): `shape` known up front,
  // chunked `chunk_rows` along dim 0, deflate at `level` (0: none, for already compressed
  // bytes such as JPEG).
  Handle create_dataset(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape,
                        int64_t chunk_rows, int level = 0);
  void write_rows_from(hid_t dataset, int64_t start, const at::Tensor& rows);
  // Rows per chunk along dim 0 of a chunked dataset; 0 for a contiguous one.
  int64_t chunk_rows(hid_t dataset) const;

 private:
  File(Handle h, std::string path) : h_(std::move(h)), path_(std::move(path)) {}
  [[noreturn]] void fail(const std::string& object, const std::string& what) const;
  void put_attr(const std::string& object, const std::string& key, hid_t type, hid_t space, const void* data);
  Handle h_;
  std::string path_;
};

// Turns HDF5's automatic error printing off (once per thread).
void quiet();
// The usual name of a tensor dtype ("uint8", "float32", ...), for messages.
std::string dtype_name(at::ScalarType t);
// Native HDF5 type for a tensor dtype.
hid_t native_type(at::ScalarType t);

}  // namespace oodt::h5
