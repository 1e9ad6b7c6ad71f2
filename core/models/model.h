#pragma once
// The model zoo. Every model is a trunk (features) followed by a Head (dropout + linear
// classifier), bound to the slots `trunk` and `head`: weight-space merges address parameters by
// these names, and fine-tuning replaces the head. Parameter and buffer names (module paths
// such as `trunk.block1.conv.weight`) are the checkpoint's dataset names and are kept stable;
// docs/models.md lists them. Models are built from the plain layers of layers.h inside Blocks,
// so plugins reach every model by layer type (module surgery, layer.h).
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/models/attention.h"
#include "core/models/layers.h"

namespace oodt {

class Model : public Block {
 public:
  Model(std::string kind, std::shared_ptr<Layer> trunk, Head head);
  at::Tensor forward(const at::Tensor& x) override { return head->forward(trunk->forward(x)); }
  at::Tensor features(const at::Tensor& x) { return trunk->forward(x); }
  at::Tensor classify(const at::Tensor& h) { return head->forward(h); }
  const std::string& kind() const { return kind_; }

  // Parameters and buffers in registration order with their full names.
  std::vector<std::pair<std::string, at::Tensor>> named_state() const;

  Slot<Layer> trunk;
  Slot<HeadImpl> head;

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

// Builds the model named by `model.name` from its options (reading and validating every key).
std::shared_ptr<Model> build_model(ConfigReader& cfg, const ModelShape& shape);

// The trunk's first layers for images: the input normalisation of `input_norm` (none, imagenet,
// clip), read from cfg. Every image model starts its trunk with it.
Stack image_trunk(ConfigReader& cfg, const ModelShape& shape);

// Names of the models in the zoo.
std::vector<std::string> model_names();

}  // namespace oodt
