// The one place plugins are registered (see core/registry.h for why it is explicit).
#include "algorithms/label_smoothing/label_smoothing.h"
#include "algorithms/mixup/mixup.h"
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
}

}  // namespace oodt
