#pragma once
// Evaluation: accuracy, mean loss and expected calibration error per split, each rank
// evaluating its share and one all-reduce combining them.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/data_source.h"

namespace oodt {

class Communicator;
class Model;

struct SplitMetrics {
  int64_t domain = 0;
  std::string part;  // in | out
  int64_t count = 0;
  double accuracy = 0, loss = 0, ece = 0;
  double confidence = 0;  // mean max-probability (over-confidence shows as confidence > accuracy)
};

constexpr int kEceBins = 15;

// Accumulates one split's sums; `merge` is what the all-reduce does.
struct MetricSums {
  double count = 0, correct = 0, loss = 0;
  double bin_count[kEceBins] = {}, bin_conf[kEceBins] = {}, bin_correct[kEceBins] = {};
  void add(const at::Tensor& logits, const at::Tensor& labels);
  static constexpr int kSize = 3 + 3 * kEceBins;
  void to(double* out) const;
  void from(const double* in);
  SplitMetrics finish() const;
};

// Expected calibration error with `kEceBins` equal-width confidence bins:
// sum_b (n_b / n) |accuracy_b - confidence_b|.
double expected_calibration_error(const at::Tensor& logits, const at::Tensor& labels);

// Count-weighted summaries of an evaluation: validation = the training domains' out splits
// (what model selection may look at); held-out = both splits of the held-out domains.
struct EvalSummary {
  double val_acc, heldout_acc, heldout_conf, heldout_ece;  // NaN when there is no such split
};
EvalSummary summarize(const std::vector<SplitMetrics>& metrics, const std::vector<DomainInfo>& domains);

// What an evaluation scores for a batch of inputs: model(x) (in eval mode) unless a plugin
// predicts otherwise (core/algorithm.h, EvaluationPredictor).
using Predictor = std::function<at::Tensor(Model&, const at::Tensor&)>;

// Every split of `data`, this rank's share of it, combined over `comm` (one all-reduce).
std::vector<SplitMetrics> evaluate(Model& model, DataSource& data, Communicator& comm, int64_t batch_size,
                                   const at::Device& device, const Predictor& predict = nullptr);

}  // namespace oodt
