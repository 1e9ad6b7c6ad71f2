#include "core/numerics.h"

#include <cmath>
#include <cstdio>

#include "core/agreement.h"
#include "core/comm.h"
#include "core/models/model.h"

namespace oodt {

NonFiniteCheck::NonFiniteCheck(NonFiniteOptions options, StepAgreement& agreement)
    : o_(options), agreement_(agreement), flag_(agreement.add("non_finite")) {}

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

// Plain CPU float32 tensors are scanned directly, any other is summed (NaN and Inf survive
// summation; a finite sum of finite values never overflows a float here in practice, and if it
// did the search that follows would find nothing and the step goes on), with one sync for all
// the sums.
bool any_non_finite(const std::vector<at::Tensor>& tensors) {
  bool found = false;
  std::vector<at::Tensor> sums;
  for (const at::Tensor& t : tensors) {
    if (!t.defined() || !at::isFloatingType(t.scalar_type())) continue;
    if (t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()) found = found || has_non_finite_floats(t);
    else sums.push_back(t.sum().to(at::kDouble).reshape({1}));
  }
  return found || (!sums.empty() && !std::isfinite(at::cat(sums).sum().item<double>()));
}

namespace {

// The first named tensor with a NaN or Inf, described; "" for none.
std::string first_bad(const std::vector<std::pair<std::string, at::Tensor>>& named, const char* what) {
  for (const auto& [name, t] : named) {
    if (!t.defined() || !at::isFloatingType(t.scalar_type())) continue;
    const int64_t n = at::logical_not(at::isfinite(t)).sum().item<int64_t>();
    if (n > 0)
      return concat("non-finite ", what, " '", name, "' ", t.sizes(), ": ", n, " value(s), ",
                    at::isnan(t).any().item<bool>() ? "NaN" : "Inf");
  }
  return "";
}

}  // namespace

std::string first_non_finite(const State& s, double loss, bool gradients) {
  if (!std::isfinite(loss)) return concat("non-finite loss (", loss, ")");
  std::vector<at::Tensor> grads, buffers;
  if (gradients)
    for (const auto& p : s.model->parameters()) grads.push_back(p.grad());
  for (const auto& b : s.model->buffers()) buffers.push_back(b);
  if (any_non_finite(grads)) {
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (const auto& kv : s.model->named_parameters()) named.emplace_back(kv.key(), kv.value().grad());
    const std::string bad = first_bad(named, "gradient of");
    if (!bad.empty()) return bad;
  }
  if (any_non_finite(buffers)) {
    std::vector<std::pair<std::string, at::Tensor>> named;
    for (const auto& kv : s.model->named_buffers()) named.emplace_back(kv.key(), kv.value());
    return first_bad(named, "buffer");
  }
  return "";
}

void NonFiniteCheck::begin_step(const State& s) {
  if (o_.policy != NonFinitePolicy::Skip) return;
  if (buffers_.empty())
    for (const auto& b : s.model->buffers())
      if (at::isFloatingType(b.scalar_type())) buffers_.push_back(b);
  at::NoGradGuard no_grad;
  if (saved_.size() != buffers_.size()) {
    saved_.clear();
    for (const auto& b : buffers_) saved_.push_back(b.detach().clone());
  } else {
    for (size_t i = 0; i < buffers_.size(); ++i) saved_[i].copy_(buffers_[i]);
  }
}

void NonFiniteCheck::check(const State& s, double loss, bool gradients) {
  mine_ = first_non_finite(s, loss, gradients);
  // world - rank: the agreed maximum names the lowest rank that found something.
  if (!mine_.empty()) agreement_.raise(flag_, static_cast<double>(s.comm->world_size() - s.comm->rank()));
}

bool NonFiniteCheck::allows_update(State& s) {
  if (!agreement_.raised(flag_)) {
    consecutive_ = 0;
    return true;
  }
  const int w = s.comm->world_size();
  const int first = w - static_cast<int>(agreement_.value(flag_));
  if (o_.policy == NonFinitePolicy::Abort) {
    if (!mine_.empty())
      throw NumericalError(concat("step ", s.step, ": ", mine_, " on rank ", s.comm->rank(),
                                  " (train.nonfinite: abort; `skip` drops such steps instead)"));
    throw NumericalError(concat("step ", s.step, ": rank ", first, " found a non-finite loss, gradient or buffer (its own "
                                "message names it); stopping every rank (train.nonfinite: abort)"));
  }
  // Skip: the forward passes' buffer updates go too, on every rank.
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers_.size() && i < saved_.size(); ++i) buffers_[i].copy_(saved_[i]);
  }
  ++skipped_, ++consecutive_, ++total_;
  const auto budget = static_cast<int64_t>(o_.max_skipped_fraction * static_cast<double>(s.max_steps));
  if (s.comm->rank() == 0)
    std::fprintf(stderr, "oodtrain: warning: step %lld: update skipped, rank %d found %s (%lld in a row, %lld of the %lld the run may skip)\n",
                 static_cast<long long>(s.step), first, first == 0 && !mine_.empty() ? mine_.c_str() : "a non-finite value",
                 static_cast<long long>(consecutive_), static_cast<long long>(total_), static_cast<long long>(budget));
  if (consecutive_ > o_.max_consecutive_skips)
    throw NumericalError(concat("step ", s.step, ": ", consecutive_, " updates in a row were skipped for non-finite values "
                                "(train.max_consecutive_skips: ", o_.max_consecutive_skips,
                                "); the run diverges: lower optim.lr, or check the data"));
  if (total_ > budget)
    throw NumericalError(concat("step ", s.step, ": ", total_, " updates were skipped for non-finite values, more than ",
                                "train.max_skipped_fraction (", o_.max_skipped_fraction, ") of train.steps (", s.max_steps,
                                "); lower optim.lr, or check the data"));
  return false;
}

int64_t NonFiniteCheck::take_skipped() {
  const int64_t n = skipped_;
  skipped_ = 0;
  return n;
}

}  // namespace oodt
