// The run, train, log and dist sections; optim and schedule are read by their owners (core/optim.h).
#include <cmath>

#include "core/config.h"
#include "core/trainer.h"

namespace oodt {

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
    o.log_every_s = train.get("log_every_s", o.log_every_s);
    o.eval_batch_size = train.get("eval_batch_size", o.eval_batch_size);
    o.device = train.one_of("device", o.device, {"auto", "cpu", "cuda"});
    o.threads = train.get("threads", o.threads);
    o.channels_last = train.get("channels_last", o.channels_last);
    o.cudnn_benchmark = train.get("cudnn_benchmark", o.cudnn_benchmark);
    o.nonfinite.policy = train.one_of<NonFinitePolicy>("nonfinite", o.nonfinite.policy,
                                                       {{"abort", NonFinitePolicy::Abort}, {"skip", NonFinitePolicy::Skip}});
    o.nonfinite.max_consecutive_skips = train.get("max_consecutive_skips", o.nonfinite.max_consecutive_skips);
    o.nonfinite.max_skipped_fraction = train.get("max_skipped_fraction", o.nonfinite.max_skipped_fraction);
    train.check(o.nonfinite.max_consecutive_skips >= 0, "max_consecutive_skips", "must be >= 0");
    train.check(o.nonfinite.max_skipped_fraction >= 0 && o.nonfinite.max_skipped_fraction <= 1, "max_skipped_fraction",
                "must be in [0, 1]");
    o.accumulate = train.get("accumulate", o.accumulate);
    o.precision = PrecisionOptions::from_config(train);  // precision, loss_scale.*
    train.check(o.accumulate >= 1, "accumulate", "must be >= 1 (micro-batches per step)");
    train.check(o.threads >= 0 && o.threads <= 1024, "threads", "must be in [0, 1024] (0: cores per rank)");
    train.check(o.steps > 0, "steps", "must be > 0");
    train.check(o.eval_every >= 0, "eval_every", "must be >= 0 (0: evaluate only at the end)");
    train.check(o.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: only at the end)");
    train.check(o.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
    train.check(o.log_every >= 0, "log_every", "must be >= 0 (0: no progress lines by step count)");
    train.check(o.log_every_s >= 0 && std::isfinite(o.log_every_s), "log_every_s",
                "must be >= 0 seconds (0: no progress lines by time)");
    train.check(o.eval_batch_size > 0, "eval_batch_size", "must be > 0");
    train.finish();
  }
  {
    ConfigReader log = root.child("log");
    o.log.tensorboard = log.get("tensorboard", o.log.tensorboard);
    o.log.csv = log.get("csv", o.log.csv);
    log.finish();
  }
  {
    ConfigReader init = root.child("init");
    o.init.from = init.get("from", o.init.from);
    o.init.skip = init.get("skip", o.init.skip);
    o.init.head = init.one_of("head", o.init.head, {"auto", "keep", "reset"});
    o.init.head_from = init.get("head_from", o.init.head_from);
    init.finish();
  }
  ConfigReader dist = root.child("dist");
  o.dist = DistOptions::from_config(dist);
  ConfigReader optim = root.child("optim");
  o.optim = OptimOptions::from_config(optim);
  ConfigReader schedule = root.child("schedule");
  o.schedule = ScheduleOptions::from_config(schedule);
  return o;
}

}  // namespace oodt
