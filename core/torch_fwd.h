#pragma once
// The LibTorch headers oodtrain uses. Narrower than <torch/torch.h> (no JIT, data loaders or
// serialization), and precompiled once for every target (see cmake/OodtTargets.cmake).
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/types.h>
#include <torch/utils.h>

namespace oodt {

// Named tensors: the unit of checkpointed state (model, optimizer, plugins).
using TensorMap = std::map<std::string, at::Tensor>;

}  // namespace oodt
