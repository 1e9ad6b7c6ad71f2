#include "algorithms/soups/merge.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/buckets.h"
#include "core/comm.h"
#include "core/data_source.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {

void check_mergeable(const std::vector<TensorMap>& states, const std::vector<std::string>& sources) {
  OODT_CHECK(!states.empty() && states.size() == sources.size(), "check_mergeable: one source per state");
  const TensorMap& first = states[0];
  for (size_t i = 1; i < states.size(); ++i) {
    std::vector<std::string> problems;
    for (const auto& [name, t] : first) {
      auto it = states[i].find(name);
      if (it == states[i].end()) problems.push_back(concat("'", name, "' is missing"));
      else if (it->second.sizes() != t.sizes())
        problems.push_back(concat("'", name, "' has shape ", it->second.sizes(), " against ", t.sizes()));
    }
    for (const auto& [name, t] : states[i])
      if (!first.count(name)) problems.push_back(concat("'", name, "' is not in ", sources[0]));
    if (!problems.empty()) {
      std::string msg;
      for (size_t k = 0; k < problems.size() && k < 5; ++k) msg += "\n  " + problems[k];
      if (problems.size() > 5) msg += concat("\n  ... and ", problems.size() - 5, " more");
      throw DataError(concat(sources[i], " cannot be merged with ", sources[0], " (different models):", msg));
    }
  }
}

TensorMap uniform_soup(const std::vector<TensorMap>& states) {
  OODT_CHECK(!states.empty(), "uniform_soup of nothing");
  TensorMap out;
  for (const auto& [name, t] : states[0]) {
    if (!at::isFloatingType(t.scalar_type())) {
      out[name] = t.clone();
      continue;
    }
    at::Tensor sum = t.to(at::kDouble);
    for (size_t i = 1; i < states.size(); ++i) sum = sum + states[i].at(name).to(at::kDouble);
    out[name] = (sum / static_cast<double>(states.size())).to(t.scalar_type());
  }
  return out;
}

TensorMap interpolate(const TensorMap& theta0, const TensorMap& theta1, double alpha) {
  TensorMap out;
  for (const auto& [name, t1] : theta1) {
    if (!at::isFloatingType(t1.scalar_type())) {
      out[name] = t1.clone();
      continue;
    }
    const at::Tensor t0 = theta0.at(name).to(at::kDouble);
    out[name] = (t0 * (1.0 - alpha) + t1.to(at::kDouble) * alpha).to(t1.scalar_type());
  }
  return out;
}

GreedySoup greedy_soup(size_t candidates, const std::function<double(const std::vector<size_t>&)>& score,
                       bool strict) {
  GreedySoup g;
  OODT_CHECK(candidates > 0, "greedy soup of no candidates");
  for (size_t i = 0; i < candidates; ++i) g.individual.push_back(score({i}));
  g.order.resize(candidates);
  std::iota(g.order.begin(), g.order.end(), 0);
  std::stable_sort(g.order.begin(), g.order.end(),
                   [&](size_t a, size_t b) { return g.individual[a] > g.individual[b]; });
  g.kept = {g.order[0]};
  g.score = g.individual[g.order[0]];
  g.trial.push_back(g.score);
  g.accepted.push_back(true);
  for (size_t k = 1; k < candidates; ++k) {
    std::vector<size_t> members = g.kept;
    members.push_back(g.order[k]);
    const double s = score(members);
    const bool take = strict ? s > g.score : s >= g.score;
    g.trial.push_back(s);
    g.accepted.push_back(take);
    if (take) {
      g.kept = members;
      g.score = s;
    }
  }
  return g;
}

TensorMap diagonal_fisher(Model& model, const Batch& batch) {
  const bool was_training = model.is_training();
  model.eval();
  TensorMap fisher;
  const auto params = model.named_parameters();
  for (const auto& kv : params) fisher[kv.key()] = at::zeros_like(kv.value());
  const int64_t n = batch.size();
  for (int64_t i = 0; i < n; ++i) {
    for (const auto& kv : params) kv.value().mutable_grad().reset();
    Batch one;
    one.labels = batch.labels.narrow(0, i, 1);
    classification_loss(model.forward(batch.inputs.narrow(0, i, 1)), one).backward();
    at::NoGradGuard no_grad;
    for (const auto& kv : params)
      if (kv.value().grad().defined()) fisher[kv.key()].addcmul_(kv.value().grad(), kv.value().grad(), 1.0 / static_cast<double>(n));
  }
  for (const auto& kv : params) kv.value().mutable_grad().reset();
  model.train(was_training);
  return fisher;
}

