# Interrupted and resumed runs end bit-identical to an uninterrupted one: one process and
# two ranks, interrupted mid-epoch, twice.
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
# The comparison can fail: a different seed gives different weights.
run_expect 0 "$WORK/log_other" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/other" --set "$ALGOS" --set run.seed=4
if cmp "$WORK/full1/ckpt_000000024.h5" "$WORK/other/ckpt_000000024.h5" > /dev/null; then fail "seeds 3 and 4 gave equal weights"; fi
echo "1 passed, 0 failed"
