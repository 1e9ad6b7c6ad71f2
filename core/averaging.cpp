#include "core/averaging.h"

#include <cstring>

#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

namespace {

template <typename T>
void put(std::vector<uint8_t>& out, const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

template <typename T>
T take(const uint8_t*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

}  // namespace

std::vector<TensorMap> gather_maps_to_root(Communicator& comm, const TensorMap& mine) {
  // Serialised as: count, then per entry name length, name, dtype, rank, sizes, raw bytes.
  std::vector<uint8_t> bytes;
  put<int64_t>(bytes, static_cast<int64_t>(mine.size()));
  for (const auto& [name, t] : mine) {
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    put<int64_t>(bytes, static_cast<int64_t>(name.size()));
    bytes.insert(bytes.end(), name.begin(), name.end());
    put<int32_t>(bytes, static_cast<int32_t>(c.scalar_type()));
    put<int64_t>(bytes, c.dim());
    for (int64_t d : c.sizes()) put<int64_t>(bytes, d);
    const auto* data = static_cast<const uint8_t*>(c.data_ptr());
    bytes.insert(bytes.end(), data, data + c.numel() * static_cast<int64_t>(c.element_size()));
  }
  const at::Tensor sizes = comm.all_gather(at::full({1}, static_cast<int64_t>(bytes.size()), at::kLong));
  constexpr int64_t kChunk = int64_t{256} << 20;
  std::vector<TensorMap> out;
  for (int r = 0; r < comm.world_size(); ++r) {
    const int64_t n = sizes[r][0].item<int64_t>();
    at::Tensor buf = at::empty({n}, at::kByte);
    if (comm.rank() == r) std::memcpy(buf.data_ptr(), bytes.data(), bytes.size());
    if (r != 0)
      for (int64_t off = 0; off < n; off += kChunk) {
        at::Tensor piece = buf.narrow(0, off, std::min(kChunk, n - off));
        comm.broadcast(piece, r);
      }
    if (comm.rank() != 0) continue;
    const uint8_t* p = buf.data_ptr<uint8_t>();
    TensorMap m;
    const auto count = take<int64_t>(p);
    for (int64_t i = 0; i < count; ++i) {
      const auto len = take<int64_t>(p);
      std::string name(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
      p += len;
      const auto type = static_cast<at::ScalarType>(take<int32_t>(p));
      const auto dim = take<int64_t>(p);
      std::vector<int64_t> shape;
      for (int64_t d = 0; d < dim; ++d) shape.push_back(take<int64_t>(p));
      at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
      const auto nbytes = static_cast<size_t>(t.numel() * static_cast<int64_t>(t.element_size()));
      std::memcpy(t.data_ptr(), p, nbytes);
      p += nbytes;
      m[name] = t;
    }
    out.push_back(std::move(m));
  }
  return out;
}

Communicator& AveragingStrategy::evaluation_comm(State& state) { return *state.comm; }

void AveragingStrategy::setup(State& state) {
  broadcast_module(*state.model, *state.comm, 0, state.dist.bucket_bytes());
}

void AveragingStrategy::sync_buffers(State& state) {
  broadcast_buffers(*state.model, *state.comm, 0, state.dist.bucket_bytes());
}

std::unique_ptr<GradientSync> make_gradient_sync(const State& state) {
  return std::make_unique<GradientSync>(state.gradient_sync,
                                        state.bucket_hook ? state.bucket_hook() : make_bucket_hook(state.dist.compress));
}

void GradientAllReduce::setup(State& state) {
  AveragingStrategy::setup(state);
  sync_ = make_gradient_sync(state);
  sync_->load(pending_);
  pending_.clear();
  sync_->setup(*state.model, *state.comm);
}

void GradientAllReduce::save(TensorMap& out) const {
  if (sync_) sync_->save(out);
}

}  // namespace oodt
