#include "algorithms/soups/candidates.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/buckets.h"
#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/data_source.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/models/model.h"
#include "core/optim.h"
#include "core/report.h"
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
void broadcast_map(TensorMap& m, Communicator& comm, int root, int64_t bucket_bytes) {
  std::vector<at::Tensor> tensors;
  for (auto& kv : m) tensors.push_back(kv.second);
  broadcast_tensors(tensors, comm, root, bucket_bytes);
}

}  // namespace

CandidateGroups::CandidateGroups(int64_t group_size, std::string key) : group_size_(group_size), key_(std::move(key)) {}

void CandidateGroups::setup(State& state) {
  Communicator& world = *state.comm;
  const TensorMap loaded = pending_;  // the gradient buckets' order, if a checkpoint had one
  bucket_bytes_ = state.dist.bucket_bytes();
  if (state.data->as<ReshardableSource>() == nullptr)
    throw ConfigError(key_, "the data source cannot deal its data anew to groups of ranks (data.type: domains can)");
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
    broadcast_module(*state.model, world, 0, bucket_bytes_);  // one shared start
  }
  reshard(state);
  sync_ = make_gradient_sync(state);
  sync_->load(loaded);
  sync_->setup(*state.model, *group_);
}

void CandidateGroups::reshard(State& state) {
  // The training stream is the group's for the whole run (so epochs count the candidate's
  // passes); evaluation shares follow whoever holds the model being evaluated.
  auto* source = state.data->as<ReshardableSource>();
  if (!dealt_) {
    const uint64_t seed = mix_seed(state.seed, 0xca4d, static_cast<uint64_t>(candidate_));
    source->reshard(seed, group_->rank(), group_->world_size());
    dealt_ = true;
  }
  if (merged_) source->share_evaluation(state.comm->rank(), state.comm->world_size());
  else source->share_evaluation(group_->rank(), group_->world_size());
}

void CandidateGroups::average(State&) {
  OODT_CHECK(!merged_, "candidate groups: gradients averaged after the candidates were merged");
  sync_->finish();
}

void CandidateGroups::sync_buffers(State& state) { broadcast_buffers(*state.model, active(state), 0, bucket_bytes_); }

void CandidateGroups::prepare_save(State& state) {
  gathered_.clear();
  if (merged_ || candidates_ == 1) return;
  const TensorMap model = module_state(*state.model);
  const TensorMap optim = state.optimizer->state_dict();
  for (int64_t g = 1; g < candidates_; ++g) {
    const int root = static_cast<int>(g * group_size_);
    TensorMap m = cloned(model), o = cloned(optim);
    broadcast_map(m, *state.comm, root, bucket_bytes_);
    broadcast_map(o, *state.comm, root, bucket_bytes_);
    if (state.comm->rank() != 0) continue;
    for (auto& [k, v] : m) gathered_[candidate_prefix(g, "model") + k] = v;
    for (auto& [k, v] : o) gathered_[candidate_prefix(g, "optimizer") + k] = v;
  }
}

void CandidateGroups::save(TensorMap& out) const {
  out["layout"] = at::tensor({candidates_, group_size_, static_cast<int64_t>(merged_)}, at::kLong);
  if (sync_) sync_->save(out);
  for (const auto& [k, v] : gathered_) out[k] = v;
  gathered_.clear();  // written; do not keep the other candidates until the next checkpoint
}

void CandidateGroups::load(const TensorMap& in) { pending_ = in; }

