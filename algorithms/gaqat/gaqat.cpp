#include "algorithms/gaqat/gaqat.h"

#include <cmath>
#include <limits>

#include "core/averaging.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {
namespace {
int sign_of(double v) { return (v > 0) - (v < 0); }
}  // namespace

GaqatOptions GaqatOptions::from_config(ConfigReader& cfg) {
  GaqatOptions o;
  o.sagm = SagmOptions::from_config(cfg);
  o.window = cfg.get<int64_t>("window", o.window);
  cfg.check(o.window >= 2, "window", "must be >= 2");
  o.interval = cfg.get<int64_t>("interval", o.interval);
  cfg.check(o.interval >= 1, "interval", "must be >= 1");
  o.tau = cfg.get("tau", o.tau);
  cfg.check(o.tau >= 0 && o.tau <= 1, "tau", "must be in [0, 1]");
  o.freeze_all = cfg.one_of("freeze_target", std::string("task"), {"task", "all"}) == "all";
  o.reevaluate = cfg.one_of("unfreeze", std::string("never"), {"never", "reevaluate"}) == "reevaluate";
  return o;
}

double sign_disorder(const std::deque<int>& signs) {
  if (signs.size() < 2) return 0.0;
  int64_t flips = 0;
  for (size_t i = 1; i < signs.size(); ++i) flips += signs[i] != signs[i - 1];
  return static_cast<double>(flips) / static_cast<double>(signs.size() - 1);
}

void Gaqat::hooks(HookTable& table) {
  table.on(Phase::FitStart, [this](State& s) { fit_start(s); });
  table.on(Phase::AfterBackward, [this](State& s) { after_backward(s); });
  table.on(Phase::Evaluation, [this](State& s) { evaluation(s); });
}

void Gaqat::fit_start(State& state) {
  steps_.clear();
  for (const auto& kv : state.model->named_parameters())
    if (kv.key().size() > 5 && kv.key().compare(kv.key().size() - 5, 5, "_step") == 0) steps_.emplace_back(kv.key(), kv.value());
  if (steps_.empty())
    throw ConfigError(key(), "the model has no quantizers: add the lsq plugin (algorithms: [lsq, gaqat])");
  // Where each step sits among the trainable parameters (the order sagm_second_pass uses).
  step_index_.clear();
  const std::vector<at::Tensor> params = trainable_parameters(*state.model);
  for (const auto& [n, s] : steps_)
    for (size_t j = 0; j < params.size(); ++j)
      if (params[j].is_same(s)) step_index_.push_back(j);
  const size_t n = steps_.size();
  signs_.assign(n, {});
  conflicts_.assign(n, {});
  frozen_.assign(n, false);
  disorder_.assign(n, NAN);
  if (loaded_.count("frozen")) {  // resume: the windows and decisions continue
    const at::Tensor f = loaded_.at("frozen"), s = loaded_.at("signs"), c = loaded_.at("conflicts"),
                     d = loaded_.at("disorder");
    OODT_CHECK(f.numel() == static_cast<int64_t>(n), "gaqat checkpoint: ", f.numel(), " quantizers, the model has ", n);
    for (size_t l = 0; l < n; ++l) {
      frozen_[l] = f[static_cast<int64_t>(l)].item<int64_t>() != 0;
      disorder_[l] = d[static_cast<int64_t>(l)].item<double>();
      for (int64_t k = 0; k < s.size(1); ++k) {
        const int64_t v = s[static_cast<int64_t>(l)][k].item<int64_t>();
        if (v == 2) continue;  // padding
        signs_[l].push_back(static_cast<int>(v));
        conflicts_[l].push_back(static_cast<int>(c[static_cast<int64_t>(l)][k].item<int64_t>()));
      }
    }
  }
  loaded_.clear();
}

