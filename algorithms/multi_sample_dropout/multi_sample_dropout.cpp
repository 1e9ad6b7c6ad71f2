#include "algorithms/multi_sample_dropout/multi_sample_dropout.h"

#include "core/config.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

at::Tensor multi_sample_inputs(const at::Tensor& h, const at::Tensor& masks) {
  OODT_CHECK(masks.dim() == 3 && masks.size(1) == h.size(0) && masks.size(2) == h.size(1),
             "masks must be [M, N, D] for features ", h.sizes(), ", got ", masks.sizes());
  return (h.unsqueeze(0) * masks).reshape({-1, h.size(1)});
}

at::Tensor multi_sample_logits(const at::Tensor& h, const at::Tensor& masks, const at::Tensor& weight,
                               const at::Tensor& bias) {
  return at::linear(multi_sample_inputs(h, masks), weight, bias);
}

MultiSampleHeadImpl::MultiSampleHeadImpl(const HeadImpl& base, int64_t samples_)
    : HeadImpl(base, Adopt{}), samples(samples_) {}

at::Tensor MultiSampleHeadImpl::forward(const at::Tensor& h) {
  if (!is_training() || dropout == 0.0) return fc->forward(h);
  return fc->forward(multi_sample_inputs(h, dropout_masks(h, samples)));
}

MultiSampleDropoutOptions MultiSampleDropoutOptions::from_config(ConfigReader& cfg) {
  MultiSampleDropoutOptions o;
  o.samples = cfg.get<int64_t>("samples", o.samples);
  cfg.check(o.samples >= 1, "samples", "must be >= 1");
  return o;
}

void MultiSampleDropout::prepare_model(State& state) {
  const int64_t n = replace_layers<HeadImpl>(*state.model, [&](HeadImpl& head, const std::string& path) {
    if (head.dropout <= 0.0)
      throw ConfigError(key(), concat("the model's head ('", path, "') has no dropout (set model.dropout > 0); with "
                                      "p = 0 every sample is the same"));
    return std::make_shared<MultiSampleHeadImpl>(head, o_.samples);
  });
  if (n == 0) throw ConfigError(key(), concat("the model (", state.model->kind(), ") has no head to repeat"));
}

}  // namespace oodt