TensorMap fisher_interpolate(const TensorMap& theta0, const TensorMap& theta1, const TensorMap& fisher0,
                             const TensorMap& fisher1, double alpha, double eps) {
  TensorMap out = interpolate(theta0, theta1, alpha);
  for (auto& [name, t] : out) {
    auto f0 = fisher0.find(name), f1 = fisher1.find(name);
    if (f0 == fisher0.end() || f1 == fisher1.end()) continue;
    const at::Tensor w0 = (f0->second.to(at::kDouble) + eps) * (1.0 - alpha);
    const at::Tensor w1 = (f1->second.to(at::kDouble) + eps) * alpha;
    t = ((w0 * theta0.at(name).to(at::kDouble) + w1 * theta1.at(name).to(at::kDouble)) / (w0 + w1)).to(t.scalar_type());
  }
  return out;
}

bool recalibrate_batch_norm(Model& model, DataSource& data, Communicator& comm, int64_t batches, int64_t bucket_bytes) {
  std::vector<BatchNormImpl*> layers;
  for_each_layer<BatchNormImpl>(model, [&](BatchNormImpl& bn) { layers.push_back(&bn); });
  if (layers.empty()) return false;
  at::NoGradGuard no_grad;
  for (auto* bn : layers) {
    bn->running_mean.zero_();
    bn->running_var.fill_(1);
    // Whole-batch statistics whatever the layer's training rule (ghost batches, say), averaged
    // exactly over the batches below.
    bn->set_calibrating(true);
  }
  const bool was_training = model.is_training();
  model.train();
  for (int64_t k = 0; k < batches; ++k) model.forward(data.train_batch(k).inputs.to(layers.front()->running_mean.device()));
  for (auto* bn : layers) bn->set_calibrating(false);
  model.train(was_training);
  std::vector<at::Tensor> stats;
  for (auto* bn : layers) stats.push_back(bn->running_mean), stats.push_back(bn->running_var);
  all_reduce_tensors(stats, comm, bucket_bytes, /*mean=*/true);
  return true;
}

std::vector<double> parse_alphas(const std::string& spec) {
  std::vector<double> out;
  auto number = [&](const std::string& s) {
    try {
      size_t used = 0;
      const double v = std::stod(s, &used);
      if (used != s.size()) throw std::invalid_argument(s);
      return v;
    } catch (const std::exception&) {
      throw ConfigError("--alphas", concat("'", spec, "': expected a:b:step or a comma-separated list of numbers"));
    }
  };
  if (spec.find(':') != std::string::npos) {
    std::vector<std::string> parts;
    std::stringstream ss(spec);
    for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
    if (parts.size() != 3) throw ConfigError("--alphas", concat("'", spec, "': expected a:b:step"));
    const double a = number(parts[0]), b = number(parts[1]), step = number(parts[2]);
    if (!(step > 0) || !(b >= a) || !std::isfinite(b - a))
      throw ConfigError("--alphas", concat("'", spec, "': needs finite a <= b and step > 0"));
    const double count = std::floor((b - a) / step + 1e-9) + 1;
    if (count > static_cast<double>(kMaxAlphas))
      throw ConfigError("--alphas", concat("'", spec, "' gives ", count, " values; at most ", kMaxAlphas, " (each is an evaluation)"));
    const auto n = static_cast<int64_t>(count) - 1;
    for (int64_t i = 0; i <= n; ++i) out.push_back(a + static_cast<double>(i) * step);
  } else {
    std::stringstream ss(spec);
    for (std::string p; std::getline(ss, p, ',');) out.push_back(number(p));
  }
  if (out.empty()) throw ConfigError("--alphas", "no values");
  if (out.size() > static_cast<size_t>(kMaxAlphas))
    throw ConfigError("--alphas", concat(out.size(), " values; at most ", kMaxAlphas, " (each is an evaluation)"));
  for (double v : out)
    if (!std::isfinite(v)) throw ConfigError("--alphas", concat("'", spec, "': every alpha must be a finite number"));
  return out;
}

}  // namespace oodt
