#include "core/h5.h"

#include <pthread.h>

#include <cstring>
#include <mutex>
#include <new>

#include "core/error.h"

namespace oodt::h5 {

namespace {
// A fork() (the checkpoint probe, core/checkpoint_file.cpp) waits until no thread is inside
// libhdf5 and gives the child a fresh, unlocked lock: the child's only thread is not the one
// that held it in the parent.
std::recursive_mutex* g_library_mutex = nullptr;
extern "C" void h5_fork_prepare() { g_library_mutex->lock(); }
extern "C" void h5_fork_parent() { g_library_mutex->unlock(); }
extern "C" void h5_fork_child() { new (g_library_mutex) std::recursive_mutex(); }

std::recursive_mutex& library_mutex() {
  static std::recursive_mutex* m = [] {
    g_library_mutex = new std::recursive_mutex();
    pthread_atfork(h5_fork_prepare, h5_fork_parent, h5_fork_child);
    return g_library_mutex;
  }();
  return *m;
}
}  // namespace

LibraryLock::LibraryLock() { library_mutex().lock(); }
LibraryLock::~LibraryLock() { library_mutex().unlock(); }

Handle& Handle::operator=(Handle&& o) noexcept {
  const LibraryLock lock;
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  const LibraryLock lock;
  if (id_ >= 0 && close_) close_(id_);
  id_ = -1;
}

void quiet() {
  const LibraryLock lock;
  // Thread-safe HDF5 keeps an error stack per thread: switch printing off in each.
  thread_local bool done = false;
  if (!done) H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr), done = true;
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

hid_t native_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return H5T_NATIVE_FLOAT;
    case at::kDouble: return H5T_NATIVE_DOUBLE;
    case at::kLong: return H5T_NATIVE_INT64;
    case at::kInt: return H5T_NATIVE_INT32;
    case at::kShort: return H5T_NATIVE_INT16;
    case at::kChar: return H5T_NATIVE_INT8;
    case at::kByte: return H5T_NATIVE_UINT8;
    case at::kBool: return H5T_NATIVE_UINT8;
    default: throw DataError(concat("HDF5: unsupported tensor dtype ", t));
  }
}

namespace {
at::ScalarType dtype_of(hid_t type, const std::string& where) {
  const H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_NO_CLASS) throw DataError(concat(where, ": cannot read its element type (corrupt?)"));
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? at::kFloat : at::kDouble;
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    if (size == 8) return at::kLong;
    if (size == 4) return at::kInt;
    if (size == 2 && is_signed) return at::kShort;
    if (size == 1) return is_signed ? at::kChar : at::kByte;
  }
  throw DataError(concat(where, ": unsupported HDF5 element type (class ", cls, ", ", size, " bytes)"));
}
}  // namespace

void File::fail(const std::string& object, const std::string& what) const {
  throw DataError(object.empty() ? concat(path_, ": ", what) : concat(path_, ": ", object, ": ", what));
}

File File::open(const std::string& path, bool writable) {
  const LibraryLock lock;
  quiet();
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
#endif
  if (is_hdf5 <= 0) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw DataError(concat(path, ": file not found (", std::strerror(errno), ")"));
    std::fclose(f);
    throw DataError(concat(path, ": not an HDF5 file, or truncated/corrupt"));
  }
  // Closing the file closes everything in it, even objects libhdf5 kept open internally after
  // a failed read of a damaged file: with the default (weak) degree such a file stays open,
  // and the next open of the same path shares its stale state (a use-after-free the
  // checkpoint fuzzer found).
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.valid() || H5Pset_fclose_degree(fapl.id(), H5F_CLOSE_STRONG) < 0)
    throw DataError(concat(path, ": cannot set up HDF5 file access"));
  hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.id());
  if (id < 0) throw DataError(concat(path, ": cannot open as HDF5 (corrupt or locked?)"));
  return File(Handle(id, H5Fclose), path);
}

File File::create(const std::string& path) {
  const LibraryLock lock;
  quiet();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw DataError(concat(path, ": cannot create HDF5 file"));
  return File(Handle(id, H5Fclose), path);
}

void File::flush() {
  const LibraryLock lock;
  if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) fail("", "flush failed");
}

