#include "algorithms/fedspeed/fedspeed.h"

#include <algorithm>
#include <cmath>

#include "core/buckets.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/data_source.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/optim.h"
#include "core/precision.h"
#include "core/random.h"
#include "core/seed.h"

namespace oodt {

void FederatedRounds::fit_start(State& state, const std::string& key) {
  key_ = key;
  Communicator& comm = *state.comm;
  const int world = comm.world_size();
  if (o_.clients < world)
    throw ConfigError(key + ".clients", concat("is ", o_.clients, "; every one of the ", world, " ranks needs a client"));
  auto* pool = state.data->as<PooledSource>();
  if (pool == nullptr)
    throw ConfigError(key, "the data source has no training pool to deal to clients (data.type: domains has)");
  const auto split = split_clients(pool->train_pool(), o_.clients, o_.split, o_.dirichlet_alpha, state.seed, key);
  hosted_ = hosted_clients(o_.clients, comm.rank(), world);
  rows_.clear();
  for (int64_t c : hosted_) rows_.push_back(split[static_cast<size_t>(c)]);
  active_per_rank_ = std::max<int64_t>(1, std::llround(o_.participation * static_cast<double>(o_.clients) / world));
  if (active_per_rank_ > o_.clients / world)
    throw ConfigError(key + ".participation",
                      concat("gives ", active_per_rank_, " active clients per rank per round, but with ", o_.clients,
                             " clients on ", world, " ranks some rank hosts only ", o_.clients / world,
                             " (ranks train in lockstep: use a number of clients divisible by the ranks, or lower participation)"));
  const int64_t R = round_steps();
  if (state.max_steps % R != 0)
    throw ConfigError("train.steps", concat("is ", state.max_steps, "; with ", key, " a round is ", R, " steps (",
                                            active_per_rank_, " clients per rank x local_steps ", o_.local_steps,
                                            "), so use a multiple of ", R, ", e.g. ", (state.max_steps / R + 1) * R));
  if (state.eval_every % R != 0)
    throw ConfigError("train.eval_every", concat("is ", state.eval_every, "; evaluate at round boundaries (a multiple of ",
                                                 R, " steps) where every rank holds the global model"));
  params_.clear();
  buffers_.clear();
  for (auto& p : state.model->parameters())
    if (p.requires_grad()) params_.push_back(p);
  for (auto& b : state.model->buffers())
    if (at::isFloatingType(b.scalar_type())) buffers_.push_back(b);
  cursor_.assign(hosted_.size(), 0);
  h_.assign(hosted_.size(), {});
  active_round_ = -1;
}

std::vector<int64_t> FederatedRounds::select(State& state, int64_t round) const {
  std::vector<int64_t> order(hosted_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  if (active_per_rank_ < static_cast<int64_t>(order.size())) {
    SeededRng(mix_seed(state.seed, 0x5e1c, static_cast<uint64_t>(round), static_cast<uint64_t>(state.comm->rank())))
        .shuffle(order);
    order.resize(static_cast<size_t>(active_per_rank_));
    std::sort(order.begin(), order.end());
  }
  return order;
}

void FederatedRounds::begin_round() {
  at::NoGradGuard no_grad;
  w0_.clear();
  sum_.clear();
  for (const auto* list : {&params_, &buffers_})
    for (const auto& t : *list) {
      w0_.push_back(t.detach().clone());
      sum_.push_back(at::zeros_like(t));
    }
  sum_sq_ = 0;
}

Batch FederatedRounds::train_batch(State& state) {
  const int64_t R = round_steps(), K = o_.local_steps;
  const int64_t round = state.step / R, slot = (state.step % R) / K, k = state.step % K;
  if (active_round_ != round) {
    active_ = select(state, round);
    active_round_ = round;
  }
  if (k == 0) {  // a client starts its local steps from w0 with a fresh optimizer
    if (slot == 0) {
      begin_round();
    } else {
      at::NoGradGuard no_grad;
      size_t j = 0;
      for (const auto* list : {&params_, &buffers_})
        for (const auto& t : *list) const_cast<at::Tensor&>(t).copy_(w0_[j++]);
    }
    state.optimizer->reset_state();
  }
  current_ = static_cast<size_t>(active_[static_cast<size_t>(slot)]);  // also right after a resume
  // The client's next batch: its share of the pool, reshuffled every pass over it.
  const auto& rows = rows_[current_];
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<int64_t> positions;
  std::vector<int64_t> perm;
  int64_t perm_epoch = -1;
  for (int64_t j = 0; j < state.batch_size; ++j) {
    const int64_t c = cursor_[current_] + j, epoch = c / n;
    if (epoch != perm_epoch) {
      perm = rows;
      SeededRng(mix_seed(state.seed, 0xc1e7, static_cast<uint64_t>(hosted_[current_]), static_cast<uint64_t>(epoch)))
          .shuffle(perm);
      perm_epoch = epoch;
    }
    positions.push_back(perm[static_cast<size_t>(c % n)]);
  }
  cursor_[current_] += state.batch_size;
  return state.data->as<PooledSource>()->read_pool(positions);
}

void FederatedRounds::perturb(State& state) {
  std::vector<at::Tensor> saved(params_.size());  // w is restored exactly, not as (w + e) - e
  {
    at::NoGradGuard no_grad;
    double sq = 0;
    for (const auto& p : params_)
      if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
    // A non-finite g1 (fp16's loss scale overflowed, or a NaN) is left for the step agreement to
    // drop; a pass at w + NaN would only write NaN into the BatchNorm statistics.
    if (!std::isfinite(sq)) return;
    // rho g1 / |g1| does not depend on fp16's loss scale, which g1 carries.
    const double scale = o_.rho / (std::sqrt(sq) + 1e-7);
    for (size_t j = 0; j < params_.size(); ++j) {
      at::Tensor& p = params_[j];
      if (!p.grad().defined()) continue;
      saved[j] = p.detach().clone();
      p.add_(p.grad() * scale);
      p.mutable_grad().reset();
    }
  }
  // g2: the gradient at w + e, of the step's batch (soft targets included), under the run's
  // autocast and loss scale.
  extra_backward(state);
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < params_.size(); ++j)
    if (saved[j].defined()) params_[j].copy_(saved[j]);
}

void FederatedRounds::correct_gradients(State& state) {
  at::NoGradGuard no_grad;
  const int64_t round = state.step / round_steps();
  state.lr = state.optimizer->options().lr * std::pow(o_.lr_decay, static_cast<double>(round));
  std::vector<at::Tensor> grads;
  for (size_t j = 0; j < params_.size(); ++j) {
    at::Tensor& p = params_[j];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    at::Tensor g = p.mutable_grad();
    if (o_.lamb > 0) {  // prox-correction c (h_i - w0)
      const auto& h = h_[current_];
      if (h.empty()) g.sub_(w0_[j], o_.lamb);
      else g.add_(h[j] - w0_[j], o_.lamb);
    }
    grads.push_back(g);
  }
  if (o_.max_norm > 0) {  // as torch.nn.utils.clip_grad_norm_
    double sq = 0;
    for (const auto& g : grads) sq += g.pow(2).sum().item<double>();
    const double coef = o_.max_norm / (std::sqrt(sq) + 1e-6);
    if (coef < 1)
      for (auto& g : grads) g.mul_(coef);
  }
  if (o_.lamb > 0)  // the extra weight decay c w (the optimizer adds wd w)
    for (size_t j = 0; j < params_.size(); ++j) grads[j].add_(params_[j], o_.lamb);
}

void FederatedRounds::after_step(State& state) {
  const int64_t K = o_.local_steps;
  if (state.step % K != K - 1) return;
  end_slot();
  if ((state.step % round_steps()) / K == active_per_rank_ - 1) end_round(state);
}

void FederatedRounds::report(State& state) const {
  state.metrics["round"] = static_cast<double>(rounds_done_);
  state.metrics["drift"] = drift_;
  state.metrics["bytes_per_rank"] = bytes_;
  state.metrics["active_clients"] = static_cast<double>(active_per_rank_ * state.comm->world_size());
}

void FederatedRounds::end_slot() {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < params_.size(); ++j) {
    sum_[j].add_(params_[j]);
    sum_sq_ += params_[j].to(at::kDouble).pow(2).sum().item<double>();
  }
  for (size_t b = 0; b < buffers_.size(); ++b) sum_[params_.size() + b].add_(buffers_[b]);
  if (o_.lamb > 0) {  // h_i <- h_i + (w_K - w0)
    auto& h = h_[current_];
    if (h.empty())
      for (const auto& p : params_) h.push_back(at::zeros_like(p));
    for (size_t j = 0; j < params_.size(); ++j) h[j].add_(params_[j] - w0_[j]);
  }
}

