#include "core/trainer.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/numerics.h"
#include "core/models/model.h"
#include "core/preempt.h"

namespace oodt {
namespace fs = std::filesystem;

const char* oodt_version() { return "0.1.0"; }

TrainerOptions TrainerOptions::from_config(ConfigTree& tree) {
  TrainerOptions o;
  ConfigReader root(tree.root, "", tree.origins);
  {
    ConfigReader run = root.child("run");
    o.run_dir = run.get("dir", o.run_dir);
    o.seed = run.get("seed", o.seed);
    run.check(!o.run_dir.empty(), "dir", "must not be empty");
    run.check(o.seed >= 0, "seed", "must be >= 0");
    run.finish();
  }
  {
    ConfigReader train = root.child("train");
    o.steps = train.get("steps", o.steps);
    o.eval_every = train.get("eval_every", o.eval_every);
    o.checkpoint_every = train.get("checkpoint_every", o.checkpoint_every);
    o.keep_checkpoints = train.get("keep_checkpoints", o.keep_checkpoints);
    o.log_every = train.get("log_every", o.log_every);
    o.eval_batch_size = train.get("eval_batch_size", o.eval_batch_size);
    o.device = train.one_of("device", o.device, {"auto", "cpu", "cuda"});
    o.threads = train.get("threads", o.threads);
    o.nonfinite = train.one_of("nonfinite", o.nonfinite, {"abort", "skip"});
    o.accumulate = train.get("accumulate", o.accumulate);
    train.check(o.accumulate >= 1, "accumulate", "must be >= 1 (micro-batches per step)");
    train.check(o.threads >= 0, "threads", "must be >= 0 (0: cores per rank)");
    train.check(o.steps > 0, "steps", "must be > 0");
    train.check(o.eval_every >= 0, "eval_every", "must be >= 0 (0: evaluate only at the end)");
    train.check(o.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: only at the end)");
    train.check(o.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
    train.check(o.log_every > 0, "log_every", "must be > 0");
    train.check(o.eval_batch_size > 0, "eval_batch_size", "must be > 0");
    train.finish();
  }
  {
    ConfigReader dist = root.child("dist");
    o.bucket_mb = dist.get("bucket_mb", o.bucket_mb);
    o.in_place_mb = dist.get("in_place_mb", o.in_place_mb);
    const std::string overlap = dist.one_of("overlap", std::string("auto"), {"auto", "true", "false"});
    o.overlap = overlap == "auto"   ? TrainerOptions::Overlap::Auto
                : overlap == "true" ? TrainerOptions::Overlap::On
                                    : TrainerOptions::Overlap::Off;
    o.timeout_s = dist.get("timeout_s", o.timeout_s);
    dist.check(o.timeout_s >= 0, "timeout_s", "must be >= 0 (0: no watchdog)");
    o.compress = dist.one_of("compress", o.compress, {"none", "fp16", "bf16"});
    dist.check(o.bucket_mb > 0, "bucket_mb", "must be > 0");
    dist.check(o.in_place_mb > 0, "in_place_mb", "must be > 0");
    dist.finish();
  }
  ConfigReader optim = root.child("optim");
  o.optim = OptimOptions::from_config(optim);
  ConfigReader schedule = root.child("schedule");
  o.schedule = ScheduleOptions::from_config(schedule);
  return o;
}

Trainer::Trainer(TrainerOptions options, std::shared_ptr<Model> model, std::unique_ptr<DataSource> data,
                 std::unique_ptr<Engine> engine, Communicator& comm, at::Device device, std::string resolved_config)
    : options_(std::move(options)),
      model_(std::move(model)),
      data_(std::move(data)),
      engine_(std::move(engine)),
      comm_(comm),
      config_(std::move(resolved_config)),
      nonfinite_(options_.nonfinite) {
  // Model surgery by plugins (new parameters) happens before the optimizer sees the model.
  std::set<std::string> before;
  for (const auto& kv : model_->named_state()) before.insert(kv.first);
  for (const auto& algo : engine_->algorithms()) algo->prepare_model(*model_);
  for (const auto& kv : model_->named_state())
    if (!before.count(kv.first)) plugin_state_.insert(kv.first);
  model_->to(device);
  optimizer_ = std::make_unique<Optimizer>(model_->named_state(), options_.optim);
  // Plugins that change gradients after backward (a second pass, a flatness term) need the
  // whole step's gradient before any of it is sent, and every micro-batch's view of it.
  std::string after_backward;
  for (const auto& algo : engine_->algorithms())
    if (algo->hooks().test(static_cast<int>(Phase::AfterBackward)) ||
        algo->hooks().test(static_cast<int>(Phase::BeforeAveraging)))
      after_backward += (after_backward.empty() ? "" : ", ") + algo->name();
  if (options_.accumulate > 1 && !after_backward.empty())
    throw ConfigError("train.accumulate", concat("micro-batches cannot be combined with ", after_backward,
                                                 " (hooks after_backward, which needs the whole step's gradient); use 1"));
  GradientSyncOptions sync;
  sync.bucket_bytes = static_cast<int64_t>(options_.bucket_mb * 1024 * 1024);
  const bool overlap = options_.overlap == TrainerOptions::Overlap::On ||
                       (options_.overlap == TrainerOptions::Overlap::Auto &&
                        (device.is_cuda() || comm_.local_size() < comm_.world_size()));
  sync.overlap = overlap && after_backward.empty();
  sync.prescale = after_backward.empty();
  sync.in_place_bytes = static_cast<int64_t>(options_.in_place_mb * 1024 * 1024);
  sync.compression = options_.compress == "fp16"   ? GradCompression::Fp16
                     : options_.compress == "bf16" ? GradCompression::Bf16
                                                   : GradCompression::None;
  averaging_ = engine_->take_averaging(std::make_unique<GradientAllReduce>(sync));
  if (Algorithm* dealer = engine_->batch_provider())
    next_batch_ = [dealer](State& s) { return dealer->train_batch(s); };
  else
    next_batch_ = [this](State& s) { return data_->train_batch(s.step); };
  state_.model = model_.get();
  state_.optimizer = optimizer_.get();
  state_.comm = &comm_;
  state_.data = data_.get();
  state_.averaging = averaging_.get();
  state_.run_dir = options_.run_dir;
  state_.config = config_;
  state_.device = device;
  state_.num_classes = data_->num_classes();
  state_.max_steps = options_.steps;
  state_.batch_size = data_->batch_size();
  state_.eval_batch_size = options_.eval_batch_size;
  state_.eval_every = options_.eval_every;
  state_.seed = static_cast<uint64_t>(options_.seed);
}

bool Trainer::is_root() const { return comm_.rank() == 0; }

void Trainer::init_weights(const std::string& checkpoint) {
  Checkpoint ck = read_checkpoint(checkpoint);
  // A float model can start a run that adds state (quantizer steps): those start fresh.
  load_module_state(*model_, ck.model, checkpoint, plugin_state_);
  init_from_ = fs::absolute(checkpoint).string();
  state_.init_from = init_from_;
}

void Trainer::resume(const std::string& checkpoint) { resume(read_checkpoint(checkpoint), checkpoint); }

void Trainer::resume(const Checkpoint& ck, const std::string& checkpoint) {
  load_module_state(*model_, ck.model, checkpoint);
  optimizer_->load_state_dict(ck.optimizer);
  averaging_->load(ck.averaging);
  for (const auto& algo : engine_->algorithms()) {
    auto it = ck.plugins.find(algo->name());
    algo->load(it == ck.plugins.end() ? TensorMap{} : it->second);
  }
  if (ck.rng.defined() && ck.world_size == comm_.world_size()) {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(ck.rng[comm_.rank()].clone());
  }
  state_.step = ck.step;
  state_.epoch = ck.epoch;
  init_from_ = ck.init_from;
  state_.init_from = init_from_;
  last_checkpoint_step_ = ck.step;
  if (ck.config != config_ && is_root())
    std::cerr << "oodtrain: warning: the resolved config differs from the one stored in " << checkpoint
              << "; resuming with the new one\n";
  if (ck.world_size != comm_.world_size() && is_root())
    std::cerr << "oodtrain: warning: " << checkpoint << " was written by " << ck.world_size
              << " ranks, resuming on " << comm_.world_size() << "; the data order changes from here\n";
}

void Trainer::prepare_run_dir() {
  if (!is_root()) return;
  std::error_code ec;
  fs::create_directories(options_.run_dir, ec);
  if (ec) throw ConfigError("run.dir", concat("cannot create ", options_.run_dir, ": ", ec.message()));
  std::ofstream(fs::path(options_.run_dir) / "config.yaml") << config_;
  std::ofstream(fs::path(options_.run_dir) / "plugins.txt") << engine_->describe_order();
}

void Trainer::setup() {
  if (started_) return;
  engine_->run(Phase::FitStart, state_);
  averaging_->setup(state_);
  started_ = true;
}

FitResult Trainer::fit(int64_t stop_at) {
  setup();
  last_progress_ = std::chrono::steady_clock::now();
  const int64_t end = (stop_at > 0) ? std::min(stop_at, options_.steps) : options_.steps;
  FitResult result;
  while (state_.step < end) {
    // Throughput counts the whole loop but evaluation and checkpoints.
    auto t0 = std::chrono::steady_clock::now();
    const int64_t epoch_before = state_.epoch;
    train_step();
    state_.epoch = data_->epoch_of(state_.step);
    if (state_.epoch != epoch_before) engine_->run(Phase::EpochEnd, state_);
    progress(false);
    window_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool last = state_.step == options_.steps;
    if (last || (options_.eval_every > 0 && state_.step % options_.eval_every == 0)) {
      result.final_metrics = run_evaluation();
    }
    // A stop signal on any rank (agreed during the step): every rank stops after this step.
    const int sig = agreed_stop_signal_;
    if (state_.step == end || sig != 0 ||
        (options_.checkpoint_every > 0 && state_.step % options_.checkpoint_every == 0)) {
      if (last_checkpoint_step_ != state_.step) save_checkpoint();
    }
    if (sig != 0 && state_.step < options_.steps) {
      result.stop_signal = sig;
      break;
    }
  }
  if (state_.step >= options_.steps) {
    if (result.final_metrics.empty()) result.final_metrics = run_evaluation();
    if (last_checkpoint_step_ != state_.step) save_checkpoint();
    engine_->run(Phase::FitEnd, state_);
    result.finished = true;
  }
  result.step = state_.step;
  return result;
}

void Trainer::train_step() {
  State& s = state_;
  CollectiveContext ctx(concat("step ", s.step));
  // Every random draw of a step derives from (seed, rank, step): resuming replays it exactly.
  at::manual_seed(mix_seed(s.seed, 0x5eed, static_cast<uint64_t>(comm_.rank()), static_cast<uint64_t>(s.step)));
  const Batch batch = next_batch_(s).to(s.device);
  s.lr = learning_rate(options_.schedule, options_.optim.lr, s.step, options_.steps);
  model_->train();
  optimizer_->zero_grad();

  // One pass per micro-batch; gradients add up, and only the last pass communicates.
  const int64_t n = batch.size(), k = std::min<int64_t>(options_.accumulate, std::max<int64_t>(n, 1));
  double loss = 0;
  s.micro_batches = k;
  for (int64_t m = 0; m < k; ++m) {
    const int64_t begin = n * m / k, end = n * (m + 1) / k;
    s.micro_batch = m;
    s.batch = k == 1 ? batch : batch.slice(begin, end - begin);
    const double share = k == 1 ? 1.0 : static_cast<double>(end - begin) / static_cast<double>(n);
    forward_backward(m + 1 == k, share);
    loss += s.loss.item<double>() * share;
  }

  engine_->run(Phase::BeforeAveraging, s);
  {
    CollectiveContext averaging("averaging");
    averaging_->average(s);
  }
  engine_->run(Phase::AfterAveraging, s);

  // One agreement of every rank before the update, in one all-reduce: a NaN or Inf loss or
  // gradient on any rank (every rank skips the update, or the run stops: train.nonfinite),
  // and a stop signal on any rank (every rank stops after this step).
  maybe_inject_signal(comm_.rank(), static_cast<long long>(s.step + 1));
  agreed_stop_signal_ = stop_signal();
  const bool update = nonfinite_.allows_update(s, loss, &agreed_stop_signal_);
  if (update) {
    engine_->run(Phase::BeforeOptimizerStep, s);
    optimizer_->step(s.lr);
    engine_->run(Phase::AfterOptimizerStep, s);
  }

  s.step += 1;
  if (update) window_loss_ += loss, window_steps_ += 1;
  window_samples_ += n;
}

void Trainer::forward_backward(bool last_micro_batch, double share) {
  State& s = state_;
  engine_->run(Phase::BeforeForward, s);
  s.outputs = model_->forward(s.batch.inputs);
  engine_->run(Phase::AfterForward, s);

  engine_->run(Phase::BeforeLoss, s);
  s.loss = classification_loss(s.outputs, s.batch);
  engine_->run(Phase::AfterLoss, s);

  engine_->run(Phase::BeforeBackward, s);
  if (last_micro_batch) averaging_->begin_backward(s);  // buckets go out as backward fills them
  // Each micro-batch's mean loss weighted by its share of the step's samples: the gradients
  // add up to those of the whole batch's mean loss (times the averaging's backward scale).
  const double seed = share * averaging_->backward_scale();
  (seed == 1.0 ? s.loss : s.loss * seed).backward();
  engine_->run(Phase::AfterBackward, s);
}

void Trainer::progress(bool force) {
  if (!is_root() || !options_.verbose) return;
  // Under mpirun stdout is a pseudo-terminal even when redirected to a file: print lines.
  const bool tty = ::isatty(STDOUT_FILENO) && std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr;
  const auto now = std::chrono::steady_clock::now();
  if (tty) {
    if (!force && std::chrono::duration<double>(now - last_progress_).count() < 0.25) return;
    last_progress_ = now;
    std::printf("\rstep %lld/%lld  epoch %lld  loss %.4f  lr %.4g   ", static_cast<long long>(state_.step),
                static_cast<long long>(options_.steps), static_cast<long long>(state_.epoch),
                window_steps_ ? window_loss_ / window_steps_ : 0.0, state_.lr);
    std::fflush(stdout);
  } else if (force || state_.step % options_.log_every == 0) {
    std::printf("step %lld/%lld  epoch %lld  loss %.4f  lr %.4g\n", static_cast<long long>(state_.step),
                static_cast<long long>(options_.steps), static_cast<long long>(state_.epoch),
                window_steps_ ? window_loss_ / window_steps_ : 0.0, state_.lr);
    std::fflush(stdout);
  }
}

std::vector<SplitMetrics> Trainer::run_evaluation() {
  CollectiveContext ctx(concat("evaluation at step ", state_.step));
  averaging_->sync_buffers(state_);
  std::vector<SplitMetrics> metrics =
      evaluate(*model_, *data_, averaging_->evaluation_comm(state_), options_.eval_batch_size, state_.device);
  state_.metrics.clear();
  engine_->run(Phase::Evaluation, state_);
  log_metrics(metrics);
  return metrics;
}

namespace {
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}
}  // namespace

void Trainer::log_metrics(const std::vector<SplitMetrics>& metrics) {
  // Training loss and throughput summed over ranks (one small collective).
  at::Tensor w = at::tensor({window_loss_, static_cast<double>(window_steps_), static_cast<double>(window_samples_),
                             window_seconds_, static_cast<double>(nonfinite_.take_skipped())},
                            at::kDouble);
  comm_.all_reduce(w, ReduceOp::Sum);
  const double steps = w[1].item<double>();
  const double train_loss = steps > 0 ? w[0].item<double>() / steps : NAN;
  // Samples per second of the whole job: all ranks' samples over the mean rank's busy time.
  const double seconds = w[3].item<double>() / comm_.world_size();
  const double throughput = seconds > 0 ? w[2].item<double>() / seconds : 0.0;
  window_loss_ = 0, window_steps_ = 0, window_samples_ = 0, window_seconds_ = 0;
  const auto skipped = static_cast<int64_t>(w[4].item<double>() / comm_.world_size());  // every rank counted it
  if (!is_root()) return;

  const auto& domains = data_->domains();
  std::ostringstream js;
  js << "{\"step\":" << state_.step << ",\"epoch\":" << state_.epoch << ",\"lr\":" << json_number(state_.lr)
     << ",\"train_loss\":" << json_number(train_loss) << ",\"samples_per_s\":" << json_number(throughput)
     << ",\"world_size\":" << comm_.world_size() << ",\"skipped_steps\":" << skipped << ",\"domains\":{";
  for (size_t d = 0; d < domains.size(); ++d) {
    js << (d ? "," : "") << json_string(domains[d].name) << ":{\"held_out\":" << (domains[d].held_out ? "true" : "false");
    for (const auto& m : metrics) {
      if (m.domain != static_cast<int64_t>(d)) continue;
      js << ",\"" << m.part << "\":{\"acc\":" << json_number(m.accuracy) << ",\"loss\":" << json_number(m.loss)
         << ",\"ece\":" << json_number(m.ece) << ",\"conf\":" << json_number(m.confidence) << ",\"n\":" << m.count
         << "}";
    }
    js << "}";
  }
  js << "}";
  if (!state_.metrics.empty()) {
    js << ",\"plugins\":{";
    bool first = true;
    for (const auto& [k, v] : state_.metrics) {
      js << (first ? "" : ",") << json_string(k) << ":" << json_number(v);
      first = false;
    }
    js << "}";
  }
  js << "}\n";
  std::ofstream(fs::path(options_.run_dir) / "metrics.jsonl", std::ios::app) << js.str();

  if (!options_.verbose) return;
  const EvalSummary sum = summarize(metrics, domains);
  if (::isatty(STDOUT_FILENO) && std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) std::printf("\n");
  std::printf("eval step %lld  train_loss %.4f  val acc %.4f  held-out acc %.4f  %.0f samples/s\n",
              static_cast<long long>(state_.step), train_loss, sum.val_acc, sum.heldout_acc, throughput);
  std::fflush(stdout);
}

void Trainer::print_table(const std::vector<SplitMetrics>& metrics) const {
  if (!is_root()) return;
  const auto& domains = data_->domains();
  std::printf("\n%-14s %-9s %8s %8s %8s %8s\n", "domain", "role", "in acc", "out acc", "out ece", "out loss");
  auto find = [&](size_t d, const char* part) -> const SplitMetrics* {
    for (const auto& m : metrics)
      if (m.domain == static_cast<int64_t>(d) && m.part == part) return &m;
    return nullptr;
  };
  for (size_t d = 0; d < domains.size(); ++d) {
    const SplitMetrics* in = find(d, "in");
    const SplitMetrics* out = find(d, "out");
    std::printf("%-14s %-9s %8.4f %8.4f %8.4f %8.4f\n", domains[d].name.c_str(),
                domains[d].held_out ? "held-out" : "train", in ? in->accuracy : NAN, out ? out->accuracy : NAN,
                out ? out->ece : NAN, out ? out->loss : NAN);
  }
  std::fflush(stdout);
}

void Trainer::save_checkpoint() {
  CollectiveContext ctx(concat("checkpoint at step ", state_.step));
  averaging_->sync_buffers(state_);
  engine_->run(Phase::Checkpoint, state_);
  averaging_->prepare_save(state_);
  Checkpoint ck;
  ck.step = state_.step;
  ck.epoch = state_.epoch;
  ck.world_size = comm_.world_size();
  ck.seed = options_.seed;
  ck.config = config_;
  ck.git_revision = git_revision();
  ck.init_from = init_from_;
  // Every rank's generator state, gathered to every rank (rank 0 writes).
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const at::Tensor rng = gen.get_state();
  ck.rng = comm_.all_gather(rng);
  last_checkpoint_step_ = state_.step;
  if (!is_root()) return;
  ck.model = module_state(*model_);
  ck.optimizer = optimizer_->state_dict();
  averaging_->save(ck.averaging);
  for (const auto& algo : engine_->algorithms()) {
    TensorMap m;
    algo->save(m);
    ck.plugins[algo->name()] = std::move(m);
  }
  const std::string path = (fs::path(options_.run_dir) / checkpoint_name(state_.step)).string();
  write_checkpoint(path, ck);
  const auto all = list_checkpoints(options_.run_dir);
  for (size_t i = static_cast<size_t>(options_.keep_checkpoints); i < all.size(); ++i) fs::remove(all[i]);
}

}  // namespace oodt
