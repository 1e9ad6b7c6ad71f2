#pragma once
// Weight-space merges of checkpoints: uniform and greedy model soups (Wortsman et al. 2022,
// mlfoundations/model-soups) and WiSE-FT interpolation (Wortsman et al. 2022,
// mlfoundations/wise-ft). Pure functions on named tensors; the commands in launch/ only load,
// score and write.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/state.h"

namespace oodt {
class Model;
}

namespace oodt {

// Refuses states whose names or shapes differ, naming the sources and the first differences.
void check_mergeable(const std::vector<TensorMap>& states, const std::vector<std::string>& sources);

// Mean of every floating-point entry; other entries (integer counters) are copied from the
// first state.
TensorMap uniform_soup(const std::vector<TensorMap>& states);

// theta_alpha = (1 - alpha) * theta0 + alpha * theta1 on floating-point entries; others from
// theta1 (the fine-tuned model).
TensorMap interpolate(const TensorMap& theta0, const TensorMap& theta1, double alpha);

struct GreedySoup {
  std::vector<double> individual;  // [candidate] score on its own
  std::vector<size_t> order;       // candidates by decreasing individual score (ties: input order)
  std::vector<double> trial;       // [position in order] score of the soup tried when adding it
  std::vector<bool> accepted;      // [position in order]
  std::vector<size_t> kept;        // candidates in the final soup, in the order added
  double score = 0;                // of the final soup
};

// Greedy soup: start from the best candidate, try the others in decreasing order of their own
// score, keep one when the soup with it scores at least as well (`strict`: strictly better).
// `score(members)` scores the uniform soup of `members` on held-out validation data.
GreedySoup greedy_soup(size_t candidates, const std::function<double(const std::vector<size_t>&)>& score,
                       bool strict);

// Diagonal empirical Fisher of `model` (in eval mode) on `batch`: the mean over examples of
// the squared per-example gradient of the cross-entropy, per parameter (Matena & Raffel 2022).
TensorMap diagonal_fisher(Model& model, const Batch& batch);

// Fisher-weighted interpolation: per parameter entry
//   ((1-a)(F0+eps) theta0 + a(F1+eps) theta1) / ((1-a)(F0+eps) + a(F1+eps)),
// which is plain interpolation where both Fishers vanish; entries without a Fisher (buffers)
// are interpolated plainly.
TensorMap fisher_interpolate(const TensorMap& theta0, const TensorMap& theta1, const TensorMap& fisher0,
                             const TensorMap& fisher1, double alpha, double eps = 1e-8);

class Communicator;
class DataSource;
class Model;

// Recomputes every BatchNorm layer's running statistics from scratch as the plain average over
// `batches` training batches of whole-batch statistics (each rank its own shard, then averaged
// over ranks in buckets of `bucket_bytes`), as soups need after averaging weights. Returns
// false (and changes nothing) when the model has no BatchNorm.
bool recalibrate_batch_norm(Model& model, DataSource& data, Communicator& comm, int64_t batches,
                            int64_t bucket_bytes);

// "a:b:step" -> a, a+step, ..., b (inclusive, within rounding); or a comma-separated list. At
// most kMaxAlphas values.
constexpr int64_t kMaxAlphas = 1001;
std::vector<double> parse_alphas(const std::string& spec);

}  // namespace oodt
