#include "algorithms/soups/sparse.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/buckets.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/optim.h"
#include "core/report.h"

namespace oodt {
namespace fs = std::filesystem;

std::vector<std::pair<std::string, at::Tensor>> prunable_weights(torch::nn::Module& module) {
  return weight_layers(module);
}

double phase_prune_amount(double sparsity, int64_t phases) {
  OODT_CHECK(sparsity >= 0 && sparsity < 1 && phases >= 1, "phase_prune_amount(", sparsity, ", ", phases, ")");
  return 1.0 - std::pow(1.0 - sparsity, 1.0 / static_cast<double>(phases));
}

int64_t global_magnitude_prune(const std::vector<at::Tensor>& weights, const std::vector<at::Tensor>& masks,
                               double amount) {
  OODT_CHECK(weights.size() == masks.size() && !weights.empty(), "global_magnitude_prune: one mask per weight");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> w_flat, m_flat;
  for (size_t i = 0; i < weights.size(); ++i) {
    w_flat.push_back(weights[i].detach().reshape({-1}).to(at::kCPU));
    m_flat.push_back(masks[i].reshape({-1}).to(at::kCPU));
  }
  const at::Tensor keep = at::cat(m_flat).ne(0);
  const at::Tensor remaining = at::cat(w_flat).abs().masked_select(keep);
  // Python's round(): half to even, which nearbyint does in the default rounding mode.
  const auto k = static_cast<int64_t>(std::nearbyint(amount * static_cast<double>(remaining.numel())));
  if (k <= 0) return 0;
  const at::Tensor chosen = std::get<1>(remaining.topk(k, /*dim=*/0, /*largest=*/false));
  const at::Tensor positions = keep.nonzero().reshape({-1}).index_select(0, chosen);
  at::Tensor flat = at::cat(m_flat).to(at::kFloat);
  flat.index_fill_(0, positions, 0.0);
  int64_t offset = 0;
  for (const at::Tensor& m : masks) {
    const int64_t n = m.numel();
    m.copy_(flat.narrow(0, offset, n).view(m.sizes()));
    offset += n;
  }
  return k;
}

double phase_learning_rate(double max_lr, int64_t i, int64_t phase_steps, double warmup) {
  const auto warm = static_cast<int64_t>(std::llround(warmup * static_cast<double>(phase_steps)));
  if (i < warm) return max_lr * static_cast<double>(i + 1) / static_cast<double>(warm);
  return max_lr * static_cast<double>(phase_steps - i) / static_cast<double>(phase_steps - warm);
}

SparseSoupOptions SparseSoupOptions::from_config(ConfigReader& cfg) {
  SparseSoupOptions o;
  o.sparsity = cfg.get("sparsity", o.sparsity);
  cfg.check(o.sparsity > 0 && o.sparsity < 1, "sparsity", "must be in (0, 1)");
  o.phases = cfg.get<int64_t>("phases", o.phases);
  cfg.check(o.phases >= 1, "phases", "must be >= 1");
  o.warmup = cfg.get("warmup", o.warmup);
  cfg.check(o.warmup >= 0 && o.warmup < 1, "warmup", "must be in [0, 1) (a fraction of each phase)");
  o.group_size = cfg.get<int64_t>("group_size", o.group_size);
  cfg.check(o.group_size >= 1, "group_size", "must be >= 1 (ranks per candidate)");
  o.merge = read_merge(cfg, false);
  return o;
}

SparseSoup::SparseSoup(Options o)
    : o_(std::move(o)), groups_(std::make_shared<CandidateGroups>(o_.group_size, std::string("algorithms.") + kName)) {}

void SparseSoup::apply_mask() const {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < weights_.size(); ++i) weights_[i].second.mul_(masks_[i]);
}

void SparseSoup::fit_start(State& state) {
  if (state.max_steps % o_.phases != 0)
    throw ConfigError("train.steps", concat(state.max_steps, " steps do not split into ", key(), ".phases = ", o_.phases,
                                            " equal retraining phases"));
  phase_steps_ = state.max_steps / o_.phases;
  weights_ = prunable_weights(*state.model);
  if (weights_.empty()) throw ConfigError(key(), "the model has no conv or linear weights to prune");
  masks_.clear();
  for (const auto& [n, w] : weights_) {
    auto it = loaded_.find("mask." + n);
    if (it == loaded_.end()) {
      masks_.push_back(at::ones_like(w));
    } else {
      if (it->second.sizes() != w.sizes())
        throw DataError(concat("checkpoint: the sparse_soup mask of '", n, "' has shape ", it->second.sizes(),
                               ", the weight ", w.sizes()));
      masks_.push_back(it->second.to(w.options()));
    }
  }
  loaded_.clear();
  apply_mask();
}

