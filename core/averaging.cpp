#include "core/averaging.h"

#include <chrono>
#include <cstring>

#include "core/comm.h"
#include "core/comm_thread.h"
#include "core/error.h"
#include "core/models/model.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

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


}  // namespace oodt

namespace oodt {

GradientAllReduce::GradientAllReduce(GradientSyncOptions options) : options_(options) {}

GradientAllReduce::~GradientAllReduce() {
  if (thread_) {
    try {
      thread_->wait();
    } catch (...) {  // a failed collective was reported where it happened
    }
  }
  for (size_t i = 0; i < hook_keys_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

namespace {
// Runs a callback after autograd has added a gradient into a parameter's .grad: a hook on the
// parameter's AccumulateGrad node.
class AfterAccumulate final : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulate(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};
}  // namespace

void GradientAllReduce::setup(State& state) {
  comm_ = state.comm;
  broadcast_module(*state.model, *comm_, options_.bucket_bytes);
  if (comm_->world_size() == 1) return;
  params_.clear();
  const auto all = state.model->parameters();
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (it->requires_grad()) params_.push_back(*it);
  std::vector<char> seen(params_.size(), 0);
  bool permutation = order_.size() == params_.size();
  for (int64_t i : order_) {
    permutation = permutation && i >= 0 && i < static_cast<int64_t>(params_.size()) && !seen[static_cast<size_t>(i)];
    if (permutation) seen[static_cast<size_t>(i)] = 1;
  }
  if (!permutation) {
    order_.clear();
    for (size_t i = 0; i < params_.size(); ++i) order_.push_back(static_cast<int64_t>(i));
  } else {
    rebuilt_ = true;  // the order came from a checkpoint
  }
  std::vector<size_t> order(order_.begin(), order_.end());
  plan(order);
  filled_.assign(params_.size(), 0);
  if (!options_.overlap) return;
  // CUDA tensors with NCCL: collectives are asynchronous already; launch from the hook.
  inline_launch_ = !params_.empty() && params_.front().is_cuda();
  if (!inline_launch_) thread_ = std::make_unique<CommThread>();
  for (size_t i = 0; i < params_.size(); ++i) {
    accumulators_.push_back(torch::autograd::impl::grad_accumulator(params_[i]));
    hook_keys_.push_back(accumulators_.back()->add_post_hook(std::make_unique<AfterAccumulate>([this, i] { on_grad(i); })));
  }
}

double GradientAllReduce::backward_scale() const {
  return (options_.prescale && comm_ != nullptr && comm_->world_size() > 1) ? 1.0 / comm_->world_size() : 1.0;
}

void GradientAllReduce::plan(const std::vector<size_t>& order) {
  buckets_.clear();
  bucket_of_.assign(params_.size(), 0);
  slot_of_.assign(params_.size(), 0);
  Bucket cur;
  int64_t cur_bytes = 0;
  auto flush = [&] {
    if (cur.members.empty()) return;
    if (!cur.in_place) {
      int64_t numel = 0;
      for (size_t i : cur.members) numel += params_[i].numel();
      cur.buffer = at::empty({numel}, params_[cur.members.front()].options());
      int64_t off = 0;
      for (size_t i : cur.members) {
        const at::Tensor& p = params_[i];
        cur.slots.push_back(cur.buffer.narrow(0, off, p.numel()).view(p.sizes()));
        off += p.numel();
      }
    }
    buckets_.push_back(std::move(cur));
    cur = Bucket{};
    cur_bytes = 0;
  };
  for (size_t i : order) {
    const at::Tensor& p = params_[i];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (bytes >= options_.in_place_bytes) {
      flush();
      bucket_of_[i] = buckets_.size();
      cur.members.push_back(i);
      cur.in_place = true;
      flush();
      continue;
    }
    const int64_t cap = buckets_.empty() ? std::min(options_.first_bucket_bytes, options_.bucket_bytes)
                                         : options_.bucket_bytes;
    if (!cur.members.empty()) {
      const at::Tensor& first = params_[cur.members.front()];
      if (first.scalar_type() != p.scalar_type() || first.device() != p.device() || cur_bytes + bytes > cap) flush();
    }
    bucket_of_[i] = buckets_.size();
    slot_of_[i] = cur.members.size();
    cur.members.push_back(i);
    cur_bytes += bytes;
  }
  flush();
  reset_step();
}

void GradientAllReduce::reset_step() {
  for (Bucket& b : buckets_) b.pending = b.members.size();
  std::fill(filled_.begin(), filled_.end(), 0);
  next_launch_ = 0;
}

void GradientAllReduce::begin_backward(State&) {
  if (!overlapping()) return;
  armed_ = true;
}

namespace {
// Plain contiguous CPU float32 tensors skip ATen's dispatch, which costs more than the
// arithmetic itself for the many small tensors of a model (a few microseconds each).
bool plain_float(const at::Tensor& a) { return a.device().is_cpu() && a.scalar_type() == at::kFloat && a.is_contiguous(); }

// dst = src * scale, elementwise.
void copy_scaled(at::Tensor& dst, const at::Tensor& src, double scale) {
  if (plain_float(dst) && plain_float(src) && dst.numel() == src.numel()) {
    float* d = dst.data_ptr<float>();
    const float* s = src.data_ptr<float>();
    const auto n = static_cast<size_t>(src.numel());
    if (scale == 1.0) {
      std::memcpy(d, s, n * sizeof(float));
    } else {
      const auto f = static_cast<float>(scale);
      for (size_t i = 0; i < n; ++i) d[i] = s[i] * f;
    }
  } else if (scale == 1.0) {
    dst.copy_(src);
  } else {
    at::mul_out(dst, src, scale);
  }
}
}  // namespace

// Puts parameter i's gradient for the step (divided by the world size) where its bucket is
// reduced: a parameter this step did not use takes part with zeros, so every rank reduces the
// same.
void GradientAllReduce::fill(size_t i) {
  at::NoGradGuard no_grad;
  Bucket& b = buckets_[bucket_of_[i]];
  at::Tensor& p = params_[i];
  // What backward did not divide by yet.
  const double scale = backward_scale() == 1.0 ? 1.0 / comm_->world_size() : 1.0;
  if (b.in_place) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p, at::MemoryFormat::Contiguous);
    else if (!p.grad().is_contiguous()) p.mutable_grad() = p.grad().contiguous();
    if (scale != 1.0) p.mutable_grad().mul_(scale);
    b.buffer = p.grad().view({-1});
  } else {
    at::Tensor& slot = b.slots[slot_of_[i]];
    const at::Tensor& g = p.grad();
    if (!g.defined()) slot.zero_();
    else if (g.data_ptr() != slot.data_ptr()) copy_scaled(slot, g, scale);
    else if (scale != 1.0) slot.mul_(scale);  // last step's view, not cleared: in place
  }
  filled_[i] = 1;
  --b.pending;
}

void GradientAllReduce::on_grad(size_t i) {
  if (!armed_ || filled_[i]) return;
  if (!rebuilt_) observed_.push_back(i);
  fill(i);
  launch_ready();
}

// What goes over the wire: the bucket itself, or its float16/bfloat16 rounding.
void GradientAllReduce::set_wire(Bucket& b) const {
  at::NoGradGuard no_grad;
  switch (options_.compression) {
    case GradCompression::None: b.wire = b.buffer; break;
    case GradCompression::Fp16: b.wire = b.buffer.to(at::kHalf); break;
    case GradCompression::Bf16: b.wire = b.buffer.to(at::kBFloat16); break;
  }
}

// Hands every bucket whose members are all filled to the communicator, strictly in bucket
// order (so every rank's collectives come in the same sequence). With the communication
// thread, the last bucket is left to average().
void GradientAllReduce::launch_ready() {
  const size_t end = (thread_ && !buckets_.empty()) ? buckets_.size() - 1 : buckets_.size();
  while (next_launch_ < end && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_++];
    set_wire(b);
    if (thread_) {
      at::Tensor wire = b.wire;
      Communicator* comm = comm_;
      std::string what = concat(CollectiveContext::current(), " / gradient bucket ", next_launch_ - 1);
      thread_->submit([comm, wire, what]() mutable {
        CollectiveContext ctx(what);  // the ledger names the step on the communication thread too
        comm->all_reduce_background(wire);
      });
    } else {
      comm_->all_reduce(b.wire);
    }
  }
}

