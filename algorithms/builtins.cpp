// The one place plugins are registered (see core/registry.h for why it is explicit).
#include "algorithms/fedspeed/fedspeed.h"
#include "algorithms/gaqat/gaqat.h"
#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"
#include "algorithms/label_smoothing/label_smoothing.h"
#include "algorithms/mixup/mixup.h"
#include "algorithms/multi_sample_dropout/multi_sample_dropout.h"
#include "algorithms/soups/candidates.h"
#include "algorithms/soups/sparse.h"
#include "algorithms/ssa/ssa.h"
#include "core/registry.h"

namespace oodt {
namespace {

// The merge keys shared by soup_ingredients and sparse_soup.
CandidateMerge read_merge(ConfigReader& cfg, bool allow_none) {
  CandidateMerge m;
  std::vector<std::string> methods = {"uniform", "greedy"};
  if (allow_none) methods.push_back("none");
  const std::string method = cfg.one_of("merge", "uniform", methods);
  m.method = method == "greedy"    ? CandidateMerge::Method::Greedy
             : method == "uniform" ? CandidateMerge::Method::Uniform
                                   : CandidateMerge::Method::None;
  m.strict = cfg.get("strict", false);
  m.recalibrate_fraction = cfg.get("recalibrate_fraction", 0.2);
  cfg.check(m.recalibrate_fraction >= 0 && m.recalibrate_fraction <= 1, "recalibrate_fraction",
            "must be in [0, 1] (a fraction of an epoch; 0 averages the BatchNorm statistics instead)");
  return m;
}

// The keys FedSpeed and FedAvg share.
FedSpeedOptions read_federated(ConfigReader& cfg) {
  FedSpeedOptions o;
  o.clients = cfg.get<int64_t>("clients", 4);
  cfg.check(o.clients >= 1, "clients", "must be >= 1");
  o.participation = cfg.get("participation", 1.0);
  cfg.check(o.participation > 0 && o.participation <= 1, "participation", "must be in (0, 1]");
  o.local_steps = cfg.get<int64_t>("local_steps", 50);
  cfg.check(o.local_steps >= 1, "local_steps", "must be >= 1");
  o.max_norm = cfg.get("max_norm", 10.0);
  cfg.check(o.max_norm >= 0, "max_norm", "must be >= 0 (0: no clipping)");
  o.lr_decay = cfg.get("lr_decay", 0.998);
  cfg.check(o.lr_decay > 0 && o.lr_decay <= 1, "lr_decay", "must be in (0, 1]");
  const std::string split = cfg.one_of("split", "dirichlet", {"dirichlet", "domain", "iid"});
  o.split = split == "domain" ? ClientSplit::Domain : split == "iid" ? ClientSplit::Iid : ClientSplit::Dirichlet;
  o.dirichlet_alpha = cfg.get("dirichlet_alpha", 0.6);
  cfg.check(o.dirichlet_alpha > 0, "dirichlet_alpha", "must be > 0");
  return o;
}

SagmOptions read_sagm(ConfigReader& cfg) {
  SagmOptions o;
  o.rho = cfg.get("rho", 0.05);
  cfg.check(o.rho >= 0, "rho", "must be >= 0");
  o.alpha = cfg.get("alpha", 0.001);
  cfg.check(o.alpha >= 0, "alpha", "must be >= 0");
  return o;
}

}  // namespace

void register_builtins(Registry& r) {
  r.add({"label_smoothing", "loss: cross-entropy against (1-s)*onehot + s/K (Szegedy et al. 2016)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           const double s = cfg.get("smoothing", 0.1);
           cfg.check(s >= 0 && s < 1, "smoothing", "must be in [0, 1)");
           return std::make_unique<LabelSmoothing>(s);
         }});
  r.add({"mixup", "forward+loss: convex combinations of input pairs and their targets (Zhang et al. 2018)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           const double a = cfg.get("alpha", 0.4);
           cfg.check(a > 0, "alpha", "must be > 0 (Beta(alpha, alpha))");
           return std::make_unique<Mixup>(a);
         }});
  r.add({"multi_sample_dropout", "forward+loss: M dropout masks over the trunk output, mean of M losses (Inoue 2019)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           const int64_t m = cfg.get<int64_t>("samples", 8);
           cfg.check(m >= 1, "samples", "must be >= 1");
           return std::make_unique<MultiSampleDropout>(m);
         }});
  r.add({"ghost_batch_norm", "forward: BatchNorm statistics per ghost batch of g samples (Hoffer et al. 2017)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           GhostOptions o;
           o.size = cfg.get<int64_t>("size", 32);
           cfg.check(o.size >= 2, "size", "must be >= 2 (a ghost batch needs a variance)");
           const std::string stats = cfg.one_of("running_stats", "per_chunk", {"per_chunk", "scaled"});
           o.stats = stats == "scaled" ? GhostStats::Scaled : GhostStats::PerChunk;
           return std::make_unique<GhostBatchNorm>(o);
         }});
  r.add({"ssa", "forward+eval: stochastically subsampled self-attention, dense fine-tune (Hussain et al. 2023)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           SsaPluginOptions o;
           o.attention.ratio = cfg.get<int64_t>("ratio", 4);
           cfg.check(o.attention.ratio >= 1, "ratio", "must be >= 1 (keep about N / ratio keys)");
           o.attention.pattern = cfg.one_of("pattern", "uniform", {"uniform", "local"}) == "local" ? KeyPattern::Local
                                                                                                  : KeyPattern::Uniform;
           o.attention.block = cfg.get<int64_t>("block", 16);
           cfg.check(o.attention.block >= 1, "block", "must be >= 1");
           o.finetune_fraction = cfg.get("finetune_fraction", 0.1);
           cfg.check(o.finetune_fraction >= 0 && o.finetune_fraction <= 1, "finetune_fraction", "must be in [0, 1]");
           o.ensemble = cfg.one_of("eval", "dense", {"dense", "ensemble"}) == "ensemble";
           o.eval_passes = cfg.get<int64_t>("eval_passes", 8);
           cfg.check(o.eval_passes >= 1, "eval_passes", "must be >= 1");
           return std::make_unique<StochasticSubsampledAttention>(o);
         }});
  r.add({"soup_ingredients", "averaging: one soup candidate per group of ranks, merged into a soup at the end (Wortsman et al. 2022)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           SoupIngredientsOptions o;
           o.group_size = cfg.get<int64_t>("group_size", 1);
           cfg.check(o.group_size >= 1, "group_size", "must be >= 1 (ranks per candidate)");
           o.lr_scale = cfg.get<std::vector<double>>("lr_scale", {});
           for (double v : o.lr_scale) cfg.check(v > 0, "lr_scale", "entries must be > 0");
           o.merge = read_merge(cfg, true);
           return std::make_unique<SoupIngredients>(o);
         }});
  r.add({"sparse_soup", "averaging+step: IMP phases to sparsity s, m candidates per phase merged into a soup (Zimmer et al. 2024)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           SparseSoupOptions o;
           o.sparsity = cfg.get("sparsity", 0.9);
           cfg.check(o.sparsity > 0 && o.sparsity < 1, "sparsity", "must be in (0, 1)");
           o.phases = cfg.get<int64_t>("phases", 3);
           cfg.check(o.phases >= 1, "phases", "must be >= 1");
           o.warmup = cfg.get("warmup", 0.1);
           cfg.check(o.warmup >= 0 && o.warmup < 1, "warmup", "must be in [0, 1) (a fraction of each phase)");
           o.group_size = cfg.get<int64_t>("group_size", 1);
           cfg.check(o.group_size >= 1, "group_size", "must be >= 1 (ranks per candidate)");
           o.merge = read_merge(cfg, false);
           return std::make_unique<SparseSoup>(o);
         }});
  r.add({"fedspeed", "averaging+step+data: federated clients, K local steps, prox-correction, perturbed gradient (Sun et al. 2023)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           FedSpeedOptions o = read_federated(cfg);
           o.rho = cfg.get("rho", 0.1);
           cfg.check(o.rho >= 0, "rho", "must be >= 0");
           o.lamb = cfg.get("lamb", 0.1);
           cfg.check(o.lamb >= 0, "lamb", "must be >= 0 (the prox-correction coefficient c)");
           return std::make_unique<FedSpeed>(o);
         }});
  r.add({"fedavg", "averaging+data: federated clients, K local steps, then the mean of their weights (McMahan et al. 2017)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           FedSpeedOptions o = read_federated(cfg);
           o.rho = 0;   // FedSpeed without perturbation
           o.lamb = 0;  // and without correction or dual variable
           return std::make_unique<FedSpeed>(o);
         }});
  r.add({"lsq", "model: LSQ fake quantization of conv/linear weights and inputs with learned steps (Esser et al. 2020)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           LsqOptions o;
           o.weight_bits = cfg.get<int64_t>("weight_bits", 4);
           cfg.check(o.weight_bits >= 2 && o.weight_bits <= 16, "weight_bits", "must be in [2, 16]");
           o.input_bits = cfg.get<int64_t>("input_bits", 4);
           cfg.check(o.input_bits >= 2 && o.input_bits <= 16, "input_bits", "must be in [2, 16]");
           o.first_last_bits = cfg.get<int64_t>("first_last_bits", 8);
           cfg.check(o.first_last_bits == 0 || (o.first_last_bits >= 2 && o.first_last_bits <= 16), "first_last_bits",
                     "must be 0 (as the others) or in [2, 16]");
           return std::make_unique<Lsq>(o);
         }});
  r.add({"sagm", "backward: SAGM flatness term, a second pass at w + (rho/|g| - alpha) g (Wang et al. 2023)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> { return std::make_unique<Sagm>(read_sagm(cfg)); }});
  r.add({"gaqat", "backward: SAGM plus scale-gradient conflict tracking and freezing of quantizer steps (arXiv 2412.05551)",
         [](ConfigReader& cfg) -> std::unique_ptr<Algorithm> {
           GaqatOptions o;
           o.sagm = read_sagm(cfg);
           o.window = cfg.get<int64_t>("window", 10);
           cfg.check(o.window >= 2, "window", "must be >= 2");
           o.interval = cfg.get<int64_t>("interval", 10);
           cfg.check(o.interval >= 1, "interval", "must be >= 1");
           o.tau = cfg.get("tau", 0.3);
           cfg.check(o.tau >= 0 && o.tau <= 1, "tau", "must be in [0, 1]");
           o.freeze_all = cfg.one_of("freeze_target", "task", {"task", "all"}) == "all";
           o.reevaluate = cfg.one_of("unfreeze", "never", {"never", "reevaluate"}) == "reevaluate";
           return std::make_unique<Gaqat>(o);
         }});
}

}  // namespace oodt