void FederatedRounds::end_round(State& state) {
  at::NoGradGuard no_grad;
  Communicator& comm = *state.comm;
  // One all-reduce: sum of w_K (parameters and buffers), sum of h over all clients, drift.
  std::vector<at::Tensor> payload = sum_;
  std::vector<at::Tensor> hsum;
  if (o_.lamb > 0) {
    for (size_t j = 0; j < params_.size(); ++j) {
      at::Tensor s = at::zeros_like(params_[j]);
      for (const auto& h : h_)
        if (!h.empty()) s.add_(h[j]);
      hsum.push_back(s);
      payload.push_back(s);
    }
  }
  at::Tensor sq = at::full({1}, sum_sq_, at::kDouble);
  payload.push_back(sq);
  int64_t bytes = 0;
  for (const auto& t : payload) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  all_reduce_tensors(payload, comm, state.dist.bucket_bytes());
  const double n_active = static_cast<double>(active_per_rank_ * comm.world_size());
  double mean_sq = 0;
  for (size_t j = 0; j < params_.size(); ++j) {
    const at::Tensor mean = sum_[j] / n_active;
    mean_sq += mean.to(at::kDouble).pow(2).sum().item<double>();
    at::Tensor next = mean;
    if (o_.lamb > 0) next = next + hsum[j] / static_cast<double>(o_.clients);
    params_[j].copy_(next);
  }
  for (size_t b = 0; b < buffers_.size(); ++b) buffers_[b].copy_(sum_[params_.size() + b] / n_active);
  drift_ = sq.item<double>() / n_active - mean_sq;
  bytes_ += static_cast<double>(bytes);
  ++rounds_done_;
}