bool File::exists(const std::string& object) const {
  const LibraryLock lock;
  if (object == "/" || object.empty()) return true;
  // Check each prefix so a missing parent is not an error.
  size_t pos = 0;
  while ((pos = object.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(id(), object.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(id(), object.c_str(), H5P_DEFAULT) > 0;
}

void File::make_group(const std::string& group) {
  const LibraryLock lock;
  if (exists(group)) return;
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  Handle g(H5Gcreate2(id(), group.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(group, "cannot create group");
}

std::vector<std::string> File::list(const std::string& group) const {
  const LibraryLock lock;
  std::vector<std::string> names;
  if (!exists(group)) return names;
  Handle g(H5Gopen2(id(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(group, "not a group");
  H5G_info_t info;
  if (H5Gget_info(g.id(), &info) < 0) fail(group, "cannot read the group (corrupt?)");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0 || n > 65535) fail(group, concat("cannot read the name of member ", i, " (corrupt?)"));
    std::string name(static_cast<size_t>(n), '\0');
    if (H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), static_cast<size_t>(n) + 1,
                           H5P_DEFAULT) < 0)
      fail(group, concat("cannot read the name of member ", i, " (corrupt?)"));
    names.push_back(name);
  }
  return names;
}

void File::write(const std::string& name, const at::Tensor& tensor, int64_t chunk_rows, int level) {
  const LibraryLock lock;
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  if (t.scalar_type() == at::kBool) t = t.to(at::kByte);
  const auto slash = name.rfind('/');
  if (slash != std::string::npos && slash > 0) make_group(name.substr(0, slash));
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (chunk_rows > 0 && !dims.empty() && dims[0] > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = std::min<hsize_t>(dims[0], static_cast<hsize_t>(chunk_rows));
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_shuffle(dcpl.id());
    H5Pset_deflate(dcpl.id(), static_cast<unsigned>(level));
  }
  const hid_t type = native_type(t.scalar_type());
  Handle ds(H5Dcreate2(id(), name.c_str(), type, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(name, "cannot create dataset");
  if (t.numel() > 0 && H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    fail(name, "write failed");
}

Handle File::create_dataset(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape,
                            int64_t chunk_rows, int level) {
  const LibraryLock lock;
  const auto slash = name.rfind('/');
  if (slash != std::string::npos && slash > 0) make_group(name.substr(0, slash));
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (chunk_rows > 0 && !dims.empty() && dims[0] > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = std::min<hsize_t>(dims[0], static_cast<hsize_t>(chunk_rows));
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    if (level > 0) {
      H5Pset_shuffle(dcpl.id());
      H5Pset_deflate(dcpl.id(), static_cast<unsigned>(level));
    }
  }
  Handle ds(H5Dcreate2(id(), name.c_str(), native_type(dtype), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(name, "cannot create dataset");
  return ds;
}

void File::write_rows_from(hid_t dataset, int64_t start, const at::Tensor& rows) {
  const LibraryLock lock;
  const at::Tensor t = rows.contiguous();
  if (t.numel() == 0) return;
  Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  OODT_CHECK(t.dim() == rank && start >= 0 && static_cast<hsize_t>(start + t.size(0)) <= dims[0], "write_rows_from: rows ",
             start, "+", t.size(0), " outside the dataset");
  std::vector<hsize_t> offset(dims.size(), 0), size(t.sizes().begin(), t.sizes().end());
  offset[0] = static_cast<hsize_t>(start);
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, offset.data(), nullptr, size.data(), nullptr);
  Handle mem(H5Screate_simple(rank, size.data(), nullptr), H5Sclose);
  if (H5Dwrite(dataset, native_type(t.scalar_type()), mem.id(), space.id(), H5P_DEFAULT, t.data_ptr()) < 0)
    fail("", concat("writing rows ", start, "..", start + t.size(0) - 1, " failed (disk full?)"));
}

std::vector<int64_t> File::shape(const std::string& name) const {
  const LibraryLock lock;
  if (!exists(name)) fail(name, "dataset not found");
  Handle ds(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(name, "not a dataset");
  Handle space(H5Dget_space(ds.id()), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.id()) : -1;
  if (rank < 0 || rank > 32) fail(name, "cannot read its shape (corrupt?)");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr) < 0) fail(name, "cannot read its shape (corrupt?)");
  return std::vector<int64_t>(dims.begin(), dims.end());
}

at::ScalarType File::dtype(const std::string& name) const {
  const LibraryLock lock;
  if (!exists(name)) fail(name, "dataset not found");
  Handle ds(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(name, "not a dataset");
  Handle type(H5Dget_type(ds.id()), H5Tclose);
  if (!type.valid()) fail(name, "cannot read its type (corrupt?)");
  return dtype_of(type.id(), path_ + ": " + name);
}

void File::write_text(const std::string& name, const std::string& text) {
  const LibraryLock lock;
  write(name, at::from_blob(const_cast<char*>(text.data()), {static_cast<int64_t>(text.size())}, at::kByte));
}

std::string File::read_text(const std::string& name) const {
  const LibraryLock lock;
  if (dtype(name) != at::kByte || shape(name).size() != 1) fail(name, "is not text (a 1-d uint8 dataset)");
  const at::Tensor t = read(name);
  return std::string(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()));
}

at::Tensor File::read(const std::string& name) const {
  const LibraryLock lock;
  const std::vector<int64_t> dims = shape(name);
  Handle ds(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(name, "not a dataset");
  Handle type(H5Dget_type(ds.id()), H5Tclose);
  if (!type.valid()) fail(name, "cannot read its type (corrupt?)");
  const at::ScalarType dtype = dtype_of(type.id(), path_ + ": " + name);
  at::Tensor out = at::empty(dims, at::TensorOptions().dtype(dtype));
  if (out.numel() > 0 && H5Dread(ds.id(), native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) < 0)
    fail(name, "read failed (corrupt data?)");
  return out;
}

Handle File::open_dataset(const std::string& name, size_t cache_bytes) const {
  const LibraryLock lock;
  if (!exists(name)) fail(name, "dataset not found");
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  H5Pset_chunk_cache(dapl.id(), 12421, cache_bytes, 1.0);
  Handle ds(H5Dopen2(id(), name.c_str(), dapl.id()), H5Dclose);
  if (!ds.valid()) fail(name, "cannot open dataset");
  return ds;
}

void File::read_block_into(hid_t dataset, int64_t start, int64_t count, at::Tensor& out) const {
  const LibraryLock lock;
  Handle space(H5Dget_space(dataset), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr);
  OODT_CHECK(start >= 0 && count >= 0 && static_cast<hsize_t>(start + count) <= dims[0], "block out of range");
  int64_t row = 1;
  for (size_t d = 1; d < dims.size(); ++d) row *= static_cast<int64_t>(dims[d]);
  OODT_CHECK(out.is_contiguous() && out.numel() >= count * row, "read_block_into: buffer too small");
  const at::ScalarType dtype = out.scalar_type();
  if (count == 0) return;
  std::vector<hsize_t> offset(dims.size(), 0), size = dims;
  offset[0] = static_cast<hsize_t>(start);
  size[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, offset.data(), nullptr, size.data(), nullptr);
  Handle mem(H5Screate_simple(rank, size.data(), nullptr), H5Sclose);
  if (H5Dread(dataset, native_type(dtype), mem.id(), space.id(), H5P_DEFAULT, out.data_ptr()) < 0)
    fail("", concat("reading rows ", start, "..", start + count - 1, " failed (corrupt data?)"));
}

int64_t File::chunk_rows(hid_t dataset) const {
  const LibraryLock lock;
  Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  if (H5Pget_layout(plist.id()) != H5D_CHUNKED) return 0;
  std::vector<hsize_t> dims(32);
  const int rank = H5Pget_chunk(plist.id(), static_cast<int>(dims.size()), dims.data());
  return rank > 0 ? static_cast<int64_t>(dims[0]) : 0;
}

namespace {
Handle open_object(hid_t file, const std::string& object) {
  return Handle(H5Oopen(file, object.empty() ? "/" : object.c_str(), H5P_DEFAULT), H5Oclose);
}
}  // namespace

// A UTF-8 variable-length string type (what h5py writes for str).
Handle vl_string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  return type;
}

void File::put_attr(const std::string& object, const std::string& key, hid_t type, hid_t space,
                    const void* data) {
  const LibraryLock lock;
  Handle obj = open_object(id(), object);
  if (!obj.valid()) fail(object, "no such object for attribute " + key);
  if (H5Aexists(obj.id(), key.c_str()) > 0) H5Adelete(obj.id(), key.c_str());
  Handle a(H5Acreate2(obj.id(), key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.id(), type, data) < 0) fail(object, "cannot write attribute " + key);
}

void File::set_attr(const std::string& object, const std::string& key, const std::string& value) {
  const LibraryLock lock;
  const Handle type = vl_string_type();
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  const char* p = value.c_str();
  put_attr(object, key, type.id(), space.id(), &p);
}

void File::set_attr_fixed(const std::string& object, const std::string& key, const std::string& value) {
  const LibraryLock lock;
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id(), std::max<size_t>(1, value.size()));
  H5Tset_strpad(type.id(), H5T_STR_NULLPAD);
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  std::string padded = value;
  padded.resize(std::max<size_t>(1, value.size()), '\0');
  put_attr(object, key, type.id(), space.id(), padded.data());
}

void File::set_attr(const std::string& object, const std::string& key, const std::vector<std::string>& value) {
  const LibraryLock lock;
  const Handle type = vl_string_type();
  const hsize_t n = value.size();
  const Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  std::vector<const char*> ptrs;
  for (const auto& v : value) ptrs.push_back(v.c_str());
  put_attr(object, key, type.id(), space.id(), ptrs.data());
}

void File::set_attr(const std::string& object, const std::string& key, int64_t value) {
  const LibraryLock lock;
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  put_attr(object, key, H5T_NATIVE_INT64, space.id(), &value);
}

void File::set_attr(const std::string& object, const std::string& key, double value) {
  const LibraryLock lock;
  const Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  put_attr(object, key, H5T_NATIVE_DOUBLE, space.id(), &value);
}

bool File::has_attr(const std::string& object, const std::string& key) const {
  const LibraryLock lock;
  Handle obj = open_object(id(), object);
  return obj.valid() && H5Aexists(obj.id(), key.c_str()) > 0;
}

namespace {
Handle open_attr(hid_t file, const std::string& object, const std::string& key) {
  Handle obj = open_object(file, object);
  if (!obj.valid()) return {};
  return Handle(H5Aopen(obj.id(), key.c_str(), H5P_DEFAULT), H5Aclose);
}
}  // namespace

std::vector<std::string> File::attr_strings(const std::string& object, const std::string& key) const {
  const LibraryLock lock;
  Handle a = open_attr(id(), object, key);
  if (!a.valid()) fail(object, "missing attribute '" + key + "'");
  Handle type(H5Aget_type(a.id()), H5Tclose);
  Handle space(H5Aget_space(a.id()), H5Sclose);
  if (!type.valid() || !space.valid() || H5Tget_class(type.id()) != H5T_STRING)
    fail(object, "attribute '" + key + "' is not a string");
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  if (n < 0 || n > (1 << 20)) fail(object, "attribute '" + key + "' has a corrupt size");
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.id()) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mtype.id(), H5T_VARIABLE);
    H5Tset_cset(mtype.id(), H5Tget_cset(type.id()));  // HDF5 will not convert between charsets
    std::vector<char*> ptrs(static_cast<size_t>(n), nullptr);
    if (H5Aread(a.id(), mtype.id(), ptrs.data()) < 0) fail(object, "cannot read attribute " + key);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mtype.id(), space.id(), H5P_DEFAULT, ptrs.data());
  } else {
    const size_t size = H5Tget_size(type.id());
    if (size == 0 || size > (size_t{1} << 24)) fail(object, "attribute '" + key + "' has a corrupt size");
    std::vector<char> buf(size * static_cast<size_t>(n));
    if (H5Aread(a.id(), type.id(), buf.data()) < 0) fail(object, "cannot read attribute " + key);
    for (hssize_t i = 0; i < n; ++i) {
      std::string s(buf.data() + i * size, size);
      s.erase(s.find_last_not_of('\0') + 1);
      out.push_back(s);
    }
  }
  return out;
}

std::string File::attr_string(const std::string& object, const std::string& key) const {
  const LibraryLock lock;
  auto v = attr_strings(object, key);
  if (v.size() != 1) fail(object, "attribute '" + key + "' is not a single string");
  return v[0];
}

namespace {
// A numeric attribute holds exactly one value (reading more into one would overflow it).
bool scalar_attr(hid_t a) {
  Handle space(H5Aget_space(a), H5Sclose);
  return space.valid() && H5Sget_simple_extent_npoints(space.id()) == 1;
}
}  // namespace

int64_t File::attr_int(const std::string& object, const std::string& key) const {
  const LibraryLock lock;
  Handle a = open_attr(id(), object, key);
  if (!a.valid()) fail(object, "missing attribute '" + key + "'");
  if (!scalar_attr(a.id())) fail(object, "attribute '" + key + "' is not a single integer");
  int64_t v = 0;
  if (H5Aread(a.id(), H5T_NATIVE_INT64, &v) < 0) fail(object, "attribute '" + key + "' is not an integer");
  return v;
}

double File::attr_double(const std::string& object, const std::string& key) const {
  const LibraryLock lock;
  Handle a = open_attr(id(), object, key);
  if (!a.valid()) fail(object, "missing attribute '" + key + "'");
  if (!scalar_attr(a.id())) fail(object, "attribute '" + key + "' is not a single number");
  double v = 0;
  if (H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v) < 0) fail(object, "attribute '" + key + "' is not a number");
  return v;
}

}  // namespace oodt::h5
