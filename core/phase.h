#pragma once
// The phases of training: the backbone every algorithm plugin hooks into.
//
// The trainer's loop, in pseudocode (core/trainer.cpp reads the same way):
//
//   run(FitStart)                          // plugins set up; averaging.setup() syncs rank 0's
//                                          //   parameters and buffers to every rank
//   while step < steps:
//     batch = data.train_batch(step)       // balanced over training domains, sharded per rank
//                                          //   (read ahead on a thread: data/prefetch.h)
//     for each micro-batch (train.accumulate, 1 by default):
//       run(BeforeForward);  outputs = model(batch.inputs);        run(AfterForward)
//       run(BeforeLoss);     loss = cross_entropy(outputs, targets); run(AfterLoss)
//       run(BeforeBackward); [last: averaging.begin_backward()]    // buckets leave during
//                            loss.backward();                      run(AfterBackward)
//     run(BeforeAveraging); averaging.average();                 run(AfterAveraging)
//     run(BeforeOptimizerStep); optimizer.step(lr(step));        run(AfterOptimizerStep)
//     step += 1
//     if the epoch changed:        run(EpochEnd)
//     if step % eval_every == 0:   evaluate every domain's in/out split; run(Evaluation)
//     if step % checkpoint_every == 0: run(Checkpoint); write checkpoint (plugin state included)
//     if a stop signal reached any rank (one all-reduce): write checkpoint; stop (exit code 75)
//   run(FitEnd)
//
// Ordering: on Before* phases (and the unpaired ones) plugins run in config order; on After*
// phases in reverse config order, so a plugin that wraps something undoes it last-in-first-out.
#include <bitset>
#include <initializer_list>
#include <string>

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
using PhaseSet = std::bitset<kNumPhases>;

inline PhaseSet phases(std::initializer_list<Phase> list) {
  PhaseSet s;
  for (Phase p : list) s.set(static_cast<int>(p));
  return s;
}

// True for After* phases, which run plugins in reverse order.
bool is_after_phase(Phase p);
// snake_case name, e.g. "before_forward".
const char* phase_name(Phase p);

}  // namespace oodt
