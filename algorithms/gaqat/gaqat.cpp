#include "algorithms/gaqat/gaqat.h"

#include <cmath>

#include "core/averaging.h"
#include "core/comm.h"
#include "core/data_source.h"
#include "core/error.h"
#include "core/models/model.h"

namespace oodt {
namespace {

// Runs `fn` with every BatchNorm's momentum at 0, so running statistics stay as they are.
template <typename Fn>
void with_frozen_batch_norm(Model& model, Fn&& fn) {
  std::vector<std::pair<BatchNormImpl*, double>> saved;
  for_each_layer<BatchNormImpl>(model, [&](BatchNormImpl& bn) {
    saved.emplace_back(&bn, bn.momentum);
    bn.momentum = 0.0;
  });
  fn();
  for (auto& [bn, m] : saved) bn->momentum = m;
}

std::vector<at::Tensor> trainable(Model& model) {
  std::vector<at::Tensor> out;
  for (auto& p : model.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

int sign_of(double v) { return (v > 0) - (v < 0); }

}  // namespace

void Lsq::prepare_model(Model& model) {
  std::vector<std::pair<torch::nn::Module*, LayerQuant*>> layers;
  for_each_quant_layer(model, [&](const std::string&, torch::nn::Module& m, LayerQuant& q) { layers.emplace_back(&m, &q); });
  if (layers.empty()) throw ConfigError("algorithms." + name(), concat("the model (", model.kind(), ") has no conv or linear layers"));
  for (size_t i = 0; i < layers.size(); ++i) {
    const bool edge = i == 0 || i + 1 == layers.size();
    const bool wide = edge && o_.first_last_bits > 0;
    layers[i].second->enable(*layers[i].first, wide ? o_.first_last_bits : o_.weight_bits,
                             wide ? o_.first_last_bits : o_.input_bits);
  }
}

void Lsq::run(Phase phase, State& state) {
  if (phase != Phase::FitStart) return;
  Model& model = *state.model;
  bool fresh = false;
  for_each_quant_layer(model, [&](const std::string&, torch::nn::Module&, LayerQuant& q) {
    for (Quantizer* z : {&q.weight, &q.input}) {
      z->initialised = z->step.item<double>() != 0.0;  // a resumed or --init-from quantized model
      fresh = fresh || !z->initialised;
    }
  });
  if (!fresh) return;
  // LSQ initialisation from one training batch, BatchNorm statistics untouched. Ranks see
  // different batches; the averaging set-up then gives every rank rank 0's steps.
  at::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.train();
  const Batch batch = state.data->train_batch(state.step).to(state.device);
  with_frozen_batch_norm(model, [&] { model.forward(batch.inputs); });
  model.train(was_training);
}

SagmGradients sagm_second_pass(State& state, const std::vector<at::Tensor>& params, double rho, double alpha) {
  SagmGradients r;
  // The weights are restored from a copy, not by subtracting e: (w + e) - e can differ from w in
  // the last bit, differently on every rank, and ranks must hold identical weights.
  std::vector<at::Tensor> e(params.size()), saved(params.size());
  {
    at::NoGradGuard no_grad;
    double sq = 0;
    for (const auto& p : params) {
      r.g1.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
      if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
    }
    const double coef = rho / (std::sqrt(sq) + 1e-12) - alpha;
    for (size_t j = 0; j < params.size(); ++j) {
      if (!r.g1[j].defined()) continue;
      e[j] = r.g1[j] * coef;
      saved[j] = params[j].detach().clone();
      const_cast<at::Tensor&>(params[j]).add_(e[j]);
      const_cast<at::Tensor&>(params[j]).mutable_grad().reset();
    }
  }
  with_frozen_batch_norm(*state.model, [&] {
    classification_loss(state.model->forward(state.batch.inputs), state.batch).backward();
  });
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < params.size(); ++j) {
    at::Tensor& p = const_cast<at::Tensor&>(params[j]);
    if (saved[j].defined()) p.copy_(saved[j]);
    r.g2.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    if (r.g1[j].defined() && p.grad().defined()) p.mutable_grad().add_(r.g1[j]).mul_(0.5);
    else if (r.g1[j].defined()) p.mutable_grad() = r.g1[j] * 0.5;
    else if (p.grad().defined()) p.mutable_grad().mul_(0.5);
  }
  return r;
}

double sign_disorder(const std::deque<int>& signs) {
  if (signs.size() < 2) return 0.0;
  int64_t flips = 0;
  for (size_t i = 1; i < signs.size(); ++i) flips += signs[i] != signs[i - 1];
  return static_cast<double>(flips) / static_cast<double>(signs.size() - 1);
}

void Sagm::run(Phase phase, State& state) {
  if (phase == Phase::AfterBackward) sagm_second_pass(state, trainable(*state.model), o_.rho, o_.alpha);
}

void Gaqat::run(Phase phase, State& state) {
  switch (phase) {
    case Phase::FitStart: {
      steps_.clear();
      for (const auto& kv : state.model->named_parameters())
        if (kv.key().size() > 5 && kv.key().compare(kv.key().size() - 5, 5, "_step") == 0) steps_.emplace_back(kv.key(), kv.value());
      if (steps_.empty())
        throw ConfigError("algorithms." + name(), "the model has no quantizers: list the lsq plugin before gaqat");
      // Where each step sits among the trainable parameters (the order sagm_second_pass uses).
      step_index_.clear();
      const std::vector<at::Tensor> params = trainable(*state.model);
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
      break;
    }
    case Phase::AfterBackward: {
      std::vector<at::Tensor> params = trainable(*state.model);
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
        parts[L + l] = g2 - gt;
        gs_local[static_cast<size_t>(l)] = g2 - gt;
      }
      // Over the ranks that hold this model (a soup candidate's group, or all ranks).
      Communicator& replicas = state.averaging ? state.averaging->evaluation_comm(state) : *state.comm;
      replicas.all_reduce(parts, ReduceOp::Sum);
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
      break;
    }
    case Phase::Evaluation: {
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
      break;
    }
    default: break;
  }
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
