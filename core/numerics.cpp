#include "core/numerics.h"

#include <cmath>

#include "core/agreement.h"
#include "core/comm.h"
#include "core/models/model.h"

namespace oodt {

NonFiniteCheck::NonFiniteCheck(NonFinitePolicy policy, StepAgreement& agreement)
    : policy_(policy), agreement_(agreement), flag_(agreement.add("non_finite")) {}

namespace {
// Whether a CPU float32 contiguous tensor holds a NaN or Inf: one pass over the bits (an
// exponent of all ones), no dispatch, and the compiler vectorizes it.
bool has_non_finite_floats(const at::Tensor& g) {
  const auto* bits = static_cast<const uint32_t*>(g.data_ptr());
  uint32_t any = 0;
  for (int64_t i = 0, n = g.numel(); i < n; ++i) any |= static_cast<uint32_t>((bits[i] & 0x7f800000u) == 0x7f800000u);
  return any != 0;
}
}  // namespace

std::string first_non_finite(const State& s, double loss) {
  if (!std::isfinite(loss)) return concat("non-finite loss (", loss, ")");
  // Plain CPU float32 gradients are scanned directly; any other is summed (NaN and Inf
  // survive summation; a finite sum of finite values never overflows a float here in
  // practice, and if it did the search below would find nothing and the step goes on), with
  // one sync for all the sums.
  bool found = false;
  std::vector<at::Tensor> sums;
  for (const auto& p : s.model->parameters()) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (g.device().is_cpu() && g.scalar_type() == at::kFloat && g.is_contiguous()) found = found || has_non_finite_floats(g);
    else sums.push_back(g.sum().to(at::kDouble).reshape({1}));
  }
  if (!found && (sums.empty() || std::isfinite(at::cat(sums).sum().item<double>()))) return "";
  for (const auto& kv : s.model->named_parameters()) {
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

void NonFiniteCheck::check(const State& s, double loss) {
  mine_ = first_non_finite(s, loss);
  // world - rank: the agreed maximum names the lowest rank that found something.
  if (!mine_.empty()) agreement_.raise(flag_, static_cast<double>(s.comm->world_size() - s.comm->rank()));
}

bool NonFiniteCheck::allows_update(const State& s) {
  if (!agreement_.raised(flag_)) return true;
  if (policy_ == NonFinitePolicy::Skip) {
    ++skipped_;
    return false;
  }
  const int w = s.comm->world_size();
  const int first = w - static_cast<int>(agreement_.value(flag_));
  if (!mine_.empty())
    throw NumericalError(concat("step ", s.step, ": ", mine_, " on rank ", s.comm->rank(),
                                " (train.nonfinite: abort; `skip` drops such steps instead)"));
  throw NumericalError(concat("step ", s.step, ": rank ", first, " found a non-finite loss or gradient (its own "
                              "message names it); stopping every rank (train.nonfinite: abort)"));
}

int64_t NonFiniteCheck::take_skipped() {
  const int64_t n = skipped_;
  skipped_ = 0;
  return n;
}

}  // namespace oodt
