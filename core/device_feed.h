#pragma once
// Batches from host memory to the device the model trains on (docs/gpu.md, "The input path").
//
// On a CUDA device, in a build against a CUDA LibTorch (OODT_TORCH_CUDA), a batch is copied on
// a side stream of its own:
//   start()   enqueues the copies there and returns at once. The data sources assemble their
//             batches in pinned (page-locked) memory when the run trains on CUDA
//             (DataOptions::pin_memory), so the copy is an asynchronous DMA that overlaps
//             whatever the compute stream is doing: the trainer starts the next step's batch
//             during this step's backward, evaluation the next batch while it scores this one.
//   finish()  makes the compute stream (LibTorch's current stream) wait for that copy alone
//             (an event, not a device-wide synchronisation) and records the device tensors as
//             used on the compute stream (record_stream): memory the copy stream allocated is
//             then not handed out again before the compute stream is done with it. The host
//             tensors are kept until their copy is known to be complete, so a host buffer is
//             never refilled while the DMA still reads it.
// Everywhere else start() is Batch::to(device) and finish() returns its result: on CPU the
// batch's tensors are the source's own, as before this class existed.
//
// channels_last: 4-D inputs come out in channels_last memory format (train.channels_last),
// converted on the device after the copy.
#include <deque>
#include <memory>
#include <utility>

#include "core/state.h"

namespace oodt {

class DeviceFeed {
 public:
  DeviceFeed(at::Device device, bool channels_last);
  ~DeviceFeed();
  DeviceFeed(const DeviceFeed&) = delete;
  DeviceFeed& operator=(const DeviceFeed&) = delete;

  // A batch on its way to the device; hand it to finish() before touching it.
  struct Transfer {
    Batch batch;                  // the device tensors (written by the copy until finish())
    Batch host;                   // the source, kept while the copy may still read it
    std::shared_ptr<void> event;  // the copy's completion (CUDA), else null
  };

  Transfer start(const Batch& host);
  Batch finish(Transfer transfer);
  Batch copy(const Batch& host) { return finish(start(host)); }

  // Whether start() returns before the copy is done (CUDA device, CUDA build): only then does
  // starting a copy early gain anything.
  bool asynchronous() const { return asynchronous_; }
  const at::Device& device() const { return device_; }

 private:
  // Drops the host batches whose copies have completed; waits for the oldest beyond a few.
  void retire(bool wait_all);

  at::Device device_;
  bool channels_last_;
  bool asynchronous_ = false;
  std::shared_ptr<void> stream_;                                  // the copy stream (CUDA)
  std::deque<std::pair<std::shared_ptr<void>, Batch>> in_flight_;  // (event, host batch)
};

// channels_last for a model: every 4-D parameter and buffer (convolution weights) is re-laid
// out in place (set_data, so tensors that layers share stay shared). ConfigError naming
// `key` when the model has no 4-D tensor to convert (no convolutions).
void use_channels_last(torch::nn::Module& model, const std::string& key);
// Whether a model was converted: some 4-D parameter is laid out channels_last and not in the
// default (contiguous) format.
bool uses_channels_last(const torch::nn::Module& model);

}  // namespace oodt