std::vector<TensorMap> CandidateGroups::all_models(State& state) {
  const TensorMap own = module_state(*state.model);
  std::vector<TensorMap> out;
  for (int64_t g = 0; g < candidates_; ++g) {
    TensorMap m = cloned(own);
    broadcast_map(m, *state.comm, static_cast<int>(g * group_size_), bucket_bytes_);
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
    all_reduce_tensors(floats, world, state.dist.bucket_bytes(), /*mean=*/true);
    groups.set_merged(state);
    if (batches > 0) recalibrate_batch_norm(model, *state.data, world, batches, state.dist.bucket_bytes());
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
    if (batches > 0) recalibrate_batch_norm(model, *state.data, world, batches, state.dist.bucket_bytes());
  };
  auto score = [&](const std::vector<size_t>& members) {
    cook(members);
    return summarize(evaluate(model, *state.data, world, state.eval_batch_size, state.device, state.predict),
                     state.data->domains())
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
  const EvalSummary s = summarize(
      evaluate(*state.model, *state.data, group, state.eval_batch_size, state.device, state.predict), state.data->domains());
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

CandidateMerge read_merge(ConfigReader& cfg, bool allow_none) {
  CandidateMerge m;
  std::vector<std::pair<std::string, CandidateMerge::Method>> methods = {{"uniform", CandidateMerge::Method::Uniform},
                                                                          {"greedy", CandidateMerge::Method::Greedy}};
  if (allow_none) methods.emplace_back("none", CandidateMerge::Method::None);
  m.method = cfg.one_of<CandidateMerge::Method>("merge", CandidateMerge::Method::Uniform, methods);
  m.strict = cfg.get("strict", false);
  m.recalibrate_fraction = cfg.get("recalibrate_fraction", 0.2);
  cfg.check(m.recalibrate_fraction >= 0 && m.recalibrate_fraction <= 1, "recalibrate_fraction",
            "must be in [0, 1] (a fraction of an epoch; 0 averages the BatchNorm statistics instead)");
  return m;
}

SoupIngredientsOptions SoupIngredientsOptions::from_config(ConfigReader& cfg) {
  SoupIngredientsOptions o;
  o.group_size = cfg.get<int64_t>("group_size", o.group_size);
  cfg.check(o.group_size >= 1, "group_size", "must be >= 1 (ranks per candidate)");
  o.lr_scale = cfg.get<std::vector<double>>("lr_scale", {});
  for (double v : o.lr_scale) cfg.check(v > 0, "lr_scale", "entries must be > 0");
  o.merge = read_merge(cfg, true);
  return o;
}

SoupIngredients::SoupIngredients(Options o)
    : o_(std::move(o)), groups_(std::make_shared<CandidateGroups>(o_.group_size, std::string("algorithms.") + kName)) {}

void SoupIngredients::hooks(HookTable& table) {
  table.on(Phase::FitStart, [this](State& state) {
    const int64_t world = state.comm->world_size();
    if (o_.group_size >= 1 && world % o_.group_size == 0 && !o_.lr_scale.empty() &&
        static_cast<int64_t>(o_.lr_scale.size()) != world / o_.group_size)
      throw ConfigError(key() + ".lr_scale", concat("has ", o_.lr_scale.size(), " entries for ", world / o_.group_size,
                                                    " candidates (", world, " ranks / group_size ", o_.group_size, ")"));
  });
  table.on(Phase::BeforeOptimizerStep, [this](State& state) {
    if (!o_.lr_scale.empty() && !groups_->merged()) state.lr *= o_.lr_scale[static_cast<size_t>(groups_->candidate())];
  });
  table.on(Phase::AfterOptimizerStep, [this](State& state) {
    if (state.step + 1 == state.max_steps) finish(state);
  });
}

void SoupIngredients::finish(State& state) {
  // The candidates' shared origin: the --init-from checkpoint, or this run's random init.
  const std::string origin =
      state.init_from.empty() ? concat(fs::absolute(state.run_dir).string(), " (shared random init)") : state.init_from;
  // The step counter moves after this hook: the candidates record the step count they reached.
  const auto scores = export_candidates(state, *groups_, origin, state.step + 1);
  const CandidateMergeReport r = merge_candidates(state, *groups_, o_.merge);
  if (state.comm->rank() != 0) return;
  const char* method = o_.merge.method == CandidateMerge::Method::Greedy    ? "greedy"
                       : o_.merge.method == CandidateMerge::Method::Uniform ? "uniform"
                                                                            : "none";
  nlohmann::json list = nlohmann::json::array();
  std::printf("\n%-9s %10s %10s %8s\n", "candidate", "val acc", "held-out", "in soup");
  for (size_t g = 0; g < scores.size(); ++g) {
    const bool kept = std::find(r.kept.begin(), r.kept.end(), g) != r.kept.end();
    std::printf("%-9zu %10.4f %10.4f %8s\n", g, scores[g].first, scores[g].second, kept ? "yes" : "no");
    list.push_back({{"path", concat("candidate_", g, ".h5")},
                    {"val_acc", json_number(scores[g].first)},
                    {"heldout_acc", json_number(scores[g].second)},
                    {"kept", kept}});
  }
  state.reporter->write_json("candidates.json", {{"candidates", list}, {"merge", method}});
  std::printf("wrote candidate_0..%zu.h5 to %s; the final evaluation below is %s\n", scores.size() - 1,
              state.run_dir.c_str(), r.kept.empty() ? "candidate 0's" : concat("the ", method, " soup's").c_str());
  std::fflush(stdout);
}

}  // namespace oodt
