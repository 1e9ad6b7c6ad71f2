#include "core/gradient_sync.h"

#include <chrono>
#include <cstring>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include "core/comm.h"
#include "core/comm_thread.h"
#include "core/config.h"
#include "core/error.h"

namespace oodt {
namespace {

class IdentityHook final : public BucketHook {
 public:
  std::string name() const override { return "none"; }
  at::Tensor encode(const at::Tensor& bucket) override { return bucket; }
  void decode(const at::Tensor&, at::Tensor&) override {}  // summed in place
};

// Rounds to a narrower float type for the wire and widens the sum back.
class CastHook final : public BucketHook {
 public:
  CastHook(at::ScalarType type, std::string name) : type_(type), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  at::Tensor encode(const at::Tensor& bucket) override { return bucket.to(type_); }
  void decode(const at::Tensor& wire, at::Tensor& bucket) override { bucket.copy_(wire); }

 private:
  at::ScalarType type_;
  std::string name_;
};

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

std::unique_ptr<BucketHook> make_bucket_hook(GradCompression compression) {
  switch (compression) {
    case GradCompression::Fp16: return std::make_unique<CastHook>(at::kHalf, "fp16");
    case GradCompression::Bf16: return std::make_unique<CastHook>(at::kBFloat16, "bf16");
    case GradCompression::None: break;
  }
  return std::make_unique<IdentityHook>();
}

DistOptions DistOptions::from_config(ConfigReader& dist) {
  DistOptions o;
  o.bucket_mb = dist.get("bucket_mb", o.bucket_mb);
  o.in_place_mb = dist.get("in_place_mb", o.in_place_mb);
  o.overlap = dist.one_of<Overlap>("overlap", Overlap::Auto,
                                   {{"auto", Overlap::Auto}, {"true", Overlap::On}, {"false", Overlap::Off}});
  o.timeout_s = dist.get("timeout_s", o.timeout_s);
  o.compress = dist.one_of<GradCompression>(
      "compress", GradCompression::None,
      {{"none", GradCompression::None}, {"fp16", GradCompression::Fp16}, {"bf16", GradCompression::Bf16}});
  dist.check(o.timeout_s >= 0, "timeout_s", "must be >= 0 (0: no watchdog)");
  dist.check(o.bucket_mb > 0, "bucket_mb", "must be > 0");
  dist.check(o.in_place_mb > 0, "in_place_mb", "must be > 0");
  dist.finish();
  return o;
}

GradientSync::GradientSync(GradientSyncOptions options, std::unique_ptr<BucketHook> hook)
    : options_(options), hook_(hook ? std::move(hook) : make_bucket_hook(GradCompression::None)) {}

GradientSync::~GradientSync() {
  if (thread_) {
    try {
      thread_->wait();
    } catch (...) {  // a failed collective was reported where it happened
    }
  }
  for (size_t i = 0; i < hook_keys_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void GradientSync::setup(torch::nn::Module& model, Communicator& comm) {
  OODT_CHECK(comm_ == nullptr, "gradient sync set up twice");
  comm_ = &comm;
  if (comm.world_size() == 1) return;
  const auto all = model.parameters();
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
  plan(std::vector<size_t>(order_.begin(), order_.end()));
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

double GradientSync::backward_scale() const {
  return (options_.prescale && comm_ != nullptr && comm_->world_size() > 1) ? 1.0 / comm_->world_size() : 1.0;
}

void GradientSync::plan(const std::vector<size_t>& order) {
  buckets_.clear();
  bucket_of_.assign(params_.size(), 0);
  slot_of_.assign(params_.size(), 0);
  for (const BucketSpec& spec : plan_buckets(params_, order, options_.limits)) {
    Bucket b;
    b.members = spec.members;
    b.in_place = spec.in_place;
    if (!b.in_place) {
      b.buffer = at::empty({spec.numel}, params_[b.members.front()].options());
      int64_t off = 0;
      for (size_t k = 0; k < b.members.size(); ++k) {
        const at::Tensor& p = params_[b.members[k]];
        b.slots.push_back(b.buffer.narrow(0, off, p.numel()).view(p.sizes()));
        slot_of_[b.members[k]] = k;
        off += p.numel();
      }
    }
    for (size_t i : b.members) bucket_of_[i] = buckets_.size();
    buckets_.push_back(std::move(b));
  }
  reset_step();
}

void GradientSync::reset_step() {
  for (Bucket& b : buckets_) b.pending = b.members.size();
  std::fill(filled_.begin(), filled_.end(), 0);
  next_launch_ = 0;
}

void GradientSync::begin_backward() {
  if (overlapping()) armed_ = true;
}

// Puts parameter i's gradient for the step (divided by the world size) where its bucket is
// reduced: a parameter this step did not use takes part with zeros, so every rank reduces the
// same.
void GradientSync::fill(size_t i) {
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

void GradientSync::on_grad(size_t i) {
  if (!armed_ || filled_[i]) return;
  if (!rebuilt_) observed_.push_back(i);
  fill(i);
  launch_ready();
}

// Hands every bucket whose members are all filled to the communicator, strictly in bucket
// order (so every rank's collectives come in the same sequence). With the communication
// thread, the last bucket is left to finish().
void GradientSync::launch_ready() {
  const size_t end = (thread_ && !buckets_.empty()) ? buckets_.size() - 1 : buckets_.size();
  while (next_launch_ < end && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_++];
    {
      at::NoGradGuard no_grad;
      b.wire = hook_->encode(b.buffer);
    }
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

void GradientSync::finish() {
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
      Bucket& b = buckets_[next_launch_];
      {
        at::NoGradGuard no_grad;
        b.wire = hook_->encode(b.buffer);
      }
      comm_->all_reduce(b.wire);
    }
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    stats_.wait_seconds += dt;
    stats_.comm_seconds += dt;
  }
  ++stats_.steps;
  at::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    // Every bucket holds the mean now. An in-place bucket is the gradient itself; otherwise
    // each gradient becomes its slice of the bucket.
    hook_->decode(b.wire, b.buffer);
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
    plan(std::vector<size_t>(order_.begin(), order_.end()));
  }
}

void GradientSync::save(TensorMap& out) const {
  if (rebuilt_ && !order_.empty()) out["bucket_order"] = at::tensor(order_, at::kLong);
}

void GradientSync::load(const TensorMap& in) {
  auto it = in.find("bucket_order");
  if (it == in.end()) return;
  const at::Tensor t = it->second.to(at::kLong).contiguous();
  order_.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

GradientSync::Stats GradientSync::take_stats() {
  Stats s = stats_;
  stats_ = Stats{};
  return s;
}

}  // namespace oodt
