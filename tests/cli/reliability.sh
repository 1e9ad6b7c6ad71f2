# Failing loudly and fast: non-finite losses under both policies, a rank killed mid-training
# (the other exits within the bound, and the dead rank is named), a truncated newest
# checkpoint (resume falls back to the previous one).
source "$(dirname "$0")/common.sh" "$@"
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")

# Non-finite: a learning rate that overflows the weights after the first update.
run_expect 1 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set optim.lr=1.0e+30 --set run.dir="$WORK/nan"
expect_contains "$WORK/o" "non-finite"
grep -qE "step [0-9]+: non-finite (loss \((-?nan|-?inf)\)|gradient of '[^']+' .*) on rank [01]" "$WORK/o" ||
  { cat "$WORK/o"; fail "the abort message does not name the step, what was not finite and the rank"; }
# `skip` gives up on a run whose updates keep failing, and says each skip on stderr.
run_expect 1 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set optim.lr=1.0e+30 --set run.dir="$WORK/diverge" \
  --set train.nonfinite=skip
expect_contains "$WORK/o" "update skipped"
grep -qE "updates in a row were skipped|more than train.max_skipped_fraction" "$WORK/o" ||
  { cat "$WORK/o"; fail "a diverging run under train.nonfinite: skip did not stop"; }
# With the limits lifted it runs to the end; skipped steps leave no Inf in the BatchNorm
# statistics (the step's buffer updates are dropped with its update).
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set optim.lr=1.0e+30 --set run.dir="$WORK/skip" \
  --set train.nonfinite=skip --set train.max_consecutive_skips=1000 --set train.max_skipped_fraction=1
"$PYTHON" - "$WORK/skip" <<'PY'
import json, sys, h5py, numpy as np
lines = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.strip()]
skipped = sum(l["skipped_steps"] for l in lines)
assert 1 <= skipped <= 24, skipped
m = h5py.File(sys.argv[1] + "/ckpt_000000024.h5")["model"]
for name in m:
    if "running_" in name:
        assert np.isfinite(m[name][()]).all(), name
print("skipped", skipped, "and the BatchNorm statistics are finite")
PY

# A rank killed with SIGKILL mid-training: mpirun takes the job down, exit non-zero, within
# 60 s, and says which rank died.
set +e
"${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/kill" --set train.steps=100000 \
  --set train.eval_every=0 --set train.checkpoint_every=0 > "$WORK/kill.log" 2>&1 &
pid=$!
for _ in $(seq 60); do grep -q "step " "$WORK/kill.log" 2>/dev/null && break; sleep 0.5; done
victim=$(pgrep -f "oodtrain train -c $WORK/tiny.yaml --set run.dir=$WORK/kill" | while read p; do
  [ "$(cat /proc/$p/environ 2>/dev/null | tr '\0' '\n' | grep -c '^OMPI_COMM_WORLD_RANK=1$')" = 1 ] && echo "$p"; done)
[ -n "$victim" ] || { cat "$WORK/kill.log"; fail "rank 1 not found"; }
start=$(date +%s)
kill -9 "$victim"
timeout 90 tail --pid="$pid" -f /dev/null
wait "$pid"; code=$?
elapsed=$(( $(date +%s) - start ))
set -e
[ "$code" -ne 0 ] || fail "the job exited 0 after rank 1 was killed"
[ "$elapsed" -le 60 ] || fail "the job took ${elapsed}s to end after rank 1 died (bound 60 s)"
grep -qE "rank 1 .*(exited on signal 9|Killed)" "$WORK/kill.log" || { cat "$WORK/kill.log"; fail "the dead rank is not named"; }
echo "rank 1 killed: job ended in ${elapsed}s, exit $code"

# Killed (SIGKILL) half-way through writing the step-16 checkpoint: the step-8 one is intact,
# --resume uses it (the partial .tmp is never taken for a checkpoint) and the run ends
# bit-identical to an uninterrupted one.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/whole"
OODT_INJECT_CHECKPOINT_KILL=16 run_expect 137 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/killed"
[ -f "$WORK/killed/ckpt_000000016.h5.tmp" ] || fail "no partial checkpoint: the kill did not happen during the write"
[ ! -f "$WORK/killed/ckpt_000000016.h5" ] || fail "a partial checkpoint took the real name"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/killed" --resume
expect_contains "$WORK/o" "resuming from $WORK/killed/ckpt_000000008.h5 (step 8)"
"$PYTHON" "$SRC/cli/compare_checkpoints.py" "$WORK/whole/ckpt_000000024.h5" "$WORK/killed/ckpt_000000024.h5" ||
  fail "resumed after a kill during a checkpoint write: not bit-identical"

# A truncated newest checkpoint: --resume says so and uses the previous one.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/trunc" --set train.steps=16
truncate -s 2000 "$WORK/trunc/ckpt_000000016.h5"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/trunc" --set train.steps=16 --resume
expect_contains "$WORK/o" "ckpt_000000016.h5: 2000 bytes, its digest"
expect_contains "$WORK/o" "trying the checkpoint before it"
expect_contains "$WORK/o" "resuming from $WORK/trunc/ckpt_000000008.h5 (step 8)"
# A stop signal during set-up (Slurm's TERM before the first step): on 2 ranks, rank 1 alone
# signalled, every rank stops with 75 before training; --resume then runs from step 0.
OODT_INJECT_SIGNAL=1:0:15 run_expect 75 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train \
  -c "$WORK/tiny.yaml" --set run.dir="$WORK/setup_sig"
expect_contains "$WORK/o" "stopped by signal 15 during set-up, before the first step (exit code 75)"
if ls "$WORK/setup_sig"/ckpt_* > /dev/null 2>&1; then fail "a stop during set-up wrote a checkpoint"; fi
run_expect 0 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" \
  --set run.dir="$WORK/setup_sig" --resume
expect_contains "$WORK/o" "eval step 24"
echo "1 passed, 0 failed"
