// The one place plugins are registered (see core/registry.h for why it is explicit).
#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"
#include "algorithms/label_smoothing/label_smoothing.h"
#include "algorithms/mixup/mixup.h"
#include "algorithms/multi_sample_dropout/multi_sample_dropout.h"
#include "algorithms/ssa/ssa.h"
#include "core/registry.h"

namespace oodt {

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
}

}  // namespace oodt
