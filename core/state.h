#pragma once
// The mutable state of a run that the trainer and every plugin share.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/gradient_sync.h"
#include "core/torch_fwd.h"

namespace oodt {

class AveragingStrategy;
class Communicator;
class DataSource;
class Model;
class Optimizer;
class Precision;
class RunReporter;
class StepAgreement;

struct Batch {
  at::Tensor inputs;   // [N, C, H, W] float
  at::Tensor labels;   // [N] int64 class ids
  at::Tensor domains;  // [N] int64 domain ids
  // Optional [N, num_classes] target distribution. When set, the loss is the cross-entropy
  // against it instead of against `labels` (plugins that smooth or mix targets write it).
  at::Tensor soft_targets;

  Batch to(const at::Device& device) const;
  // Rows [start, start + count) (views, no copy).
  Batch slice(int64_t start, int64_t count) const;
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// What an evaluation scores for a batch of inputs: model(x) unless a plugin predicts otherwise
// (EvaluationPredictor, core/algorithm.h).
using Predictor = std::function<at::Tensor(Model&, const at::Tensor&)>;

struct State {
  // Fixed for the run.
  Model* model = nullptr;
  Optimizer* optimizer = nullptr;
  Communicator* comm = nullptr;
  DataSource* data = nullptr;  // for plugins that evaluate or recalibrate between steps
  // The strategy reconciling ranks; its evaluation_comm() is the ranks holding this rank's
  // model (all ranks, unless groups train different models).
  AveragingStrategy* averaging = nullptr;
  // The step's one collective agreement; plugins may add flags at fit start.
  StepAgreement* agreement = nullptr;
  // Where plugins write their files and reports (rank-aware).
  RunReporter* reporter = nullptr;
  // The run's arithmetic (train.precision): autocast and fp16's loss scale for plugins' extra
  // passes (extra_backward, loss_scale in core/precision.h). Null: fp32.
  const Precision* precision = nullptr;
  // Scores evaluations (set by the trainer: model(x), or a plugin's prediction).
  Predictor predict;
  at::Device device = at::kCPU;
  int64_t num_classes = 0;
  int64_t max_steps = 0;  // total optimizer steps of the run
  int64_t batch_size = 0; // training samples per rank per step
  int64_t eval_batch_size = 512;
  int64_t eval_every = 0;  // steps between evaluations (0: only at the end)
  uint64_t seed = 0;
  std::string run_dir;    // where the run writes (plugins may add files of their own)
  std::string config;     // the resolved YAML, recorded in every checkpoint
  std::string init_from;  // the checkpoint the weights started from, if any

  // How ranks exchange data: the `dist` section, and the gradient averaging the trainer
  // planned from it (every strategy that averages gradients builds its engine from these:
  // make_gradient_sync in core/averaging.h).
  DistOptions dist;
  GradientSyncOptions gradient_sync;
  std::function<std::unique_ptr<BucketHook>()> bucket_hook;

  // Progress. `step` counts completed optimizer steps; during a step it is that step's index.
  int64_t step = 0;
  int64_t epoch = 0;
  double lr = 0.0;

  // The current step's data and results. With train.accumulate > 1 the phases from
  // before_forward to after_backward run once per micro-batch, `batch` holding that slice.
  Batch batch;
  int64_t micro_batch = 0, micro_batches = 1;
  at::Tensor outputs;  // logits [N, num_classes], or [M*N, num_classes] (see classification_loss)
  at::Tensor loss;     // scalar

  // Extra scalars plugins report; written to the metrics log at each evaluation.
  std::map<std::string, double> metrics;
};

// Cross-entropy of logits against the batch's soft targets when present, else its labels
// (mean over all rows), computed in float32 whatever the logits' dtype (under autocast). A model may give M predictions per input in training (M dropout masks
// of one head, say): logits of M*N rows for N targets, mask-major (rows m*N .. m*N+N-1 are the
// m-th prediction of every input), each scored against its input's target.
at::Tensor classification_loss(const at::Tensor& logits, const Batch& batch);

}  // namespace oodt
