#include "core/evaluate.h"

#include <cmath>
#include <optional>
#include <utility>

#include "core/comm.h"
#include "core/device_feed.h"
#include "core/models/model.h"

namespace oodt {

EvalSummary summarize(const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains) {
  double val = 0, nv = 0, held = 0, conf = 0, ece = 0, nh = 0;
  for (const auto& m : metrics) {
    const auto n = static_cast<double>(m.count);
    if (domains[static_cast<size_t>(m.domain)].held_out) {
      held += m.accuracy * n, conf += m.confidence * n, ece += m.ece * n, nh += n;
    } else if (m.part == "out") {
      val += m.accuracy * n, nv += n;
    }
  }
  EvalSummary s{NAN, NAN, NAN, NAN};
  if (nv > 0) s.val_acc = val / nv;
  if (nh > 0) s.heldout_acc = held / nh, s.heldout_conf = conf / nh, s.heldout_ece = ece / nh;
  return s;
}

void MetricSums::add(const at::Tensor& logits_in, const at::Tensor& labels_in) {
  const at::Tensor logits = logits_in.to(at::kCPU, at::kFloat);
  const at::Tensor labels = labels_in.to(at::kCPU);
  const at::Tensor logp = at::log_softmax(logits, 1);
  loss += -logp.gather(1, labels.unsqueeze(1)).sum().item<double>();
  const auto [conf_t, pred_t] = logp.exp().max(1);
  const at::Tensor ok = pred_t.eq(labels).to(at::kDouble).contiguous();
  const at::Tensor conf = conf_t.to(at::kDouble).contiguous();
  const double* c = conf.data_ptr<double>();
  const double* k = ok.data_ptr<double>();
  for (int64_t i = 0; i < conf.numel(); ++i) {
    // Bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 goes to bin 0.
    int b = static_cast<int>(std::ceil(c[i] * kEceBins)) - 1;
    b = std::min(std::max(b, 0), kEceBins - 1);
    bin_count[b] += 1;
    bin_conf[b] += c[i];
    bin_correct[b] += k[i];
    correct += k[i];
  }
  count += static_cast<double>(conf.numel());
}

void MetricSums::to(double* out) const {
  out[0] = count, out[1] = correct, out[2] = loss;
  for (int b = 0; b < kEceBins; ++b) {
    out[3 + b] = bin_count[b];
    out[3 + kEceBins + b] = bin_conf[b];
    out[3 + 2 * kEceBins + b] = bin_correct[b];
  }
}

void MetricSums::from(const double* in) {
  count = in[0], correct = in[1], loss = in[2];
  for (int b = 0; b < kEceBins; ++b) {
    bin_count[b] = in[3 + b];
    bin_conf[b] = in[3 + kEceBins + b];
    bin_correct[b] = in[3 + 2 * kEceBins + b];
  }
}

SplitMetrics MetricSums::finish() const {
  SplitMetrics m;
  m.count = static_cast<int64_t>(count);
  if (count <= 0) return m;
  m.accuracy = correct / count;
  m.loss = loss / count;
  for (int b = 0; b < kEceBins; ++b) {
    if (bin_count[b] > 0) m.ece += std::fabs(bin_correct[b] - bin_conf[b]) / count;
    m.confidence += bin_conf[b] / count;
  }
  return m;
}

double expected_calibration_error(const at::Tensor& logits, const at::Tensor& labels) {
  MetricSums s;
  s.add(logits, labels);
  return s.finish().ece;
}

std::vector<SplitMetrics> evaluate(Model& model, DataSource& data, Communicator& comm, int64_t batch_size,
                                   const at::Device& device, const Predictor& predict) {
  at::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const std::vector<EvalSplit> splits = data.eval_splits();
  at::Tensor packed = at::zeros({static_cast<int64_t>(splits.size()), MetricSums::kSize}, at::kDouble);
  // Inputs go to the device as training batches do, in the model's memory format; labels stay
  // on the host, where the sums are taken.
  DeviceFeed feed(device, uses_channels_last(model));
  for (size_t i = 0; i < splits.size(); ++i) {
    MetricSums sums;
    auto score = [&](DeviceFeed::Transfer t, const at::Tensor& labels) {
      const at::Tensor x = feed.finish(std::move(t)).inputs;
      sums.add(predict ? predict(model, x) : model.forward(x), labels);
    };
    // With asynchronous copies (CUDA) a batch is scored while the next one is copied.
    std::optional<std::pair<DeviceFeed::Transfer, at::Tensor>> pending;
    data.for_each_eval_batch(splits[i], batch_size, [&](const Batch& b) {
      Batch inputs;
      inputs.inputs = b.inputs;
      DeviceFeed::Transfer t = feed.start(inputs);
      if (!feed.asynchronous()) return score(std::move(t), b.labels);
      if (pending) score(std::move(pending->first), pending->second);
      pending.emplace(std::move(t), b.labels);
    });
    if (pending) score(std::move(pending->first), pending->second);
    sums.to(packed[static_cast<int64_t>(i)].data_ptr<double>());
  }
  comm.all_reduce(packed, ReduceOp::Sum);  // one collective for every split
  std::vector<SplitMetrics> out;
  for (size_t i = 0; i < splits.size(); ++i) {
    MetricSums sums;
    sums.from(packed[static_cast<int64_t>(i)].data_ptr<double>());
    SplitMetrics m = sums.finish();
    m.domain = splits[i].domain;
    m.part = splits[i].part;
    out.push_back(m);
  }
  model.train(was_training);
  return out;
}

}  // namespace oodt