void SparseSoup::hooks(HookTable& table) {
  table.on(Phase::FitStart, [this](State& s) { fit_start(s); });
  // A checkpoint at a phase boundary is written before the next phase starts, so a resumed run
  // starts it here exactly as an uninterrupted one does.
  table.on(Phase::BeforeForward, [this](State& s) {
    if (s.step % phase_steps_ == 0) start_phase(s, s.step / phase_steps_);
  });
  table.on(Phase::AfterBackward, [this](State&) {
    for (size_t i = 0; i < weights_.size(); ++i) {
      at::Tensor g = weights_[i].second.mutable_grad();
      if (g.defined()) g.mul_(masks_[i]);
    }
  });
  table.on(Phase::BeforeOptimizerStep, [this](State& s) {
    s.lr = phase_learning_rate(s.optimizer->options().lr, s.step % phase_steps_, phase_steps_, o_.warmup);
  });
  table.on(Phase::AfterOptimizerStep, [this](State& s) {
    apply_mask();  // weight decay and momentum must not revive a pruned weight
    if (s.step + 1 == s.max_steps) merge(s, o_.phases);
  });
  table.on(Phase::Evaluation, [this](State& s) {
    int64_t zeros = 0, total = 0;
    for (const auto& m : masks_) zeros += m.eq(0).sum().item<int64_t>(), total += m.numel();
    s.metrics["sparsity"] = static_cast<double>(zeros) / static_cast<double>(total);
    s.metrics["phase"] = static_cast<double>(std::min(s.step / phase_steps_, o_.phases));
  });
}

void SparseSoup::merge(State& state, int64_t phase) {
  const CandidateMergeReport r = merge_candidates(state, *groups_, o_.merge);
  apply_mask();  // a soup of models sharing a mask keeps its zeros; re-applying makes it exact
  report(state, phase, -1, &r);
}

void SparseSoup::start_phase(State& state, int64_t phase) {
  if (phase > 0) merge(state, phase);
  else groups_->set_merged(state);  // every rank holds the dense start
  std::vector<at::Tensor> weights;
  for (const auto& kv : weights_) weights.push_back(kv.second);
  int64_t pruned = 0;
  if (state.comm->rank() == 0) pruned = global_magnitude_prune(weights, masks_, phase_prune_amount(o_.sparsity, o_.phases));
  broadcast_tensors(masks_, *state.comm, 0, state.dist.bucket_bytes());
  apply_mask();
  state.optimizer->reset_state();
  groups_->set_split(state);
  report(state, phase + 1, pruned, nullptr);
}

void SparseSoup::report(State& state, int64_t phase, int64_t pruned, const CandidateMergeReport* merge) const {
  if (state.comm->rank() != 0) return;
  int64_t zeros = 0, total = 0;
  nlohmann::json layers = nlohmann::json::object();
  std::printf("\n");
  if (merge) {
    std::printf("sparse_soup: phase %lld/%lld done, soup of %zu of %lld candidates", static_cast<long long>(phase),
                static_cast<long long>(o_.phases), merge->kept.size(), static_cast<long long>(groups_->candidates()));
    if (!merge->individual.empty()) {
      std::printf(" (validation acc:");
      for (double v : merge->individual) std::printf(" %.4f", v);
      std::printf("; soup %.4f)", merge->greedy.score);
    }
    std::printf("\n");
  } else {
    std::printf("sparse_soup: phase %lld/%lld starts at step %lld, %lld weights pruned\n", static_cast<long long>(phase),
                static_cast<long long>(o_.phases), static_cast<long long>(state.step), static_cast<long long>(pruned));
  }
  std::printf("  %-32s %10s %10s %9s\n", "layer", "weights", "zeros", "sparsity");
  for (size_t i = 0; i < weights_.size(); ++i) {
    // Zeros of the weights themselves (not of the mask): the check that the mask held.
    const int64_t z = weights_[i].second.eq(0).sum().item<int64_t>(), n = weights_[i].second.numel();
    zeros += z, total += n;
    std::printf("  %-32s %10lld %10lld %9.4f\n", weights_[i].first.c_str(), static_cast<long long>(n),
                static_cast<long long>(z), static_cast<double>(z) / static_cast<double>(n));
    layers[weights_[i].first] = static_cast<double>(z) / static_cast<double>(n);
  }
  const double global = static_cast<double>(zeros) / static_cast<double>(total);
  std::printf("  %-32s %10lld %10lld %9.4f\n", "all", static_cast<long long>(total), static_cast<long long>(zeros), global);
  std::fflush(stdout);
  nlohmann::json event = {{"event", merge ? "merged" : "pruned"}, {"phase", phase},   {"step", state.step},
                          {"zeros", zeros},                      {"weights", total}, {"sparsity", global}};
  if (merge) {
    event["kept"] = merge->kept;
    event["val_acc"] = merge->individual;
  } else {
    event["pruned"] = pruned;
  }
  event["layers"] = std::move(layers);
  state.reporter->append_json_line("sparse_soup.jsonl", event);
}

void SparseSoup::save(TensorMap& out) const {
  for (size_t i = 0; i < weights_.size(); ++i) out["mask." + weights_[i].first] = masks_[i].to(at::kByte);
}

void SparseSoup::load(const TensorMap& in) { loaded_ = in; }

}  // namespace oodt
