// Bytes communicated per training sample: FedSpeed (one all-reduce per round) against
// data-parallel SGD (one gradient all-reduce per step), both run here side by side by the real
// trainer on the same model and data, counted by the communicator. Run under mpirun:
//   mpirun -np 2 build/bench/bench_fed_bytes [--steps 200] [--local-steps 20]
#include <cstdio>
#include <string>

#include <yaml-cpp/yaml.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/registry.h"
#include "core/trainer.h"

namespace oodt {
namespace {

// A fixed pool of random 28x28 images (no I/O), dealt as the trainer's shards or to clients.
class PoolData final : public DataSource, public PooledSource {
 public:
  PoolData(int64_t n, int64_t batch, int rank, int world) : batch_(batch), rank_(rank), world_(world) {
    at::Generator g = at::detail::createCPUGenerator(7);
    x_ = at::rand({n, 1, 28, 28}, g);
    y_ = at::randint(0, 10, {n}, g, at::kLong);
    for (int64_t i = 0; i < n; ++i) pool_.labels.push_back(y_[i].item<int64_t>()), pool_.domains.push_back(0);
  }
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> input_shape() const override { return {1, 28, 28}; }
  const std::vector<DomainInfo>& domains() const override { return domains_; }
  int64_t batch_size() const override { return batch_; }
  Batch train_batch(int64_t step) override {
    std::vector<int64_t> pos;
    for (int64_t i = 0; i < batch_; ++i) pos.push_back(((step * world_ + rank_) * batch_ + i) % pool_.size());
    return read_pool(pos);
  }
  int64_t epoch_of(int64_t) const override { return 0; }
  int64_t steps_per_epoch() const override { return 1 << 30; }
  const TrainPool& train_pool() override { return pool_; }
  Batch read_pool(const std::vector<int64_t>& positions) override {
    const at::Tensor idx = at::tensor(positions, at::kLong);
    Batch b;
    b.inputs = x_.index_select(0, idx);
    b.labels = y_.index_select(0, idx);
    b.domains = at::zeros({static_cast<int64_t>(positions.size())}, at::kLong);
    return b;
  }
  std::vector<EvalSplit> eval_splits() const override { return {}; }
  void for_each_eval_batch(const EvalSplit&, int64_t, const std::function<void(const Batch&)>&) override {}

 protected:
  void* find_interface(const std::type_info& t) override {
    return t == typeid(PooledSource) ? static_cast<PooledSource*>(this) : nullptr;
  }

 private:
  at::Tensor x_, y_;
  int64_t batch_;
  int rank_, world_;
  TrainPool pool_;
  std::vector<DomainInfo> domains_ = {DomainInfo{"memory", false}};
};

// Records the communicator's byte count at the end of every step. Listed first, it runs last
// in after_optimizer_step, after a round's all-reduce.
class ByteProbe final : public Algorithm {
 public:
  void hooks(HookTable& table) override {
    table.on(Phase::AfterOptimizerStep, [this](State& state) { bytes.push_back(state.comm->bytes()); });
  }
  std::vector<uint64_t> bytes;
};

// Bytes this rank sent per training sample it processed, between the end of step `from` and
// the end of the run's last step (checkpoints and evaluations excluded).
double bytes_per_sample(const std::string& algorithms, int64_t steps, int64_t from, int64_t batch, Communicator& comm) {
  Registry registry;
  register_builtins(registry);
  TrainerOptions o;
  o.run_dir = "/tmp/oodt_bench_fed_bytes";
  o.steps = steps;
  o.eval_every = 0;
  o.checkpoint_every = 0;
  o.verbose = false;
  o.optim.momentum = 0;
  at::manual_seed(0);
  ConfigReader cfg(YAML::Load("{name: cnn, channels: [16, 32, 64]}"), "model", nullptr);
  auto model = build_model(cfg, ModelShape{{1, 28, 28}, 10});
  std::vector<std::unique_ptr<Algorithm>> algos;
  auto probe = std::make_unique<ByteProbe>();
  probe->set_name("byte_probe");
  ByteProbe* p = probe.get();
  algos.push_back(std::move(probe));
  for (auto& a : registry.build(YAML::Load(algorithms), nullptr)) algos.push_back(std::move(a));
  Trainer t(o, model, std::make_unique<PoolData>(4000, batch, comm.rank(), comm.world_size()),
            std::make_unique<Engine>(std::move(algos)), comm, at::Device(at::kCPU), "{}");
  t.open_run_dir(RunDirMode::Overwrite);  // the same folder every time
  t.prepare_run_dir();
  t.fit();
  const uint64_t sent = p->bytes[static_cast<size_t>(steps - 1)] - p->bytes[static_cast<size_t>(from)];
  return static_cast<double>(sent) / static_cast<double>((steps - 1 - from) * batch);
}

}  // namespace
}  // namespace oodt

int main(int argc, char** argv) {
  int64_t local_steps = 20, rounds = 5, batch = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (a == "--local-steps") local_steps = v;
    else if (a == "--rounds") rounds = v;
    else if (a == "--batch") batch = v;
  }
  at::set_num_threads(1);
  auto comm = oodt::make_communicator();
  // 4 clients over the ranks, all active: a round is R = (4 / ranks) * K steps on every rank.
  // Both runs take `rounds` rounds' worth of steps; bytes are counted after the first round.
  const int64_t clients = 4, round = clients / comm->world_size() * local_steps, steps = rounds * round;
  const double dp = oodt::bytes_per_sample("[]", steps, round - 1, batch, *comm);
  const std::string fed = oodt::concat("[{fedspeed: {clients: ", clients, ", split: iid, local_steps: ", local_steps, "}}]");
  const double fs = oodt::bytes_per_sample(fed, steps, round - 1, batch, *comm);
  if (comm->rank() == 0) {
    std::printf("CNN [16,32,64], batch %lld per rank, %d ranks; FedSpeed: %lld clients, K = %lld local steps\n",
                static_cast<long long>(batch), comm->world_size(), static_cast<long long>(clients),
                static_cast<long long>(local_steps));
    std::printf("%-26s %16s %8s\n", "method", "bytes/sample", "ratio");
    std::printf("%-26s %16.1f %8.3f\n", "data-parallel SGD", dp, 1.0);
    std::printf("%-26s %16.1f %8.3f\n", "FedSpeed", fs, fs / dp);
  }
  return 0;
}
