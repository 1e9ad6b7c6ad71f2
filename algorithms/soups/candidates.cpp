#include "algorithms/soups/candidates.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/data_source.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/models/model.h"
#include "core/optim.h"
#include "core/seed.h"

namespace oodt {
namespace fs = std::filesystem;

namespace {

std::string candidate_prefix(int64_t g, const char* part) { return concat("candidate_", g, ".", part, "."); }

TensorMap cloned(const TensorMap& m) {
  TensorMap out;
  for (const auto& [k, v] : m) out[k] = v.detach().clone();
  return out;
}

// Broadcasts `m`'s tensors (in name order) from `root`; every rank passes a map of the same
// names, shapes and dtypes.
void broadcast_map(TensorMap& m, Communicator& comm, int root) {
  std::vector<at::Tensor> tensors;
  for (auto& kv : m) tensors.push_back(kv.second);
  broadcast_tensors(tensors, comm, root);
}

}  // namespace

CandidateGroups::CandidateGroups(int64_t group_size, int64_t bucket_bytes, std::string key)
    : group_size_(group_size), bucket_bytes_(bucket_bytes), key_(std::move(key)), bucketer_(bucket_bytes) {}

void CandidateGroups::setup(State& state) {
  Communicator& world = *state.comm;
  if (group_size_ < 1 || world.world_size() % group_size_ != 0)
    throw ConfigError(key_ + ".group_size", concat("is ", group_size_, "; it must divide the number of ranks (",
                                                  world.world_size(), ") into equal groups"));
  candidates_ = world.world_size() / group_size_;
  candidate_ = world.rank() / group_size_;
  group_ = world.split(static_cast<int>(candidate_), world.rank());
  if (pending_.count("layout")) {
    const at::Tensor layout = pending_.at("layout");
    if (layout[0].item<int64_t>() != candidates_ || layout[1].item<int64_t>() != group_size_)
      throw ConfigError(key_, concat("the checkpoint holds ", layout[0].item<int64_t>(), " candidates of ",
                                     layout[1].item<int64_t>(), " ranks; resume with ",
                                     layout[0].item<int64_t>() * layout[1].item<int64_t>(), " ranks and group_size ",
                                     layout[1].item<int64_t>()));
    merged_ = layout[2].item<int64_t>() != 0;
    if (!merged_ && candidate_ > 0) {
      load_module_state(*state.model, with_prefix(pending_, candidate_prefix(candidate_, "model")),
                        concat("candidate ", candidate_, " in the checkpoint"));
      state.optimizer->load_state_dict(with_prefix(pending_, candidate_prefix(candidate_, "optimizer")));
    }
    pending_.clear();
  } else {
    broadcast_module(*state.model, world, bucket_bytes_);  // one shared start
  }
  reshard(state);
}

void CandidateGroups::reshard(State& state) {
  // The training stream is the group's for the whole run (so epochs count the candidate's
  // passes); evaluation shares follow whoever holds the model being evaluated.
  if (!dealt_) {
    const uint64_t seed = mix_seed(state.seed, 0xca4d, static_cast<uint64_t>(candidate_));
    state.data->reshard(seed, group_->rank(), group_->world_size());
    dealt_ = true;
  }
  if (merged_) state.data->share_evaluation(state.comm->rank(), state.comm->world_size());
  else state.data->share_evaluation(group_->rank(), group_->world_size());
}

void CandidateGroups::average(State& state) { all_reduce_gradients(*state.model, active(state), bucketer_); }

void CandidateGroups::sync_buffers(State& state) {
  Communicator& comm = active(state);
  if (comm.world_size() == 1) return;
  std::vector<at::Tensor> buffers;
  for (auto& b : state.model->buffers()) buffers.push_back(b);
  broadcast_tensors(buffers, comm, 0, bucket_bytes_);
}

void CandidateGroups::prepare_save(State& state) {
  gathered_.clear();
  if (merged_ || candidates_ == 1) return;
  const TensorMap model = module_state(*state.model);
  const TensorMap optim = state.optimizer->state_dict();
  for (int64_t g = 1; g < candidates_; ++g) {
    const int root = static_cast<int>(g * group_size_);
    TensorMap m = cloned(model), o = cloned(optim);
    broadcast_map(m, *state.comm, root);
    broadcast_map(o, *state.comm, root);
    if (state.comm->rank() != 0) continue;
    for (auto& [k, v] : m) gathered_[candidate_prefix(g, "model") + k] = v;
    for (auto& [k, v] : o) gathered_[candidate_prefix(g, "optimizer") + k] = v;
  }
}

void CandidateGroups::save(TensorMap& out) const {
  out["layout"] = at::tensor({candidates_, group_size_, static_cast<int64_t>(merged_)}, at::kLong);
  for (const auto& [k, v] : gathered_) out[k] = v;
  gathered_.clear();  // written; do not keep the other candidates until the next checkpoint
}

void CandidateGroups::load(const TensorMap& in) { pending_ = in; }

std::vector<TensorMap> CandidateGroups::all_models(State& state) {
  const TensorMap own = module_state(*state.model);
  std::vector<TensorMap> out;
  for (int64_t g = 0; g < candidates_; ++g) {
    TensorMap m = cloned(own);
    broadcast_map(m, *state.comm, static_cast<int>(g * group_size_));
    out.push_back(std::move(m));
  }
  return out;
}

void CandidateGroups::set_merged(State& state) {
  merged_ = true;
  reshard(state);
}

void CandidateGroups::set_split(State& state) {
  merged_ = false;
  reshard(state);
}

int64_t recalibration_batches(const State& state, double fraction) {
  if (fraction <= 0) return 0;
  return std::max<int64_t>(1, std::llround(fraction * static_cast<double>(state.data->steps_per_epoch())));
}

CandidateMergeReport merge_candidates(State& state, CandidateGroups& groups, const CandidateMerge& o) {
  CandidateMergeReport report;
  Model& model = *state.model;
  Communicator& world = *state.comm;
  groups.sync_buffers(state);  // each candidate's statistics from its group's first rank
  if (o.method == CandidateMerge::Method::None) return report;
  const int64_t batches = recalibration_batches(state, o.recalibrate_fraction);
  if (o.method == CandidateMerge::Method::Uniform || groups.candidates() == 1) {
    // Each candidate is held by group_size ranks, so the mean over ranks is the mean over
    // candidates. Integer buffers (BN's batch counters) are equal everywhere and stay.
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> floats;
    for (auto& [name, t] : model.named_state())
      if (at::isFloatingType(t.scalar_type())) floats.push_back(t);
    Bucketer bucketer(25 << 20);
    const double scale = 1.0 / world.world_size();
    bucketer.apply(floats, [&](at::Tensor& buf) {
      world.all_reduce(buf, ReduceOp::Sum);
      buf.mul_(scale);
    });
    groups.set_merged(state);
    if (batches > 0) recalibrate_batch_norm(model, *state.data, world, batches);
    for (int64_t g = 0; g < groups.candidates(); ++g) report.kept.push_back(static_cast<size_t>(g));
    return report;
  }
  // Greedy: every rank holds every candidate and scores each soup on all ranks' share of the
  // validation data; the scores are all-reduced, so every rank takes the same decisions.
  const std::vector<TensorMap> models = groups.all_models(state);
  groups.set_merged(state);
  auto cook = [&](const std::vector<size_t>& members) {
    std::vector<TensorMap> chosen;
    for (size_t m : members) chosen.push_back(models[m]);
    load_module_state(model, uniform_soup(chosen), "soup");
    if (batches > 0) recalibrate_batch_norm(model, *state.data, world, batches);
  };
  auto score = [&](const std::vector<size_t>& members) {
    cook(members);
    return summarize(evaluate(model, *state.data, world, state.eval_batch_size, state.device), state.data->domains())
        .val_acc;
  };
  report.greedy = greedy_soup(models.size(), score, o.strict);
  report.individual = report.greedy.individual;
  report.kept = report.greedy.kept;
  cook(report.kept);
  return report;
}

std::vector<std::pair<double, double>> export_candidates(State& state, CandidateGroups& groups,
                                                         const std::string& origin, int64_t step) {
  groups.sync_buffers(state);
  Communicator& group = groups.evaluation_comm(state);
  const EvalSummary s =
      summarize(evaluate(*state.model, *state.data, group, state.eval_batch_size, state.device), state.data->domains());
  if (group.rank() == 0) {
    Checkpoint ck = weights_checkpoint(state, origin);
    ck.step = step;
    write_checkpoint((fs::path(state.run_dir) / concat("candidate_", groups.candidate(), ".h5")).string(), ck);
  }
  const at::Tensor all = state.comm->all_gather(at::tensor({s.val_acc, s.heldout_acc}, at::kDouble));
  std::vector<std::pair<double, double>> out;
  for (int64_t g = 0; g < groups.candidates(); ++g) {
    const at::Tensor row = all[g * (state.comm->world_size() / groups.candidates())];
    out.emplace_back(row[0].item<double>(), row[1].item<double>());
  }
  return out;
}

std::unique_ptr<AveragingStrategy> SoupIngredients::make_averaging() {
  auto g = std::make_unique<CandidateGroups>(o_.group_size, bucket_bytes_, "algorithms." + name());
  groups_ = g.get();
  return g;
}

void SoupIngredients::run(Phase phase, State& state) {
  switch (phase) {
    case Phase::FitStart: {
      const int64_t world = state.comm->world_size();
      if (o_.group_size >= 1 && world % o_.group_size == 0 && !o_.lr_scale.empty() &&
          static_cast<int64_t>(o_.lr_scale.size()) != world / o_.group_size)
        throw ConfigError("algorithms." + name() + ".lr_scale",
                          concat("has ", o_.lr_scale.size(), " entries for ", world / o_.group_size,
                                 " candidates (", world, " ranks / group_size ", o_.group_size, ")"));
      break;
    }
    case Phase::BeforeOptimizerStep:
      if (!o_.lr_scale.empty() && !groups_->merged()) state.lr *= o_.lr_scale[static_cast<size_t>(groups_->candidate())];
      break;
    case Phase::AfterOptimizerStep:
      if (state.step + 1 == state.max_steps) finish(state);
      break;
    default: break;
  }
}

void SoupIngredients::finish(State& state) {
  // The candidates' shared origin: the --init-from checkpoint, or this run's random init.
  const std::string origin =
      state.init_from.empty() ? concat(fs::absolute(state.run_dir).string(), " (shared random init)") : state.init_from;
  // The step counter moves after this hook: the candidates record the step count they reached.
  const auto scores = export_candidates(state, *groups_, origin, state.step + 1);
  const CandidateMergeReport r = merge_candidates(state, *groups_, o_.merge);
  if (state.comm->rank() != 0) return;
  std::ofstream js(fs::path(state.run_dir) / "candidates.json");
  js << "{\"candidates\":[";
  std::printf("\n%-9s %10s %10s %8s\n", "candidate", "val acc", "held-out", "in soup");
  for (size_t g = 0; g < scores.size(); ++g) {
    bool kept = false;
    for (size_t k : r.kept) kept = kept || k == g;
    std::printf("%-9zu %10.4f %10.4f %8s\n", g, scores[g].first, scores[g].second, kept ? "yes" : "no");
    auto num = [](double v) { return std::isfinite(v) ? concat(v) : std::string("null"); };
    js << (g ? "," : "") << "{\"path\":\"candidate_" << g << ".h5\",\"val_acc\":" << num(scores[g].first)
       << ",\"heldout_acc\":" << num(scores[g].second) << ",\"kept\":" << (kept ? "true" : "false") << "}";
  }
  const char* method = o_.merge.method == CandidateMerge::Method::Greedy    ? "greedy"
                       : o_.merge.method == CandidateMerge::Method::Uniform ? "uniform"
                                                                            : "none";
  js << "],\"merge\":\"" << method << "\"}\n";
  std::printf("wrote candidate_0..%zu.h5 to %s; the final evaluation below is %s\n", scores.size() - 1,
              state.run_dir.c_str(), r.kept.empty() ? "candidate 0's" : concat("the ", method, " soup's").c_str());
  std::fflush(stdout);
}

}  // namespace oodt