TensorMap FederatedRounds::rank_state(State& state) const {
  TensorMap m;
  for (const auto& [k, v] : module_state(*state.model)) m["model." + k] = v.detach().clone();
  for (const auto& [k, v] : state.optimizer->state_dict()) m["optimizer." + k] = v.clone();
  m["cursor"] = at::tensor(cursor_, at::kLong);
  for (size_t i = 0; i < h_.size(); ++i)
    for (size_t j = 0; j < h_[i].size(); ++j) m[concat("h.", hosted_[i], ".", j)] = h_[i][j].clone();
  for (size_t j = 0; j < w0_.size(); ++j) {
    m[concat("w0.", j)] = w0_[j].clone();
    m[concat("sum.", j)] = sum_[j].clone();
  }
  m["scalars"] = at::tensor({sum_sq_, drift_, bytes_, static_cast<double>(rounds_done_)}, at::kDouble);
  return m;
}

void FederatedRounds::restore_rank_state(State& state, const TensorMap& m) {
  load_module_state(*state.model, with_prefix(m, "model."), "this rank's FedSpeed state");
  state.optimizer->load_state_dict(with_prefix(m, "optimizer."));
  const at::Tensor cursor = m.at("cursor");
  OODT_CHECK(cursor.numel() == static_cast<int64_t>(cursor_.size()), "FedSpeed checkpoint: ", cursor.numel(),
             " client cursors for ", cursor_.size(), " clients on this rank");
  for (size_t i = 0; i < cursor_.size(); ++i) cursor_[i] = cursor[static_cast<int64_t>(i)].item<int64_t>();
  // Checkpoints hold CPU tensors; the state lives where the model does.
  const at::TensorOptions where = params_.front().options();
  for (size_t i = 0; i < hosted_.size(); ++i) {
    h_[i].clear();
    for (size_t j = 0; m.count(concat("h.", hosted_[i], ".", j)); ++j)
      h_[i].push_back(m.at(concat("h.", hosted_[i], ".", j)).to(where, /*non_blocking=*/false, /*copy=*/true));
  }
  w0_.clear();
  sum_.clear();
  for (size_t j = 0; m.count(concat("w0.", j)); ++j) {
    w0_.push_back(m.at(concat("w0.", j)).to(where.device(), /*non_blocking=*/false, /*copy=*/true));
    sum_.push_back(m.at(concat("sum.", j)).to(where.device(), /*non_blocking=*/false, /*copy=*/true));
  }
  const at::Tensor s = m.at("scalars");
  sum_sq_ = s[0].item<double>(), drift_ = s[1].item<double>(), bytes_ = s[2].item<double>();
  rounds_done_ = static_cast<int64_t>(s[3].item<double>());
}

