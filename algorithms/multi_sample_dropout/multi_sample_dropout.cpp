#include "algorithms/multi_sample_dropout/multi_sample_dropout.h"

#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

void repeat_targets(Batch& batch, int64_t samples) {
  auto rep = [&](const at::Tensor& t) -> at::Tensor {
    if (!t.defined()) return t;
    std::vector<int64_t> times(static_cast<size_t>(t.dim()), 1);
    times[0] = samples;
    return t.repeat(times);
  };
  batch.labels = rep(batch.labels);
  batch.domains = rep(batch.domains);
  batch.soft_targets = rep(batch.soft_targets);
}

void MultiSampleDropout::run(Phase phase, State& state) {
  Head& head = state.model->head;
  switch (phase) {
    case Phase::FitStart:
      if (head->dropout <= 0.0)
        throw ConfigError("algorithms.multi_sample_dropout",
                          "the model's head has no dropout (set model.dropout > 0); with p = 0 every sample is the same");
      head->samples = samples_;
      break;
    case Phase::BeforeLoss:
      saved_ = state.batch;
      repeat_targets(state.batch, samples_);
      break;
    case Phase::AfterLoss:
      state.batch.labels = saved_.labels;
      state.batch.domains = saved_.domains;
      state.batch.soft_targets = saved_.soft_targets;
      saved_ = Batch{};
      break;
    case Phase::FitEnd:
      head->samples = 1;
      break;
    default:
      break;
  }
}

}  // namespace oodt
