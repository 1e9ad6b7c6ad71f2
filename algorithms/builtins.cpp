// The one place plugins are registered (see core/registry.h for why it is explicit). Each
// plugin reads its own options (Options::from_config, beside it).
#include "algorithms/fedspeed/fedspeed.h"
#include "algorithms/gaqat/gaqat.h"
#include "algorithms/ghost_batch_norm/ghost_batch_norm.h"
#include "algorithms/label_smoothing/label_smoothing.h"
#include "algorithms/lsq/lsq.h"
#include "algorithms/mixup/mixup.h"
#include "algorithms/multi_sample_dropout/multi_sample_dropout.h"
#include "algorithms/sagm/sagm.h"
#include "algorithms/soups/candidates.h"
#include "algorithms/soups/sparse.h"
#include "algorithms/ssa/ssa.h"
#include "core/registry.h"

namespace oodt {

void register_builtins(Registry& r) {
  r.add<LabelSmoothing>();
  r.add<Mixup>();
  r.add<MultiSampleDropout>();
  r.add<GhostBatchNorm>();
  r.add<StochasticSubsampledAttention>();
  r.add<SoupIngredients>();
  r.add<SparseSoup>();
  r.add<FedSpeed>();
  r.add<FedAvg>();
  r.add<Lsq>();
  r.add<Sagm>();
  r.add<Gaqat>();
}

}  // namespace oodt
