#pragma once
// The plain layers the model zoo is built from. Parameter and buffer names are torch.nn's
// (`weight`, `bias`, `running_mean`, ...), initialisation is torch.nn's, and every layer that
// a plugin may replace has an `Adopt` constructor for its replacement to take over its tensors
// (and children) under the same names. The core keeps no algorithm's behaviour here: plugins
// subclass these layers and swap them in (core/models/layer.h).
#include <cstdint>
#include <vector>

#include "core/models/layer.h"

namespace oodt {

class LinearImpl : public Layer {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias = true);
  at::Tensor forward(const at::Tensor& x) override { return at::linear(x, weight, bias); }

  int64_t in_features, out_features;
  at::Tensor weight, bias;  // [out, in], [out] (bias undefined when off)

 protected:
  LinearImpl(const LinearImpl& base, Adopt);
};
using Linear = std::shared_ptr<LinearImpl>;

struct ConvOptions {
  int64_t in = 0, out = 0, kernel = 1;
  int64_t stride = 1, padding = 0, groups = 1;
  bool bias = true;
  ConvOptions(int64_t in_, int64_t out_, int64_t kernel_) : in(in_), out(out_), kernel(kernel_) {}
  ConvOptions& with_stride(int64_t s) { return stride = s, *this; }
  ConvOptions& with_padding(int64_t p) { return padding = p, *this; }
  ConvOptions& with_groups(int64_t g) { return groups = g, *this; }
  ConvOptions& with_bias(bool b) { return bias = b, *this; }
};

class Conv2dImpl : public Layer {
 public:
  explicit Conv2dImpl(const ConvOptions& options);
  at::Tensor forward(const at::Tensor& x) override { return conv(x, weight); }

  ConvOptions options;
  at::Tensor weight, bias;  // [out, in / groups, k, k], [out]

 protected:
  Conv2dImpl(const Conv2dImpl& base, Adopt);
  // The convolution of x with weights w (and this layer's bias, stride, padding, groups).
  at::Tensor conv(const at::Tensor& x, const at::Tensor& w) const;
};
using Conv2d = std::shared_ptr<Conv2dImpl>;

// Batch normalisation over dim 1 (inputs [N, C] or [N, C, H, W]), torch.nn.BatchNorm*d's maths.
//  eval:        the running statistics;
//  training:    train_forward(): the batch's statistics, running statistics updated by EMA
//               with `momentum` (subclasses change how, e.g. per chunk of the batch);
//  calibrating: (set_calibrating) the whole batch's statistics whatever the subclass, and the
//               running statistics become the exact mean over the batches seen since
//               calibration began: what re-estimating statistics after merging weights needs.
class BatchNormImpl : public Layer {
 public:
  explicit BatchNormImpl(int64_t features, double momentum = 0.1, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x) final;
  void set_calibrating(bool on) { calibrated_ = on ? 0 : -1; }

  // Same names as torch.nn.BatchNorm*d.
  at::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double momentum, eps;

 protected:
  BatchNormImpl(const BatchNormImpl& base, Adopt);
  virtual at::Tensor train_forward(const at::Tensor& x);

 private:
  int64_t calibrated_ = -1;  // batches seen while calibrating; -1: not calibrating
};
using BatchNorm = std::shared_ptr<BatchNormImpl>;

// While alive, every BatchNorm layer of `module` keeps its running statistics (momentum 0):
// for extra forward passes that must not count as data seen (a second pass, an
// initialisation). The layers still count the batch in num_batches_tracked.
class FreezeBatchNormStatistics {
 public:
  explicit FreezeBatchNormStatistics(torch::nn::Module& module);
  ~FreezeBatchNormStatistics();
  FreezeBatchNormStatistics(const FreezeBatchNormStatistics&) = delete;
  FreezeBatchNormStatistics& operator=(const FreezeBatchNormStatistics&) = delete;

 private:
  std::vector<std::pair<BatchNormImpl*, double>> saved_;  // layer, its momentum
};

class LayerNormImpl : public Layer {
 public:
  explicit LayerNormImpl(int64_t features, double eps = 1e-5);
  at::Tensor forward(const at::Tensor& x) override;
  at::Tensor weight, bias;
  double eps;
};
using LayerNorm = std::shared_ptr<LayerNormImpl>;

// Dropout + linear classifier: the part of every model that fine-tuning replaces and WiSE-FT
// and weight-space merges address as `head.fc`. Training: fc(h * mask), mask ~ Bernoulli(1 - p) / (1 - p).
class HeadImpl : public Block {
 public:
  HeadImpl(int64_t features, int64_t classes, double dropout);
  at::Tensor forward(const at::Tensor& h) override;

  double dropout;  // p
  Slot<LinearImpl> fc;

 protected:
  HeadImpl(const HeadImpl& base, Adopt);
  // `count` independent dropout masks for features h [N, D], drawn from the current
  // generator: [count, N, D], already scaled by 1 / (1 - p).
  at::Tensor dropout_masks(const at::Tensor& h, int64_t count) const;
};
using Head = std::shared_ptr<HeadImpl>;

// Parameter-free layers.
class ReLUImpl final : public Layer {
 public:
  at::Tensor forward(const at::Tensor& x) override { return at::relu(x); }
};
class GELUImpl final : public Layer {
 public:
  at::Tensor forward(const at::Tensor& x) override { return at::gelu(x); }
};
class MaxPool2dImpl final : public Layer {
 public:
  explicit MaxPool2dImpl(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : kernel_(kernel), stride_(stride > 0 ? stride : kernel), padding_(padding) {}
  at::Tensor forward(const at::Tensor& x) override {
    return at::max_pool2d(x, {kernel_, kernel_}, {stride_, stride_}, {padding_, padding_});
  }

 private:
  int64_t kernel_, stride_, padding_;
};
// Per-channel input normalisation (x - mean) / std of [N, C, H, W] images in [0, 1]: the
// constants a pretrained backbone was trained with travel with the model (`model.input_norm`).
// No tensors: checkpoints and imported weights are unaffected.
class NormalizeImpl final : public Layer {
 public:
  NormalizeImpl(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {}
  at::Tensor forward(const at::Tensor& x) override;

 private:
  std::vector<double> mean_, std_;
};
// Mean over the spatial dimensions: [N, C, H, W] -> [N, C, 1, 1].
class AvgPoolImpl final : public Layer {
 public:
  at::Tensor forward(const at::Tensor& x) override { return at::adaptive_avg_pool2d(x, {1, 1}); }
};
class FlattenImpl final : public Layer {
 public:
  at::Tensor forward(const at::Tensor& x) override { return x.flatten(1); }
};
class DropoutImpl final : public Layer {
 public:
  explicit DropoutImpl(double p) : p_(p) {}
  at::Tensor forward(const at::Tensor& x) override { return at::dropout(x, p_, is_training()); }

 private:
  double p_;
};

// The weights of every Linear and Conv2d layer in `module`, in registration order, named by
// module path (`<path>.weight`): the first is the model's first layer, the last its classifier.
std::vector<std::pair<std::string, at::Tensor>> weight_layers(torch::nn::Module& module);

}  // namespace oodt