void Gaqat::after_backward(State& state) {
  std::vector<at::Tensor> params = trainable_parameters(*state.model);
  const SagmGradients g = sagm_second_pass(state, params, o_.sagm.rho, o_.sagm.alpha);
  // Each quantizer step's two gradient parts, all-reduced so every rank decides alike.
  const std::vector<size_t>& index = step_index_;
  const auto L = static_cast<int64_t>(steps_.size());
  at::Tensor parts = at::zeros({2 * L}, at::kDouble);
  std::vector<double> gs_local(static_cast<size_t>(L), 0.0);
  for (int64_t l = 0; l < L; ++l) {
    const size_t j = index[static_cast<size_t>(l)];
    const double gt = g.g1[j].defined() ? g.g1[j].item<double>() : 0.0;
    const double g2 = g.g2[j].defined() ? g.g2[j].item<double>() : 0.0;
    parts[l] = gt;
    // No second pass on this rank (g1 not finite): NaN, so that every replica sees it below.
    parts[L + l] = g.finite ? g2 - gt : std::numeric_limits<double>::quiet_NaN();
    gs_local[static_cast<size_t>(l)] = g2 - gt;
  }
  // Over the ranks that hold this model (a soup candidate's group, or all ranks).
  Communicator& replicas = state.averaging ? state.averaging->evaluation_comm(state) : *state.comm;
  replicas.all_reduce(parts, ReduceOp::Sum);
  // A non-finite part (fp16's loss scale overflowed on some replica, or a NaN) belongs to a step
  // the step agreement drops: every replica sees it alike, records no sign and leaves the
  // gradients as they are (a frozen step's fill must not hide the Inf from the agreement).
  // Otherwise the signs do not depend on the loss scale the gradients carry, nor does gs / 2.
  if (!at::isfinite(parts).all().item<bool>()) return;
  const bool decide = (state.step + 1) % o_.interval == 0;
  for (int64_t l = 0; l < L; ++l) {
    const auto ul = static_cast<size_t>(l);
    const int st = sign_of(parts[l].item<double>()), ss = sign_of(parts[L + l].item<double>());
    signs_[ul].push_back(st);
    conflicts_[ul].push_back(st != 0 && ss != 0 && st != ss);
    while (static_cast<int64_t>(signs_[ul].size()) > o_.window) signs_[ul].pop_front(), conflicts_[ul].pop_front();
    if (decide && static_cast<int64_t>(signs_[ul].size()) == o_.window) {
      disorder_[ul] = sign_disorder(signs_[ul]);
      const bool calm = disorder_[ul] < o_.tau;
      frozen_[ul] = o_.reevaluate ? calm : (frozen_[ul] || calm);
    }
    if (frozen_[ul]) {
      at::NoGradGuard no_grad;
      at::Tensor& p = params[index[ul]];
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      p.mutable_grad().fill_(o_.freeze_all ? 0.0 : 0.5 * gs_local[ul]);
    }
  }
}

void Gaqat::evaluation(State& state) {
  double conflicting = 0, frozen = 0;
  for (size_t l = 0; l < steps_.size(); ++l) {
    double rate = 0;
    for (int c : conflicts_[l]) rate += c;
    rate = conflicts_[l].empty() ? 0.0 : rate / static_cast<double>(conflicts_[l].size());
    const std::string& n = steps_[l].first;
    state.metrics[n + ".conflict"] = rate;
    state.metrics[n + ".disorder"] = disorder_[l];
    state.metrics[n + ".frozen"] = frozen_[l] ? 1.0 : 0.0;
    conflicting += !conflicts_[l].empty() && conflicts_[l].back();
    frozen += frozen_[l];
  }
  state.metrics["gaqat.conflicting_share"] = conflicting / static_cast<double>(steps_.size());
  state.metrics["gaqat.frozen_share"] = frozen / static_cast<double>(steps_.size());
}

void Gaqat::save(TensorMap& out) const {
  const auto n = static_cast<int64_t>(steps_.size());
  at::Tensor f = at::zeros({n}, at::kLong), d = at::zeros({n}, at::kDouble);
  at::Tensor s = at::full({n, o_.window}, 2, at::kLong), c = at::zeros({n, o_.window}, at::kLong);
  for (int64_t l = 0; l < n; ++l) {
    const auto ul = static_cast<size_t>(l);
    f[l] = static_cast<int64_t>(frozen_[ul]);
    d[l] = disorder_[ul];
    for (size_t k = 0; k < signs_[ul].size(); ++k) {
      s[l][static_cast<int64_t>(k)] = signs_[ul][k];
      c[l][static_cast<int64_t>(k)] = conflicts_[ul][k];
    }
  }
  out["frozen"] = f;
  out["disorder"] = d;
  out["signs"] = s;
  out["conflicts"] = c;
}

}  // namespace oodt