void FederatedRounds::setup(State& state) {
  Communicator& comm = *state.comm;
  if (!pending_.count("layout")) {
    broadcast_module(*state.model, comm, 0, state.dist.bucket_bytes());  // every client starts from rank 0's weights
    return;
  }
  const at::Tensor layout = pending_.at("layout");
  if (layout[0].item<int64_t>() != comm.world_size())
    throw ConfigError(key_, concat("the checkpoint was written by ", layout[0].item<int64_t>(),
                                   " ranks, each holding its clients' state; resume with as many"));
  restore_rank_state(state, with_prefix(pending_, concat("rank", comm.rank(), ".")));
  pending_.clear();
}

void FederatedRounds::prepare_save(State& state) { gathered_ = gather_maps_to_root(*state.comm, rank_state(state)); }

void FederatedRounds::save(TensorMap& out) const {
  out["layout"] = at::tensor({static_cast<int64_t>(gathered_.size())}, at::kLong);  // rank 0 only
  for (size_t r = 0; r < gathered_.size(); ++r)
    for (const auto& [k, v] : gathered_[r]) out[concat("rank", r, ".", k)] = v;
  gathered_.clear();  // written; do not keep every rank's state until the next checkpoint
}

FedSpeedOptions FedSpeedOptions::federated_from_config(ConfigReader& cfg) {
  FedSpeedOptions o;
  o.clients = cfg.get<int64_t>("clients", o.clients);
  cfg.check(o.clients >= 1, "clients", "must be >= 1");
  o.participation = cfg.get("participation", o.participation);
  cfg.check(o.participation > 0 && o.participation <= 1, "participation", "must be in (0, 1]");
  o.local_steps = cfg.get<int64_t>("local_steps", o.local_steps);
  cfg.check(o.local_steps >= 1, "local_steps", "must be >= 1");
  o.max_norm = cfg.get("max_norm", o.max_norm);
  cfg.check(o.max_norm >= 0, "max_norm", "must be >= 0 (0: no clipping)");
  o.lr_decay = cfg.get("lr_decay", o.lr_decay);
  cfg.check(o.lr_decay > 0 && o.lr_decay <= 1, "lr_decay", "must be in (0, 1]");
  o.split = cfg.one_of<ClientSplit>("split", o.split,
                                    {{"dirichlet", ClientSplit::Dirichlet}, {"domain", ClientSplit::Domain}, {"iid", ClientSplit::Iid}});
  o.dirichlet_alpha = cfg.get("dirichlet_alpha", o.dirichlet_alpha);
  cfg.check(o.dirichlet_alpha > 0, "dirichlet_alpha", "must be > 0");
  return o;
}

FedSpeedOptions FedSpeedOptions::from_config(ConfigReader& cfg) {
  FedSpeedOptions o = federated_from_config(cfg);
  o.rho = cfg.get("rho", o.rho);
  cfg.check(o.rho >= 0, "rho", "must be >= 0");
  o.lamb = cfg.get("lamb", o.lamb);
  cfg.check(o.lamb >= 0, "lamb", "must be >= 0 (the prox-correction coefficient c)");
  return o;
}

FedAvg::Options FedAvg::Options::from_config(ConfigReader& cfg) {
  Options o;
  static_cast<FedSpeedOptions&>(o) = federated_from_config(cfg);
  o.rho = 0;   // no perturbation
  o.lamb = 0;  // no correction and no dual variable
  return o;
}

FedSpeed::FedSpeed(Options o) : o_(o), rounds_(std::make_shared<FederatedRounds>(o)) {}

std::vector<Claim> FedSpeed::claims() const {
  if (o_.rho > 0) return {Claim::LearningRate, Claim::SecondPass};
  return {Claim::LearningRate};
}

void FedSpeed::hooks(HookTable& table) {
  table.on(Phase::FitStart, [this](State& s) { rounds_->fit_start(s, key()); });
  if (o_.rho > 0) table.on(Phase::AfterBackward, [this](State& s) { rounds_->perturb(s); });
  table.on(Phase::BeforeOptimizerStep, [this](State& s) { rounds_->correct_gradients(s); });
  table.on(Phase::AfterOptimizerStep, [this](State& s) { rounds_->after_step(s); });
  table.on(Phase::Evaluation, [this](State& s) { rounds_->report(s); });
}

}  // namespace oodt