void GradientAllReduce::average(State&) {
  if (comm_ == nullptr || comm_->world_size() == 1) return;
  const bool was_armed = armed_;
  armed_ = false;
  // Whatever the hooks did not fill (overlap off, or parameters unused this step).
  for (size_t i = 0; i < params_.size(); ++i)
    if (!filled_[i]) fill(i);
  launch_ready();
  if (thread_) {
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    thread_->wait();
    stats_.wait_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    stats_.comm_seconds += thread_->take_busy_seconds();
    // The last bucket, here, once the thread's collectives are done (MPI needs them in order).
    t0 = Clock::now();
    for (; next_launch_ < buckets_.size(); ++next_launch_) {
      set_wire(buckets_[next_launch_]);
      comm_->all_reduce(buckets_[next_launch_].wire);
    }
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    stats_.wait_seconds += dt;
    stats_.comm_seconds += dt;
  }
  ++stats_.steps;
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    // Every bucket holds the mean now (a compressed one is widened back first). An in-place
    // bucket is the gradient itself; otherwise each gradient becomes its slice of the bucket.
    if (options_.compression != GradCompression::None) b.buffer.copy_(b.wire);
    b.wire = at::Tensor();
    if (b.in_place) b.buffer = at::Tensor();
    else
      for (size_t k = 0; k < b.members.size(); ++k) params_[b.members[k]].mutable_grad() = b.slots[k];
  }
  reset_step();
  // Re-plan once, in the order gradients actually arrived on rank 0.
  if (was_armed && !rebuilt_) {
    rebuilt_ = true;
    std::vector<char> seen(params_.size(), 0);
    std::vector<int64_t> order;
    for (size_t i : observed_)
      if (!seen[i]) seen[i] = 1, order.push_back(static_cast<int64_t>(i));
    for (size_t i = 0; i < params_.size(); ++i)
      if (!seen[i]) order.push_back(static_cast<int64_t>(i));
    at::Tensor t = at::tensor(order, at::kLong);
    comm_->broadcast(t, 0);
    order_.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    observed_.clear();
    std::vector<size_t> o(order_.begin(), order_.end());
    plan(o);
  }
}

void GradientAllReduce::save(TensorMap& out) const {
  if (rebuilt_ && !order_.empty()) out["bucket_order"] = at::tensor(order_, at::kLong);
}

void GradientAllReduce::load(const TensorMap& in) {
  auto it = in.find("bucket_order");
  if (it == in.end()) return;
  const at::Tensor t = it->second.to(at::kLong).contiguous();
  order_.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

GradientAllReduce::Stats GradientAllReduce::take_stats() {
  Stats s = stats_;
  stats_ = Stats{};
  return s;
}

}  // namespace oodt
