#include "algorithms/fedspeed/fedspeed.h"

#include <algorithm>
#include <cmath>

#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/optim.h"
#include "core/random.h"
#include "core/seed.h"

namespace oodt {

std::unique_ptr<AveragingStrategy> FedSpeed::make_averaging() { return std::make_unique<FedSpeedAveraging>(*this); }

void FedSpeed::fit_start(State& state) {
  const std::string key = "algorithms." + name();
  Communicator& comm = *state.comm;
  const int world = comm.world_size();
  if (o_.clients < world)
    throw ConfigError(key + ".clients", concat("is ", o_.clients, "; every one of the ", world, " ranks needs a client"));
  const auto split = split_clients(state.data->train_pool(), o_.clients, o_.split, o_.dirichlet_alpha, state.seed, key);
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

std::vector<int64_t> FedSpeed::select(State& state, int64_t round) const {
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

void FedSpeed::begin_round(State&, int64_t) {
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

Batch FedSpeed::train_batch(State& state) {
  const int64_t R = round_steps(), K = o_.local_steps;
  const int64_t round = state.step / R, slot = (state.step % R) / K, k = state.step % K;
  if (active_round_ != round) {
    active_ = select(state, round);
    active_round_ = round;
  }
  if (k == 0) {  // a client starts its local steps from w0 with a fresh optimizer
    if (slot == 0) {
      begin_round(state, round);
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
  return state.data->read_pool(positions);
}

void FedSpeed::perturb(State& state) {
  std::vector<at::Tensor> saved(params_.size());  // w is restored exactly, not as (w + e) - e
  {
    at::NoGradGuard no_grad;
    double sq = 0;
    for (const auto& p : params_)
      if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
    const double scale = o_.rho / (std::sqrt(sq) + 1e-7);
    for (size_t j = 0; j < params_.size(); ++j) {
      at::Tensor& p = params_[j];
      if (!p.grad().defined()) continue;
      saved[j] = p.detach().clone();
      p.add_(p.grad() * scale);
      p.mutable_grad().reset();
    }
  }
  // g2: the gradient at w + e, of the step's batch (soft targets included).
  classification_loss(state.model->forward(state.batch.inputs), state.batch).backward();
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < params_.size(); ++j)
    if (saved[j].defined()) params_[j].copy_(saved[j]);
}

void FedSpeed::run(Phase phase, State& state) {
  const int64_t K = o_.local_steps;
  switch (phase) {
    case Phase::FitStart:
      fit_start(state);
      break;
    case Phase::AfterBackward:
      if (o_.rho > 0) perturb(state);
      break;
    case Phase::BeforeOptimizerStep: {
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
      break;
    }
    case Phase::AfterOptimizerStep:
      if (state.step % K == K - 1) {
        end_slot(state);
        if ((state.step % round_steps()) / K == active_per_rank_ - 1) end_round(state);
      }
      break;
    case Phase::Evaluation:
      state.metrics["round"] = static_cast<double>(rounds_done_);
      state.metrics["drift"] = drift_;
      state.metrics["bytes_per_rank"] = bytes_;
      state.metrics["active_clients"] = static_cast<double>(active_per_rank_ * state.comm->world_size());
      break;
    default: break;
  }
}

void FedSpeed::end_slot(State&) {
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

void FedSpeed::end_round(State& state) {
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
  Bucketer bucketer(25 << 20);
  bucketer.apply(payload, [&](at::Tensor& buf) { comm.all_reduce(buf, ReduceOp::Sum); });
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

TensorMap FedSpeed::rank_state(State& state) const {
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

void FedSpeed::restore_rank_state(State& state, const TensorMap& m) {
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

void FedSpeedAveraging::setup(State& state) {
  Communicator& comm = *state.comm;
  if (!pending_.count("layout")) {
    broadcast_module(*state.model, comm, 25 << 20);  // every client starts from rank 0's weights
    return;
  }
  const at::Tensor layout = pending_.at("layout");
  if (layout[0].item<int64_t>() != comm.world_size())
    throw ConfigError("algorithms." + plugin_.name(), concat("the checkpoint was written by ", layout[0].item<int64_t>(),
                                                    " ranks, each holding its clients' state; resume with as many"));
  plugin_.restore_rank_state(state, with_prefix(pending_, concat("rank", comm.rank(), ".")));
  pending_.clear();
}

void FedSpeedAveraging::prepare_save(State& state) {
  gathered_ = gather_maps_to_root(*state.comm, plugin_.rank_state(state));
}

void FedSpeedAveraging::save(TensorMap& out) const {
  out["layout"] = at::tensor({static_cast<int64_t>(gathered_.size())}, at::kLong);  // rank 0 only
  for (size_t r = 0; r < gathered_.size(); ++r)
    for (const auto& [k, v] : gathered_[r]) out[concat("rank", r, ".", k)] = v;
  gathered_.clear();  // written; do not keep every rank's state until the next checkpoint
}

}  // namespace oodt
