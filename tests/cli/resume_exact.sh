# Determinism on CPU: two runs with the same seed and world size write bit-identical
# checkpoints; interrupted and resumed runs end bit-identical to an uninterrupted one (one
# process and two ranks, interrupted mid-epoch, twice; and on 2 ranks at several more points,
# a checkpoint boundary and the step before the end included).
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
ALGOS='algorithms=[mixup, label_smoothing]'   # plugins draw random numbers too

for np in 1 2; do
  launch=("$OODTRAIN")
  [ "$np" -eq 1 ] || launch=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
  run_expect 0 "$WORK/log_full$np" -- "${launch[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full$np" --set "$ALGOS"
  run_expect 0 "$WORK/log_a$np" -- "${launch[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part$np" --set "$ALGOS" --stop-at-step 5
  expect_contains "$WORK/log_a$np" "stopped at step 5"
  run_expect 0 "$WORK/log_b$np" -- "${launch[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part$np" --set "$ALGOS" --resume --stop-at-step 19
  expect_contains "$WORK/log_b$np" "resuming from"
  run_expect 0 "$WORK/log_c$np" -- "${launch[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part$np" --set "$ALGOS" --resume
  cmp "$WORK/full$np/ckpt_000000024.h5" "$WORK/part$np/ckpt_000000024.h5" || fail "resume not exact with $np rank(s)"
done
# The same run again: bit-identical, on 1 and 2 ranks.
for np in 1 2; do
  launch=("$OODTRAIN")
  [ "$np" -eq 1 ] || launch=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
  run_expect 0 "$WORK/o" -- "${launch[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/again$np" --set "$ALGOS"
  cmp "$WORK/full$np/ckpt_000000024.h5" "$WORK/again$np/ckpt_000000024.h5" || fail "same seed, $np rank(s): not bit-identical"
done
# Stopped at 1, 8 (a checkpoint boundary), 13 and 23, resumed each time.
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
for stop in 1 8 13 23; do
  run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/many" --set "$ALGOS" --resume \
    --stop-at-step "$stop"
done
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/many" --set "$ALGOS" --resume
cmp "$WORK/full2/ckpt_000000024.h5" "$WORK/many/ckpt_000000024.h5" || fail "resumed at 1, 8, 13, 23: not bit-identical"
# The comparison can fail: a different seed gives different weights.
run_expect 0 "$WORK/log_other" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/other" --set "$ALGOS" --set run.seed=4
if cmp "$WORK/full1/ckpt_000000024.h5" "$WORK/other/ckpt_000000024.h5" > /dev/null; then fail "seeds 3 and 4 gave equal weights"; fi
echo "1 passed, 0 failed"
