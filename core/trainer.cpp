#include "core/trainer.h"

#include <chrono>
#include <filesystem>
#include <iostream>

#include "core/checkpoint.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/preempt.h"
#include "core/seed.h"
#include "core/weights.h"

namespace oodt {
namespace fs = std::filesystem;

const char* oodt_version() { return "0.1.0"; }

Trainer::Trainer(TrainerOptions options, std::shared_ptr<Model> model, std::unique_ptr<DataSource> data,
                 std::unique_ptr<Engine> engine, Communicator& comm, at::Device device, std::string resolved_config)
    : options_(std::move(options)),
      model_(std::move(model)),
      data_(std::move(data)),
      engine_(std::move(engine)),
      comm_(comm),
      config_(std::move(resolved_config)),
      nonfinite_(options_.nonfinite, agreement_),
      stop_flag_(agreement_.add("stop_signal")),
      precision_(options_.precision, agreement_),
      reporter_(comm, options_.run_dir,
                ReportOptions{options_.verbose, options_.log_every, options_.log_every_s, options_.log}) {
  if (!options_.stop_source) options_.stop_source = [](const State&) { return stop_signal(); };
  State& s = state_;
  s.model = model_.get();
  s.comm = &comm_;
  s.data = data_.get();
  s.agreement = &agreement_;
  s.precision = &precision_;
  s.reporter = &reporter_;
  s.device = device;
  s.num_classes = data_->num_classes();
  s.max_steps = options_.steps;
  s.batch_size = data_->batch_size();
  s.eval_batch_size = options_.eval_batch_size;
  s.eval_every = options_.eval_every;
  s.seed = static_cast<uint64_t>(options_.seed);
  s.run_dir = options_.run_dir;
  s.config = config_;
  s.dist = options_.dist;
  precision_.validate(*engine_, device);  // fp16 on a CPU, a plugin that cannot: refused here

  // Module surgery (which may add parameters) before the optimizer sees the model.
  std::set<std::string> before;
  for (const auto& kv : model_->named_state()) before.insert(kv.first);
  engine_->prepare_model(s);
  for (const auto& kv : model_->named_state())
    if (!before.count(kv.first)) plugin_state_.insert(kv.first);
  // Frozen parameters are invisible to the optimizer and the gradient averaging alike.
  const auto frozen = freeze_parameters(*model_, options_.optim);
  if (!frozen.empty() && comm_.rank() == 0 && options_.verbose)
    std::cout << "optim.freeze: " << frozen.size() << " of " << model_->parameters().size()
              << " parameter tensors frozen (" << frozen.front() << (frozen.size() > 1 ? ", ..." : "") << ")\n";
  model_->to(device);
  // The memory format before the optimizer makes its state like the parameters.
  if (options_.channels_last) use_channels_last(*model_, "train.channels_last");
  at::globalContext().setBenchmarkCuDNN(options_.cudnn_benchmark);  // LibTorch's default: false
  feed_ = std::make_unique<DeviceFeed>(device, options_.channels_last);
  optimizer_ = std::make_unique<Optimizer>(model_->named_state(), options_.optim);
  s.optimizer = optimizer_.get();

  // Gradient averaging. Plugins that change gradients after backward need the whole step's
  // gradient before any of it is sent, and every micro-batch's view of it.
  const std::string rewriters = engine_->gradient_rewriters();
  if (options_.accumulate > 1 && !rewriters.empty())
    throw ConfigError("train.accumulate", concat("micro-batches cannot be combined with ", rewriters,
                                                 " (rewrites the whole step's gradient after backward); use 1"));
  const DistOptions& d = options_.dist;
  const bool overlap = d.overlap == DistOptions::Overlap::On ||
                       (d.overlap == DistOptions::Overlap::Auto &&
                        (device.is_cuda() || comm_.local_size() < comm_.world_size()));
  s.gradient_sync.limits = BucketLimits{d.bucket_bytes(), int64_t{1} << 20, static_cast<int64_t>(d.in_place_mb * (1 << 20))};
  s.gradient_sync.overlap = overlap && rewriters.empty();
  s.gradient_sync.prescale = rewriters.empty();
  if (BucketHookProvider* provider = engine_->bucket_hook_provider()) {
    if (d.compress != GradCompression::None)
      throw ConfigError("dist.compress", "a plugin compresses gradients itself; set dist.compress: none");
    s.bucket_hook = [provider] { return provider->bucket_hook(); };
  }
  AveragingOwner* owner = engine_->averaging_owner();
  averaging_ = owner ? owner->averaging() : std::make_shared<GradientAllReduce>();
  OODT_CHECK(averaging_ != nullptr, "a plugin owns averaging but made no strategy");
  s.averaging = averaging_.get();
  if (EvaluationPredictor* p = engine_->predictor())
    s.predict = [p](Model& m, const at::Tensor& x) { return p->predict(m, x); };
  if (BatchDealer* dealer = engine_->batch_dealer()) {
    next_batch_ = [dealer](State& st) { return dealer->train_batch(st); };
    dealt_by_plugin_ = true;
  } else
    next_batch_ = [this](State& st) { return data_->train_batch(st.step); };
}

void Trainer::init_weights(const std::string& checkpoint) {
  const InitOptions& o = options_.init;
  std::string note;
  const NamedTensors file = read_weight_file(checkpoint, &note);
  const TensorMap own = module_state(*model_);
  // What is not loaded keeps this run's initialisation: skip patterns, and the head when the
  // checkpoint has none or one for another class count (auto) or when asked (reset).
  TensorMap take;
  std::set<std::string> fresh = plugin_state_;  // plugins' new state may be absent (it starts fresh)
  std::vector<std::string> skipped;
  for (const auto& [name, t] : file) {
    if (glob_any(o.skip, name)) skipped.push_back(name);
    else take[name] = t;
  }
  for (const auto& [name, t] : own)
    if (glob_any(o.skip, name)) fresh.insert(name);
  std::string head_note;
  const auto head = own.find("head.fc.weight");
  const auto theirs = take.find("head.fc.weight");
  // A head from a file replaces whatever the checkpoint has.
  bool reset = o.head == "reset" || !o.head_from.empty();
  if (o.head == "auto" && o.head_from.empty() && head != own.end()) {
    if (theirs == take.end()) {
      reset = true;
      head_note = "the checkpoint has no head.fc: it starts fresh";
    } else if (theirs->second.sizes() != head->second.sizes()) {
      reset = true;
      head_note = concat("head.fc reset: the checkpoint's classifies ", theirs->second.size(0), " classes from ",
                         theirs->second.dim() > 1 ? theirs->second.size(1) : 0, " features, this model ",
                         head->second.size(0), " from ", head->second.size(1));
    }
  } else if (reset && o.head_from.empty()) {
    head_note = "head.* reset (init.head: reset)";
  }
  if (reset) {
    for (auto it = take.begin(); it != take.end();)
      it = it->first.rfind("head.", 0) == 0 ? take.erase(it) : std::next(it);
    for (const auto& [name, t] : own)
      if (name.rfind("head.", 0) == 0) fresh.insert(name);
  }
  load_module_state(*model_, take, checkpoint, fresh);
  if (!o.head_from.empty()) load_head(o.head_from);
  state_.init_from = fs::absolute(checkpoint).string();
  if (comm_.rank() != 0 || !options_.verbose) return;
  std::cout << "init: " << take.size() << " tensors from " << checkpoint << (note.empty() ? "" : " (" + note + ")") << "\n";
  if (!skipped.empty())
    std::cout << "init: skipped (init.skip) " << skipped.size() << ": " << skipped.front()
              << (skipped.size() > 1 ? concat(" ... ", skipped.back()) : "") << "\n";
  if (!head_note.empty()) std::cout << "init: " << head_note << "\n";
  if (!o.head_from.empty()) std::cout << "init: head.fc from " << o.head_from << "\n";
}

void Trainer::load_head(const std::string& path) {
  const NamedTensors file = read_weight_file(path);
  at::Tensor weight, bias;
  std::string names;
  for (const auto& [name, t] : file) {
    names += (names.empty() ? "" : ", ") + name;
    if (name == "weight" || name == "head.fc.weight") weight = t;
    if (name == "bias" || name == "head.fc.bias") bias = t;
  }
  if (!weight.defined())
    throw DataError(concat(path, " (init.head_from): needs a tensor 'weight' [classes, features] (or 'head.fc.weight'); it has: ",
                           names));
  LinearImpl& fc = *model_->head->fc;
  if (weight.sizes() != fc.weight.sizes())
    throw DataError(concat(path, " (init.head_from): 'weight' has shape ", weight.sizes(), ", this model's head.fc.weight is ",
                           fc.weight.sizes(), " (classes x features)"));
  if (bias.defined() && fc.bias.defined() && bias.sizes() != fc.bias.sizes())
    throw DataError(concat(path, " (init.head_from): 'bias' has shape ", bias.sizes(), ", expected ", fc.bias.sizes()));
  at::NoGradGuard no_grad;
  fc.weight.copy_(weight);
  if (fc.bias.defined()) {
    if (bias.defined()) fc.bias.copy_(bias);
    else fc.bias.zero_();
  }
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
  precision_.load(ck.trainer);
  if (ck.world_size == comm_.world_size()) {
    if (ck.rng.defined()) {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(ck.rng[comm_.rank()].clone());
    }
    if (auto it = ck.trainer.find("loss_window"); it != ck.trainer.end()) reporter_.restore_window(it->second[comm_.rank()]);
  }
  state_.step = ck.step;
  state_.epoch = ck.epoch;
  state_.init_from = ck.init_from;
  last_checkpoint_step_ = ck.step;
  if (comm_.rank() != 0) return;
  if (ck.config != config_)
    std::cerr << "oodtrain: warning: the resolved config differs from the one stored in " << checkpoint
              << "; resuming with the new one\n";
  if (ck.world_size != comm_.world_size())
    std::cerr << "oodtrain: warning: " << checkpoint << " was written by " << ck.world_size << " ranks, resuming on "
              << comm_.world_size() << "; the data order changes from here\n";
}

void Trainer::open_run_dir(RunDirMode mode) { reporter_.open(mode); }

void Trainer::prepare_run_dir() { reporter_.prepare(config_, engine_->describe_order()); }

void Trainer::setup() {
  if (started_) return;
  engine_->run(Phase::FitStart, state_);
  averaging_->setup(state_);
  started_ = true;
}

FitResult Trainer::fit(int64_t stop_at) {
  setup();
  const int64_t end = (stop_at > 0) ? std::min(stop_at, options_.steps) : options_.steps;
  FitResult result;
  while (state_.step < end) {
    // Throughput counts the whole loop but evaluation and checkpoints.
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t epoch_before = state_.epoch;
    train_step();
    state_.epoch = data_->epoch_of(state_.step);
    if (state_.epoch != epoch_before) engine_->run(Phase::EpochEnd, state_);
    reporter_.step_time(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    reporter_.progress(state_);
    const bool last = state_.step == options_.steps;
    if (last || (options_.eval_every > 0 && state_.step % options_.eval_every == 0))
      result.final_metrics = run_evaluation();
    // A stop request on any rank (agreed during the step): every rank stops after this step.
    const int sig = agreed_stop_signal_;
    if (state_.step == end || sig != 0 ||
        (options_.checkpoint_every > 0 && state_.step % options_.checkpoint_every == 0)) {
      if (last_checkpoint_step_ != state_.step) save_checkpoint();
    }
    if (sig != 0 && state_.step < options_.steps) {
      result.stop_signal = sig;
      // Written by the run itself: a launcher that was killed by the same signal (mpirun exits
      // 1 on SIGTERM) cannot report the stop, the folder still can.
      reporter_.write_text("stopped", concat("stopped by signal ", sig, " after step ", state_.step,
                                             " with a checkpoint; continue with --resume\n"));
      break;
    }
  }
  if (state_.step >= options_.steps) {
    if (result.final_metrics.empty()) result.final_metrics = run_evaluation();
    if (last_checkpoint_step_ != state_.step) save_checkpoint();
    engine_->run(Phase::FitEnd, state_);
    result.finished = true;
    // The run's own mark that it finished (sweeps and collect read it): written by the run, so
    // a run that outlives whoever started it still says so.
    reporter_.write_text("done", concat("finished at step ", state_.step, "\n"));
  }
  reporter_.flush();
  result.step = state_.step;
  return result;
}

void Trainer::train_step() {
  State& s = state_;
  CollectiveContext ctx(concat("step ", s.step));
  // Every random draw of a step derives from (seed, rank, step): resuming replays it exactly.
  at::manual_seed(mix_seed(s.seed, 0x5eed, static_cast<uint64_t>(comm_.rank()), static_cast<uint64_t>(s.step)));
  const Batch batch = device_batch(s);
  s.lr = learning_rate(options_.schedule, options_.optim.lr, s.step, options_.steps);
  model_->train();
  optimizer_->zero_grad();
  nonfinite_.begin_step(s);

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
    // The next step's batch is copied while the device runs this step's backward.
    if (m + 1 == k) copy_ahead(s.step + 1);
    loss += s.loss.item<double>() * share;
  }

  engine_->run(Phase::BeforeAveraging, s);
  {
    CollectiveContext averaging("averaging");
    averaging_->average(s);
  }
  engine_->run(Phase::AfterAveraging, s);

  // A dropped update (train.nonfinite: skip) is still a step: plugins' per-step bookkeeping
  // runs, only the optimizer does not.
  const bool update = agree_on_step(loss);
  engine_->run(Phase::BeforeOptimizerStep, s);
  if (update) optimizer_->step(s.lr);
  engine_->run(Phase::AfterOptimizerStep, s);
  s.step += 1;
  reporter_.step_done(loss, n, update);
}

Batch Trainer::device_batch(State& s) {
  std::optional<DeviceFeed::Transfer> ahead = std::move(ahead_);
  ahead_.reset();
  if (ahead && ahead_step_ == s.step) return feed_->finish(std::move(*ahead));
  return feed_->copy(next_batch_(s));
}

void Trainer::copy_ahead(int64_t step) {
  // Only the data source's batches are a function of the step alone (core/data_source.h); a
  // plugin's may depend on what this step does. On CPU there is nothing to overlap.
  if (!feed_->asynchronous() || dealt_by_plugin_ || step >= options_.steps) return;
  ahead_ = feed_->start(data_->train_batch(step));
  ahead_step_ = step;
}

void Trainer::forward_backward(bool last_micro_batch, double share) {
  State& s = state_;
  // The forward pass and the loss in the run's precision (train.precision: autocast; nothing in
  // fp32). Plugins' hooks run outside it: one that merges or evaluates models between steps
  // does so in fp32, and autocast's cache of cast weights never outlives a weight change.
  engine_->run(Phase::BeforeForward, s);
  {
    const Autocast cast = precision_.autocast();
    s.outputs = model_->forward(s.batch.inputs);
  }
  engine_->run(Phase::AfterForward, s);

  engine_->run(Phase::BeforeLoss, s);
  {
    const Autocast cast = precision_.autocast();
    s.loss = classification_loss(s.outputs, s.batch);
  }
  engine_->run(Phase::AfterLoss, s);

  engine_->run(Phase::BeforeBackward, s);
  if (last_micro_batch) averaging_->begin_backward(s);  // buckets go out as backward fills them
  // Each micro-batch's mean loss weighted by its share of the step's samples: the gradients
  // add up to those of the whole batch's mean loss (times the averaging's backward scale and
  // fp16's loss scale, which the step agreement's check divides out again).
  const double seed = share * averaging_->backward_scale() * precision_.loss_scale();
  (seed == 1.0 ? s.loss : s.loss * seed).backward();
  engine_->run(Phase::AfterBackward, s);
}

// One all-reduce before the update: a NaN or Inf loss or gradient on any rank (every rank
// skips the update, or the run stops: train.nonfinite), fp16's gradient overflow on any rank
// (every rank skips the update and backs off the loss scale), a stop request on any rank (every
// rank stops after this step), and the flags plugins added.
bool Trainer::agree_on_step(double loss) {
  precision_.unscale(state_);
  nonfinite_.check(state_, loss, /*gradients=*/!precision_.checks_gradients());
  agreement_.raise(stop_flag_, options_.stop_source(state_));
  agreement_.agree(comm_);
  agreed_stop_signal_ = static_cast<int>(agreement_.value(stop_flag_));
  const bool scaled = precision_.allows_update();
  return nonfinite_.allows_update(state_) && scaled;
}

std::vector<SplitMetrics> Trainer::run_evaluation() {
  CollectiveContext ctx(concat("evaluation at step ", state_.step));
  averaging_->sync_buffers(state_);
  std::vector<SplitMetrics> metrics = evaluate(*model_, *data_, averaging_->evaluation_comm(state_),
                                               options_.eval_batch_size, state_.device, state_.predict);
  state_.metrics.clear();
  engine_->run(Phase::Evaluation, state_);
  precision_.report(state_);
  reporter_.evaluation(state_, metrics, data_->domains(), nonfinite_.take_skipped());
  return metrics;
}

void Trainer::print_table(const std::vector<SplitMetrics>& metrics) const { reporter_.table(metrics, data_->domains()); }

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
  ck.init_from = state_.init_from;
  // Every rank's generator state and training-loss window, gathered to every rank (rank 0 writes).
  ck.rng = comm_.all_gather(at::detail::getDefaultCPUGenerator().get_state());
  ck.trainer["loss_window"] = comm_.all_gather(reporter_.window());
  precision_.save(ck.trainer);
  last_checkpoint_step_ = state_.step;
  if (comm_.rank() != 0) return;
  ck.model = module_state(*model_);
  ck.optimizer = optimizer_->state_dict();
  averaging_->save(ck.averaging);
  for (const auto& algo : engine_->algorithms()) algo->save(ck.plugins[algo->name()]);
  write_checkpoint((fs::path(options_.run_dir) / checkpoint_name(state_.step)).string(), ck);
  const auto all = list_checkpoints(options_.run_dir);
  for (size_t i = static_cast<size_t>(options_.keep_checkpoints); i < all.size(); ++i) remove_checkpoint(all[i]);
}

}  // namespace oodt
