#include "core/device_feed.h"

#include "core/error.h"

#if OODT_TORCH_CUDA
#include <c10/core/Event.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace oodt {
namespace {

// Host batches whose copies may still run before the feed waits for the oldest: the trainer
// has one batch ahead, evaluation one, so this is never reached in normal use.
constexpr size_t kMaxInFlight = 8;

at::Tensor channels_last_inputs(const at::Tensor& x, bool channels_last) {
  return channels_last && x.defined() && x.dim() == 4 ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

}  // namespace

DeviceFeed::DeviceFeed(at::Device device, bool channels_last) : device_(device), channels_last_(channels_last) {
#if OODT_TORCH_CUDA
  if (device_.is_cuda()) {
    asynchronous_ = true;
    stream_ = std::make_shared<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(false, device_.index()));
  }
#endif
}

DeviceFeed::~DeviceFeed() { retire(true); }

DeviceFeed::Transfer DeviceFeed::start(const Batch& host) {
  Transfer t;
  if (!asynchronous_) {
    t.batch = host.to(device_);
    t.batch.inputs = channels_last_inputs(t.batch.inputs, channels_last_);
    return t;
  }
#if OODT_TORCH_CUDA
  retire(false);
  const auto& stream = *std::static_pointer_cast<c10::cuda::CUDAStream>(stream_);
  auto event = std::make_shared<c10::Event>(c10::DeviceType::CUDA);
  {
    // Allocations below belong to the copy stream; finish() tells the allocator about the
    // compute stream's use.
    c10::cuda::CUDAStreamGuard guard(stream);
    auto move = [&](const at::Tensor& x) { return x.defined() ? x.to(device_, /*non_blocking=*/true) : x; };
    t.batch.inputs = channels_last_inputs(move(host.inputs), channels_last_);
    t.batch.labels = move(host.labels);
    t.batch.domains = move(host.domains);
    t.batch.soft_targets = move(host.soft_targets);
    event->record(stream);
  }
  t.event = event;
  // Held here rather than in the transfer: a transfer dropped unfinished (a batch read ahead
  // that is not used) must not free host memory the copy still reads.
  in_flight_.emplace_back(event, host);
#endif
  return t;
}

Batch DeviceFeed::finish(Transfer t) {
#if OODT_TORCH_CUDA
  if (asynchronous_) {
    OODT_CHECK(t.event != nullptr, "DeviceFeed::finish: a transfer that was not started on this device");
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_.index());
    std::static_pointer_cast<c10::Event>(t.event)->block(compute);
    for (const at::Tensor* x : {&t.batch.inputs, &t.batch.labels, &t.batch.domains, &t.batch.soft_targets})
      if (x->defined()) x->record_stream(compute);
  }
#endif
  return std::move(t.batch);
}

void DeviceFeed::retire(bool wait_all) {
#if OODT_TORCH_CUDA
  while (!in_flight_.empty()) {
    auto& event = *std::static_pointer_cast<c10::Event>(in_flight_.front().first);
    if (wait_all || in_flight_.size() > kMaxInFlight) event.synchronize();
    else if (!event.query()) break;
    in_flight_.pop_front();
  }
#else
  (void)wait_all;
  in_flight_.clear();
#endif
}

void use_channels_last(torch::nn::Module& model, const std::string& key) {
  int64_t converted = 0;
  at::NoGradGuard no_grad;
  auto convert = [&](at::Tensor& t) {
    if (!t.defined() || t.dim() != 4) return;
    ++converted;
    // A tensor shared by two layers is met twice; the second time it is already converted.
    if (!t.is_contiguous(at::MemoryFormat::ChannelsLast)) t.set_data(t.contiguous(at::MemoryFormat::ChannelsLast));
  };
  for (auto& p : model.parameters()) convert(p);
  for (auto& b : model.buffers()) convert(b);
  if (converted == 0)
    throw ConfigError(key, "the model has no convolutions (no 4-D weights) to lay out channels_last; set it to false");
}

bool uses_channels_last(const torch::nn::Module& model) {
  for (const auto& p : model.parameters())
    if (p.dim() == 4 && !p.is_contiguous() && p.is_contiguous(at::MemoryFormat::ChannelsLast)) return true;
  return false;
}

}  // namespace oodt
