#pragma once
// The model zoo. Every model is a trunk (features) followed by a Head (dropout + linear
// classifier), registered as the submodules `trunk` and `head`: multi-sample dropout repeats
// the head, WiSE-FT and soups address parameters by these names. Parameter and buffer names
// (module paths such as `trunk.block1.conv.weight`) are the checkpoint's dataset names and
// are kept stable; docs/models.md lists them.
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/models/attention.h"
#include "core/models/layers.h"
#include "core/torch_fwd.h"

namespace oodt {

// A Sequential with a concrete forward(Tensor), so stacks can nest inside each other.
class StackImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;
  at::Tensor forward(at::Tensor x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(Stack);

class Model : public torch::nn::Module {
 public:
  Model(std::string kind, Stack trunk, Head head);
  // In eval with eval_passes > 1 (SSA's self-ensemble): log of the mean probability of that
  // many stochastic passes, so accuracy, loss and calibration score the ensemble.
  at::Tensor forward(const at::Tensor& x);
  at::Tensor features(const at::Tensor& x) { return trunk->forward(x); }
  at::Tensor classify(const at::Tensor& h) { return head->forward(h); }
  const std::string& kind() const { return kind_; }

  // Parameters and buffers in registration order with their full names.
  std::vector<std::pair<std::string, at::Tensor>> named_state() const;

  Stack trunk{nullptr};
  Head head{nullptr};  // `fc`, plus the dropout rate and multi-sample count
  int64_t eval_passes = 1;

 private:
  std::string kind_;
};

struct ModelShape {
  std::vector<int64_t> input;  // [C, H, W] images, or [L] token sequences
  int64_t num_classes = 0;

  // A shape that the options in `model` (the config section) accept: used to validate the
  // model section and fill its defaults before the data file is opened.
  static ModelShape for_validation(const YAML::Node& model);
};

// Calls fn(T&) on every module of type T in `module` (itself included), in registration order;
// returns how many there were. Plugins use it to reconfigure layers in place.
template <typename T, typename Fn>
int64_t for_each_layer(torch::nn::Module& module, Fn&& fn) {
  int64_t n = 0;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* layer = dynamic_cast<T*>(m.get())) {
      fn(*layer);
      ++n;
    }
  }
  return n;
}

// Builds the model named by `model.name` from its options (reading and validating every key).
std::shared_ptr<Model> build_model(ConfigReader& cfg, const ModelShape& shape);

// Names of the models in the zoo.
std::vector<std::string> model_names();

}  // namespace oodt
