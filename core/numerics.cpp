#include "core/numerics.h"

#include <cmath>

#include "core/comm.h"
#include "core/models/model.h"

namespace oodt {

NonFiniteGuard::NonFiniteGuard(std::string policy) : policy_(std::move(policy)) {
  OODT_CHECK(policy_ == "abort" || policy_ == "skip", "non-finite policy: ", policy_);
}

std::string first_non_finite(const State& s, double loss) {
  if (!std::isfinite(loss)) return concat("non-finite loss (", loss, ")");
  // One sum per gradient and one sync: NaN and Inf survive summation (a finite sum of
  // finite values never overflows a float here in practice; if it did, the search below
  // would find nothing and the step goes on).
  std::vector<at::Tensor> sums;
  const auto named = s.model->named_parameters();
  for (const auto& kv : named)
    if (kv.value().grad().defined()) sums.push_back(kv.value().grad().sum().to(at::kDouble).reshape({1}));
  if (sums.empty() || std::isfinite(at::cat(sums).sum().item<double>())) return "";
  for (const auto& kv : named) {
    const at::Tensor& g = kv.value().grad();
    if (!g.defined()) continue;
    const at::Tensor bad = at::logical_not(at::isfinite(g));
    const int64_t n = bad.sum().item<int64_t>();
    if (n > 0) {
      const bool has_nan = at::isnan(g).any().item<bool>();
      return concat("non-finite gradient of '", kv.key(), "' ", g.sizes(), ": ", n, " value(s), ",
                    has_nan ? "NaN" : "Inf");
    }
  }
  return "";
}

bool NonFiniteGuard::allows_update(const State& s, double loss) {
  Communicator& comm = *s.comm;
  const std::string mine = first_non_finite(s, loss);
  const int w = comm.world_size();
  CollectiveContext ctx("non-finite check");
  const int first = static_cast<int>(comm.all_reduce_scalar(mine.empty() ? w : comm.rank(), ReduceOp::Min));
  if (first == w) return true;
  if (policy_ == "skip") {
    ++skipped_;
    return false;
  }
  if (!mine.empty())
    throw NumericalError(concat("step ", s.step, ": ", mine, " on rank ", comm.rank(),
                                " (train.nonfinite: abort; `skip` drops such steps instead)"));
  throw NumericalError(concat("step ", s.step, ": rank ", first, " found a non-finite loss or gradient (its own "
                              "message names it); stopping every rank (train.nonfinite: abort)"));
}

int64_t NonFiniteGuard::take_skipped() {
  const int64_t n = skipped_;
  skipped_ = 0;
  return n;
}

}  // namespace oodt
