#pragma once
// The phases of training: the backbone every algorithm plugin hooks into.
//
// The trainer's loop, in pseudocode (core/trainer.cpp reads the same way):
//
//   prepare_model                          // (when the trainer is built) plugins swap layers
//                                          //   (module surgery), then the optimizer is made
//   run(FitStart)                          // plugins set up; averaging.setup() syncs rank 0's
//                                          //   parameters and buffers to every rank
//   while step < steps:
//     batch = data.train_batch(step)       // balanced over training domains, sharded per rank
//                                          //   (read ahead on a thread: data/prefetch.h), or
//                                          //   the plugin that deals batches
//     for each micro-batch (train.accumulate, 1 by default):
//       run(BeforeForward);  outputs = model(batch.inputs);        run(AfterForward)
//       run(BeforeLoss);     loss = cross_entropy(outputs, targets); run(AfterLoss)
//       run(BeforeBackward); [last: averaging.begin_backward()]    // buckets leave during
//                            loss.backward();                      run(AfterBackward)
//     run(BeforeAveraging); averaging.average();                 run(AfterAveraging)
//     agree (one all-reduce): a non-finite loss or gradient? a stop signal? plugins' flags?
//     run(BeforeOptimizerStep); optimizer.step(lr(step));        run(AfterOptimizerStep)
//     step += 1
//     if the epoch changed:        run(EpochEnd)
//     if step % eval_every == 0:   evaluate every domain's in/out split; run(Evaluation)
//     if step % checkpoint_every == 0 or a stop was agreed: run(Checkpoint); write checkpoint
//     if a stop was agreed:        stop (exit code 75)
//   run(FitEnd)
//
// Ordering: on Before* phases (and the unpaired ones) plugins run in config order; on After*
// phases in reverse config order, so a plugin that wraps something undoes it last-in-first-out.

namespace oodt {

enum class Phase : int {
  FitStart,
  BeforeForward,
  AfterForward,
  BeforeLoss,
  AfterLoss,
  BeforeBackward,
  AfterBackward,
  BeforeAveraging,
  AfterAveraging,
  BeforeOptimizerStep,
  AfterOptimizerStep,
  EpochEnd,
  Evaluation,
  Checkpoint,
  FitEnd,
  kCount
};

constexpr int kNumPhases = static_cast<int>(Phase::kCount);
// True for After* phases, which run plugins in reverse order.
bool is_after_phase(Phase p);
// snake_case name, e.g. "before_forward".
const char* phase_name(Phase p);

}  // namespace oodt
