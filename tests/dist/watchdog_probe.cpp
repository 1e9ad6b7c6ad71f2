// Ranks that diverge: a plugin enters a collective (a barrier) after the optimizer step of
// step 3 on rank 0 only; rank 1 goes on to the trainer's next collective. Nothing matches, so
// both wait; the watchdog (dist.timeout_s = 3) must report where each rank is and end the job.
// Run by tests/CMakeLists.txt (dist.watchdog) under mpirun -np 2; exits non-zero.
#include <cstdio>

#include <yaml-cpp/yaml.h>

#include "core/comm.h"
#include "core/engine.h"
#include "core/models/model.h"
#include "core/trainer.h"
#include "test_util.h"

namespace oodt {
namespace {

class SkipOnOneRank final : public Algorithm {
 public:
  void hooks(HookTable& table) override {
    table.on(Phase::AfterOptimizerStep, [](State& s) {
      if (s.step == 3 && s.comm->rank() == 0) s.comm->barrier();  // rank 1 never comes
    });
  }
};

}  // namespace
}  // namespace oodt

int main() {
  using namespace oodt;
  auto comm = make_communicator();
  Watchdog watchdog(*comm, 3.0);
  TrainerOptions o;
  o.run_dir = test::temp_dir("watchdog");
  o.steps = 10;
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.verbose = false;
  std::vector<std::unique_ptr<Algorithm>> algos;
  algos.push_back(std::make_unique<SkipOnOneRank>());
  algos.back()->set_name("skip_probe");
  ConfigReader cfg(YAML::Load("{name: mlp, hidden: [8]}"), "model", nullptr);
  at::manual_seed(1);
  auto model = build_model(cfg, ModelShape{{1, 4, 4}, 3});
  Trainer t(o, model, test::slice_data(8, comm->rank(), comm->world_size()), std::make_unique<Engine>(std::move(algos)),
            *comm, at::Device(at::kCPU), "{}");
  t.prepare_run_dir();
  t.fit();
  std::printf("rank %d: training finished, the divergence went unnoticed\n", comm->rank());
  return 0;
}
