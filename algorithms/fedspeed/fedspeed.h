#pragma once
// FedSpeed (Sun et al., ICLR 2023; woodenchild95/FL-Simulator) and FedAvg as its special case
// rho = 0, c = 0. Clients are virtual: C clients are dealt over the ranks (client c on rank
// c % world) and each round every rank trains A of its clients one after the other, K local
// steps each, from the round's start weights w0. A trainer step is one local step, so a round
// is A * K steps and other plugins (mixup, label smoothing) compose with the local steps.
//
// Per local step of client i (phases):
//   train_batch           the client's next batch (its own shuffled share of the pool);
//   after_backward        g1 = grad; e = rho * g1 / (||g1|| + 1e-7); g2 = grad at w + e; w restored
//   before_optimizer_step g = clip(g2 + c (h_i - w0), max_norm) + c w; lr = lr0 * decay^round
//   the trainer's SGD step adds weight decay: w <- w - lr (g + wd w)
// After K steps: h_i <- h_i + (w_K - w0). After the round (one all-reduce of sum w_K, sum h and
// the drift terms): w_next = mean over active clients of w_K + mean over all clients of h, as the
// reference code does (it averages h over every client, active or not). BN running statistics
// and other float buffers are averaged over active clients.
//
// The rounds are an averaging strategy (FederatedRounds) that holds every client's state; the
// plugin (FedSpeed) owns it together with the trainer and calls it from its hooks.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/fedspeed/clients.h"
#include "core/algorithm.h"
#include "core/averaging.h"

namespace oodt {

class ConfigReader;

struct FedSpeedOptions {
  int64_t clients = 4;          // C, over all ranks
  double participation = 1.0;   // fraction of clients active per round
  int64_t local_steps = 50;     // K, the same for every client
  double rho = 0.1;             // gradient perturbation radius (0: none)
  double lamb = 0.1;            // c, prox-correction coefficient (0: no correction and no h: FedAvg)
  double max_norm = 10.0;       // clip of the total gradient norm (0: off)
  double lr_decay = 0.998;      // local lr multiplied by this every round
  ClientSplit split = ClientSplit::Dirichlet;
  double dirichlet_alpha = 0.6;
  // The keys FedSpeed and FedAvg share.
  static FedSpeedOptions federated_from_config(ConfigReader& cfg);
  // FedSpeed's: the shared ones, rho and lamb.
  static FedSpeedOptions from_config(ConfigReader& cfg);
};

// The federated rounds: no per-step communication; one all-reduce per round; every rank's
// client state goes into checkpoints.
class FederatedRounds final : public AveragingStrategy {
 public:
  explicit FederatedRounds(FedSpeedOptions o) : o_(o) {}
  std::string name() const override { return "federated_rounds"; }
  // Every client starts from rank 0's weights, or a resumed run restores this rank's state.
  void setup(State& state) override;
  void average(State&) override {}
  // Buffers are averaged at each round's end; mid-round each rank's belong to its client.
  void sync_buffers(State&) override {}
  void prepare_save(State& state) override;
  void save(TensorMap& out) const override;
  void load(const TensorMap& in) override { pending_ = in; }

  // The plugin's phases. `key` names the plugin's config key in errors.
  void fit_start(State& state, const std::string& key);
  Batch train_batch(State& state);
  void perturb(State& state);
  void correct_gradients(State& state);
  void after_step(State& state);
  void report(State& state) const;

  // Active clients per rank per round (A) and steps per round (A * K).
  int64_t active_per_rank() const { return active_per_rank_; }
  int64_t round_steps() const { return active_per_rank_ * o_.local_steps; }

 private:
  void begin_round();
  void end_slot();
  void end_round(State& state);
  std::vector<int64_t> select(State& state, int64_t round) const;
  // This rank's state (model, optimizer, client duals and cursors, round accumulators).
  TensorMap rank_state(State& state) const;
  void restore_rank_state(State& state, const TensorMap& m);

  FedSpeedOptions o_;
  std::string key_;
  int64_t active_per_rank_ = 1;
  std::vector<int64_t> hosted_;                  // client ids on this rank
  std::vector<std::vector<int64_t>> rows_;       // [hosted] pool positions
  std::vector<int64_t> cursor_;                  // [hosted] samples taken so far
  std::vector<std::vector<at::Tensor>> h_;       // [hosted][param] dual variable (empty: zero)
  std::vector<at::Tensor> params_, buffers_;     // the model's parameters and float buffers
  std::vector<at::Tensor> w0_;                   // params then buffers at the round's start
  std::vector<at::Tensor> sum_;                  // sum of w_K over this rank's finished slots
  double sum_sq_ = 0;                            // sum of ||w_K||^2 (parameters)
  std::vector<int64_t> active_;                  // [slot] index into hosted_
  int64_t active_round_ = -1;
  size_t current_ = 0;                           // index into hosted_ of the training client
  // Reported at evaluations.
  double drift_ = 0, bytes_ = 0;
  int64_t rounds_done_ = 0;
  mutable std::vector<TensorMap> gathered_;      // rank 0, between prepare_save and save
  TensorMap pending_;                            // from load(), applied by setup()
};

class FedSpeed : public Algorithm, public AveragingOwner, public BatchDealer {
 public:
  static constexpr const char* kName = "fedspeed";
  static constexpr const char* kSummary =
      "averaging+step+data: federated clients, K local steps, prox-correction, perturbed gradient (Sun et al. 2023)";
  using Options = FedSpeedOptions;

  explicit FedSpeed(Options o);
  void hooks(HookTable& table) override;
  // The perturbed second pass excludes sagm/gaqat, which would overwrite the same gradients.
  std::vector<Claim> claims() const override;
  Capabilities capabilities() const override { return Capabilities::rewriting_gradients(o_.rho > 0); }
  std::shared_ptr<AveragingStrategy> averaging() override { return rounds_; }
  Batch train_batch(State& state) override { return rounds_->train_batch(state); }

 private:
  Options o_;
  std::shared_ptr<FederatedRounds> rounds_;  // shared with the trainer
};

// FedAvg (McMahan et al. 2017): FedSpeed without perturbation, correction or dual variable.
class FedAvg final : public FedSpeed {
 public:
  static constexpr const char* kName = "fedavg";
  static constexpr const char* kSummary =
      "averaging+data: federated clients, K local steps, then the mean of their weights (McMahan et al. 2017)";
  struct Options : FedSpeedOptions {
    static Options from_config(ConfigReader& cfg);
  };
  explicit FedAvg(Options o) : FedSpeed(o) {}
};

}  // namespace oodt
