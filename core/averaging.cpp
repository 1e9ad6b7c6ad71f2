#include "core/averaging.h"

#include <cstring>

#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

void Bucketer::plan(const std::vector<at::Tensor>& tensors) {
  buckets_.clear();
  planned_shapes_.clear();
  Bucket cur;
  int64_t cur_bytes = 0;
  auto flush = [&] {
    if (cur.members.empty()) return;
    int64_t numel = 0;
    for (size_t i : cur.members) numel += tensors[i].numel();
    cur.buffer = at::empty({numel}, tensors[cur.members.front()].options());
    buckets_.push_back(std::move(cur));
    cur = Bucket{};
    cur_bytes = 0;
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    planned_shapes_.push_back(t.sizes().vec());
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (!cur.members.empty()) {
      const at::Tensor& first = tensors[cur.members.front()];
      if (first.scalar_type() != t.scalar_type() || first.device() != t.device() ||
          cur_bytes + bytes > bucket_bytes_)
        flush();
    }
    cur.members.push_back(i);
    cur_bytes += bytes;
  }
  flush();
}

void Bucketer::apply(const std::vector<at::Tensor>& tensors, const std::function<void(at::Tensor&)>& reduce) {
  bool same = planned_shapes_.size() == tensors.size();
  for (size_t i = 0; same && i < tensors.size(); ++i) same = planned_shapes_[i] == tensors[i].sizes().vec();
  if (!same) plan(tensors);
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    int64_t off = 0;
    for (size_t i : b.members) {
      const int64_t n = tensors[i].numel();
      b.buffer.narrow(0, off, n).copy_(tensors[i].reshape({-1}));
      off += n;
    }
    reduce(b.buffer);
    off = 0;
    for (size_t i : b.members) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(b.buffer.narrow(0, off, n).view(tensors[i].sizes()));
      off += n;
    }
  }
}

void broadcast_tensors(const std::vector<at::Tensor>& tensors, Communicator& comm, int root, int64_t bucket_bytes) {
  if (comm.world_size() == 1) return;
  Bucketer bucketer(bucket_bytes);
  bucketer.apply(tensors, [&](at::Tensor& buf) { comm.broadcast(buf, root); });
}

void broadcast_module(torch::nn::Module& module, Communicator& comm, int64_t bucket_bytes, int root) {
  std::vector<at::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p);
  for (auto& b : module.buffers()) tensors.push_back(b);
  broadcast_tensors(tensors, comm, root, bucket_bytes);
}

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
  broadcast_module(*state.model, *state.comm, 25 << 20);
}

void AveragingStrategy::sync_buffers(State& state) {
  if (state.comm->world_size() == 1) return;
  std::vector<at::Tensor> buffers;
  for (auto& b : state.model->buffers()) buffers.push_back(b);
  Bucketer bucketer(25 << 20);
  bucketer.apply(buffers, [&](at::Tensor& buf) { state.comm->broadcast(buf, 0); });
}

void GradientAllReduce::setup(State& state) {
  broadcast_module(*state.model, *state.comm, bucket_bytes_);
}

void all_reduce_gradients(torch::nn::Module& model, Communicator& comm, Bucketer& bucketer) {
  if (comm.world_size() == 1) return;
  std::vector<at::Tensor> grads;
  const auto params = model.parameters();
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    at::Tensor& p = const_cast<at::Tensor&>(*it);
    if (!p.requires_grad()) continue;
    // A parameter this rank did not use still takes part, with a zero gradient, so every
    // rank enters the same collectives with the same shapes.
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  const double scale = 1.0 / comm.world_size();
  bucketer.apply(grads, [&](at::Tensor& buf) {
    comm.all_reduce(buf, ReduceOp::Sum);
    buf.mul_(scale);
  });
}

void GradientAllReduce::average(State& state) { all_reduce_gradients(*state.model, *state.comm, bucketer_); }

}  // namespace oodt
