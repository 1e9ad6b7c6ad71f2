// torch.save files without LibTorch's unpickler: LibTorch 1.13's cannot read the OrderedDict
// that every `model.state_dict()` is (pytorch/pytorch#100741), and it asserts on damaged input.
// A torch.save file (PyTorch >= 1.6) is a zip archive, entries stored uncompressed:
//   <archive>/data.pkl   the object, pickled (protocol 2), tensors as persistent ids
//   <archive>/data/<key> each storage's raw little-endian bytes
// Read here: the zip's central directory (zip64 included), and a small pickle machine that
// knows the opcodes torch.save emits and the handful of globals a state dict needs. Anything
// else it meets (an optimizer's or a trainer's objects in a checkpoint wrapper) becomes an
// opaque value: never executed, and an error only if a tensor is looked for inside it.
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <variant>

#include "core/error.h"
#include "core/weights.h"

namespace oodt {
namespace {

struct Fail {
  std::string path;
  DataError operator()(const std::string& why) const { return DataError(concat(path, ": not a readable torch.save file: ", why)); }
};

uint64_t le(const std::string& b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<size_t>(i)]);
  return v;
}

struct ZipEntry {
  uint64_t offset = 0, size = 0;  // of the stored bytes
};

// name -> where its bytes lie in `b`. Only stored (uncompressed) entries, as torch.save writes.
std::map<std::string, ZipEntry> read_zip(const std::string& b, const Fail& fail) {
  if (b.size() < 22) throw fail("too short for a zip archive");
  // End of central directory: the last signature within the final 64 KiB + 22 bytes.
  size_t eocd = std::string::npos;
  const size_t lowest = b.size() > 65557 ? b.size() - 65557 : 0;
  for (size_t i = b.size() - 22 + 1; i-- > lowest;)
    if (le(b, i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) throw fail("no zip end-of-directory record (truncated?)");
  uint64_t count = le(b, eocd + 10, 2), cd_size = le(b, eocd + 12, 4), cd_offset = le(b, eocd + 16, 4);
  if ((count == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) && eocd >= 20 &&
      le(b, eocd - 20, 4) == 0x07064b50) {
    const uint64_t z64 = le(b, eocd - 20 + 8, 8);
    if (z64 + 56 > b.size() || le(b, z64, 4) != 0x06064b50) throw fail("damaged zip64 directory record");
    count = le(b, z64 + 32, 8), cd_size = le(b, z64 + 40, 8), cd_offset = le(b, z64 + 48, 8);
  }
  if (cd_offset > b.size() || cd_size > b.size() - cd_offset) throw fail("the zip directory lies outside the file");
  std::map<std::string, ZipEntry> out;
  size_t p = cd_offset;
  for (uint64_t e = 0; e < count; ++e) {
    if (p + 46 > b.size() || le(b, p, 4) != 0x02014b50) throw fail("damaged zip directory entry");
    const uint64_t method = le(b, p + 10, 2);
    uint64_t csize = le(b, p + 20, 4), usize = le(b, p + 24, 4), local = le(b, p + 42, 4);
    const size_t name_len = le(b, p + 28, 2), extra_len = le(b, p + 30, 2), comment_len = le(b, p + 32, 2);
    if (p + 46 + name_len + extra_len + comment_len > b.size()) throw fail("damaged zip directory entry");
    const std::string name = b.substr(p + 46, name_len);
    // zip64 extra field: the 64-bit values of whichever fields are saturated, in order.
    for (size_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const uint64_t id = le(b, x, 2), len = le(b, x + 2, 2);
      size_t f = x + 4;
      if (id == 0x0001) {
        if (usize == 0xffffffff && f + 8 <= x + 4 + len) usize = le(b, f, 8), f += 8;
        if (csize == 0xffffffff && f + 8 <= x + 4 + len) csize = le(b, f, 8), f += 8;
        if (local == 0xffffffff && f + 8 <= x + 4 + len) local = le(b, f, 8);
      }
      x += 4 + len;
    }
    if (method != 0) throw fail(concat("entry '", name, "' is compressed (method ", method, "); torch.save stores entries"));
    if (local + 30 > b.size() || le(b, local, 4) != 0x04034b50) throw fail(concat("damaged zip entry '", name, "'"));
    const uint64_t data = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
    if (data > b.size() || csize > b.size() - data || csize != usize)
      throw fail(concat("entry '", name, "' lies outside the file (truncated?)"));
    out[name] = ZipEntry{data, csize};
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// Pickled values, as far as a state dict needs them.
struct Value;
using Ref = std::shared_ptr<Value>;
struct Value {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor, Opaque, Mark } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;                           // Str; Global: "module.name"; Storage: key; Opaque: what
  std::vector<Ref> items;                  // Tuple, List
  std::vector<std::pair<Ref, Ref>> dict;   // Dict, in insertion order
  at::ScalarType dtype = at::kFloat;       // Storage
  at::Tensor tensor;                       // Tensor
};
Ref make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

const std::map<std::string, at::ScalarType>& storage_types() {
  static const std::map<std::string, at::ScalarType> t = {
      {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong},   {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  return t;
}

class Unpickler {
 public:
  Unpickler(const std::string& file, const std::map<std::string, ZipEntry>& zip, std::string prefix, Fail fail)
      : file_(file), zip_(zip), prefix_(std::move(prefix)), fail_(std::move(fail)) {}

  Ref run(size_t begin, size_t end) {
    p_ = begin, end_ = end;
    while (true) {
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                  // PROTO
        case 0x95: take(8); break;                 // FRAME (protocol 4): a length hint
        case '.': {                                // STOP
          if (stack_.size() != 1) throw fail_("the pickle ends with a damaged stack");
          return stack_.back();
        }
        case '(': push(make(Value::Mark)); break;  // MARK
        case '}': push(make(Value::Dict)); break;
        case ']': push(make(Value::List)); break;
        case ')': push(make(Value::Tuple)); break;
        case 't': {
          auto t = make(Value::Tuple);
          t->items = pop_mark();
          push(t);
          break;
        }
        case 0x85: case 0x86: case 0x87: {         // TUPLE1..3
          const size_t n = op - 0x84u;
          need(n);
          auto t = make(Value::Tuple);
          t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case 'X': str(le(take(4), 0, 4)); break;   // BINUNICODE
        case 0x8c: str(byte()); break;             // SHORT_BINUNICODE
        case 0x8d: str(le(take(8), 0, 8)); break;  // BINUNICODE8
        case 'U': case 'C': str(byte()); break;    // SHORT_BINSTRING, SHORT_BINBYTES
        case 'T': case 'B': str(le(take(4), 0, 4)); break;  // BINSTRING, BINBYTES
        case 'J': integer(static_cast<int32_t>(le(take(4), 0, 4))); break;
        case 'K': integer(byte()); break;
        case 'M': integer(static_cast<int64_t>(le(take(2), 0, 2))); break;
        case 0x8a: {                               // LONG1: little-endian two's complement
          const size_t n = byte();
          if (n > 8) throw fail_("an integer wider than 64 bits");
          const std::string b = take(n);
          uint64_t v = n ? le(b, 0, static_cast<int>(n)) : 0;
          if (n && n < 8 && (static_cast<unsigned char>(b[n - 1]) & 0x80)) v |= ~uint64_t{0} << (8 * n);
          integer(static_cast<int64_t>(v));
          break;
        }
        case 0x88: case 0x89: {                    // NEWTRUE, NEWFALSE
          auto v = make(Value::Bool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'N': push(make(Value::None)); break;
        case 'G': {                                // BINFLOAT, big-endian
          const std::string b = take(8);
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(b[static_cast<size_t>(i)]);
          auto v = make(Value::Float);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'q': memo_put(byte()); break;
        case 'r': memo_put(le(take(4), 0, 4)); break;
        case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
        case 'h': memo_get(byte()); break;
        case 'j': memo_get(le(take(4), 0, 4)); break;
        case 'c': {                                // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          global(module + "." + name);
          break;
        }
        case 0x93: {                               // STACK_GLOBAL
          need(2);
          const Ref name = pop(), module = pop();
          if (module->kind != Value::Str || name->kind != Value::Str) throw fail_("STACK_GLOBAL of non-strings");
          global(module->s + "." + name->s);
          break;
        }
        case 'R': {                                // REDUCE
          need(2);
          const Ref args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {                               // NEWOBJ: cls.__new__(cls, *args): opaque
          need(2);
          pop();
          const Ref cls = pop();
          push(opaque(cls->kind == Value::Global ? cls->s : "an object"));
          break;
        }
        case 'Q': {                                // BINPERSID: a storage
          need(1);
          push(storage(pop()));
          break;
        }
        case 's': {                                // SETITEM
          need(3);
          const Ref v = pop(), k = pop();
          set_items(stack_.back(), {k, v});
          break;
        }
        case 'u': {                                // SETITEMS
          const auto kv = pop_mark();
          need(1);
          set_items(stack_.back(), kv);
          break;
        }
        case 'a': {                                // APPEND
          need(2);
          const Ref v = pop();
          if (stack_.back()->kind == Value::List) stack_.back()->items.push_back(v);
          break;
        }
        case 'e': {                                // APPENDS
          const auto vs = pop_mark();
          need(1);
          if (stack_.back()->kind == Value::List) stack_.back()->items.insert(stack_.back()->items.end(), vs.begin(), vs.end());
          break;
        }
        case 'b': {                                // BUILD: attributes (a state dict's _metadata): dropped
          need(2);
          pop();
          break;
        }
        default:
          throw fail_(concat("pickle opcode 0x", std::hex, static_cast<int>(op), " at byte ", std::dec, p_ - 1 - begin,
                             " is not one torch.save writes"));
      }
    }
  }

 private:
  unsigned char byte() {
    if (p_ >= end_) throw fail_("the pickle ends early (truncated?)");
    return static_cast<unsigned char>(file_[p_++]);
  }
  std::string take(uint64_t n) {
    if (n > end_ - p_) throw fail_("the pickle ends early (truncated?)");
    std::string s = file_.substr(p_, n);
    p_ += n;
    return s;
  }
  std::string line() {
    const size_t nl = file_.find('\n', p_);
    if (nl == std::string::npos || nl >= end_ || nl - p_ > 256) throw fail_("a damaged GLOBAL name");
    std::string s = file_.substr(p_, nl - p_);
    p_ = nl + 1;
    return s;
  }
  void push(Ref v) {
    if (stack_.size() > 1000000) throw fail_("the pickle's stack grows without bound");
    stack_.push_back(std::move(v));
  }
  void need(size_t n) const {
    if (stack_.size() < n) throw fail_("the pickle pops an empty stack");
  }
  Ref pop() {
    Ref v = stack_.back();
    stack_.pop_back();
    if (v->kind == Value::Mark) throw fail_("a MARK where a value was expected");
    return v;
  }
  std::vector<Ref> pop_mark() {
    for (size_t i = stack_.size(); i-- > 0;)
      if (stack_[i]->kind == Value::Mark) {
        std::vector<Ref> out(stack_.begin() + static_cast<std::ptrdiff_t>(i) + 1, stack_.end());
        stack_.resize(i);
        return out;
      }
    throw fail_("no MARK on the stack");
  }
  void str(uint64_t n) {
    auto v = make(Value::Str);
    v->s = take(n);
    push(v);
  }
  void integer(int64_t i) {
    auto v = make(Value::Int);
    v->i = i;
    push(v);
  }
  void memo_put(uint64_t i) {
    need(1);
    if (i > 10000000) throw fail_("a memo index out of range");
    if (memo_.size() <= i) memo_.resize(i + 1);
    memo_[i] = stack_.back();
  }
  void memo_get(uint64_t i) {
    if (i >= memo_.size() || !memo_[i]) throw fail_(concat("memo entry ", i, " is read before it is written"));
    push(memo_[i]);
  }
  void global(const std::string& name) {
    auto v = make(Value::Global);
    v->s = name;
    push(v);
  }
  static Ref opaque(const std::string& what) {
    auto v = make(Value::Opaque);
    v->s = what;
    return v;
  }
  void set_items(const Ref& target, const std::vector<Ref>& kv) {
    if (kv.size() % 2) throw fail_("SETITEMS with an odd number of values");
    if (target->kind != Value::Dict) return;  // an opaque object's items: not needed
    for (size_t i = 0; i < kv.size(); i += 2) target->dict.emplace_back(kv[i], kv[i + 1]);
  }

  Ref storage(const Ref& pid) {
    // ('storage', <storage type>, key, location, numel)
    if (pid->kind != Value::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Value::Str ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Value::Global || pid->items[2]->kind != Value::Str ||
        pid->items[4]->kind != Value::Int)
      throw fail_("a persistent id that is not a tensor storage");
    const auto type = storage_types().find(pid->items[1]->s);
    if (type == storage_types().end())
      throw fail_(concat("storage type ", pid->items[1]->s, " is not supported"));
    auto v = make(Value::Storage);
    v->s = pid->items[2]->s;
    v->dtype = type->second;
    v->i = pid->items[4]->i;
    return v;
  }

  at::Tensor storage_tensor(const Value& st) {
    const std::string key = st.s + "@" + std::to_string(static_cast<int>(st.dtype));
    if (auto it = storages_.find(key); it != storages_.end()) return it->second;
    const auto entry = zip_.find(prefix_ + "data/" + st.s);
    if (entry == zip_.end()) throw fail_(concat("storage '", st.s, "' has no entry ", prefix_, "data/", st.s));
    const int64_t elem = static_cast<int64_t>(c10::elementSize(st.dtype));
    if (st.i < 0 || static_cast<uint64_t>(st.i) * static_cast<uint64_t>(elem) > entry->second.size)
      throw fail_(concat("storage '", st.s, "' claims ", st.i, " elements, its entry has ", entry->second.size, " bytes"));
    at::Tensor t = at::empty({st.i}, at::TensorOptions().dtype(st.dtype));
    if (st.i > 0) std::memcpy(t.data_ptr(), file_.data() + entry->second.offset, static_cast<size_t>(st.i * elem));
    storages_[key] = t;
    return t;
  }

  std::vector<int64_t> ints(const Ref& v, const char* what) {
    if (v->kind != Value::Tuple) throw fail_(concat("a tensor's ", what, " is not a tuple"));
    std::vector<int64_t> out;
    for (const auto& x : v->items) {
      if (x->kind != Value::Int) throw fail_(concat("a tensor's ", what, " holds a non-integer"));
      out.push_back(x->i);
    }
    return out;
  }

  Ref reduce(const Ref& fn, const Ref& args) {
    if (fn->kind != Value::Global) return opaque("the result of a call");
    if (args->kind != Value::Tuple) throw fail_("REDUCE arguments are not a tuple");
    const std::string& name = fn->s;
    if (name == "collections.OrderedDict") return make(Value::Dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      const auto& a = args->items;
      if (a.size() < 4 || a[0]->kind != Value::Storage || a[1]->kind != Value::Int)
        throw fail_("_rebuild_tensor with unexpected arguments");
      const at::Tensor base = storage_tensor(*a[0]);
      const std::vector<int64_t> size = ints(a[2], "size"), stride = ints(a[3], "stride");
      if (size.size() != stride.size()) throw fail_("a tensor's size and stride differ in length");
      int64_t last = a[1]->i;
      if (last < 0) throw fail_("a negative storage offset");
      bool empty = false;
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] < 0 || stride[d] < 0) throw fail_("a negative size or stride");
        if (size[d] == 0) empty = true;
        else last += (size[d] - 1) * stride[d];
      }
      if (!empty && last >= base.numel())
        throw fail_(concat("a tensor of size ", at::IntArrayRef(size), " reaches element ", last, " of a storage of ",
                           base.numel()));
      auto v = make(Value::Tensor);
      v->tensor = empty ? at::empty(size, base.options()) : base.as_strided(size, stride, a[1]->i).clone();
      return v;
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty() || args->items[0]->kind != Value::Tensor) throw fail_("_rebuild_parameter without a tensor");
      return args->items[0];
    }
    return opaque(name);
  }

  const std::string& file_;
  const std::map<std::string, ZipEntry>& zip_;
  std::string prefix_;
  Fail fail_;
  size_t p_ = 0, end_ = 0;
  std::vector<Ref> stack_, memo_;
  std::map<std::string, at::Tensor> storages_;
};

// A dict whose keys are strings and values tensors, as named tensors; nullopt otherwise.
std::optional<NamedTensors> as_state_dict(const Value& v) {
  if (v.kind != Value::Dict || v.dict.empty()) return std::nullopt;
  NamedTensors out;
  for (const auto& [k, t] : v.dict) {
    if (k->kind != Value::Str || t->kind != Value::Tensor) return std::nullopt;
    out.emplace_back(k->s, t->tensor);
  }
  return out;
}

}  // namespace

NamedTensors read_torch_file(const std::string& path, std::string* note) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(concat(path, ": cannot open"));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Fail fail{path};
  const auto zip = read_zip(bytes, fail);
  std::string pkl;
  for (const auto& [name, e] : zip) {
    const auto slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") pkl = name;
  }
  if (pkl.empty()) throw fail("no <archive>/data.pkl entry (a TorchScript archive or another zip?)");
  const std::string prefix = pkl.substr(0, pkl.size() - 8);
  if (auto bo = zip.find(prefix + "byteorder"); bo != zip.end() && bytes.substr(bo->second.offset, bo->second.size) == "big")
    throw fail("written on a big-endian machine; not supported");
  const ZipEntry& e = zip.at(pkl);
  const Ref root = Unpickler(bytes, zip, prefix, fail).run(e.offset, e.offset + e.size);
  if (auto sd = as_state_dict(*root)) return *sd;
  if (root->kind == Value::Dict) {
    for (const char* key : {"state_dict", "model", "module"})
      for (const auto& [k, v] : root->dict)
        if (k->kind == Value::Str && k->s == key)
          if (auto sd = as_state_dict(*v)) {
            if (note) *note = concat("the dict under '", key, "'");
            NamedTensors out = std::move(*sd);
            bool wrapped = true;
            for (const auto& kv : out) wrapped = wrapped && kv.first.rfind("module.", 0) == 0;
            if (wrapped) {
              for (auto& kv : out) kv.first = kv.first.substr(7);
              if (note) *note += ", 'module.' prefix dropped";
            }
            return out;
          }
    std::string keys;
    for (const auto& [k, v] : root->dict) keys += (keys.empty() ? "" : ", ") + (k->kind == Value::Str ? k->s : "?");
    throw DataError(concat(path, ": not a state dict (a dict of name -> tensor), nor holds one under 'state_dict', "
                                 "'model' or 'module'; its keys: ",
                           keys));
  }
  throw DataError(concat(path, ": holds no dict of tensors"));
}

}  // namespace oodt
