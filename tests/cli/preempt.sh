# Stopping on a signal (SIGUSR1 or SIGTERM, what Slurm sends before a time limit or on
# preemption): every rank stops after the same step, a checkpoint is written, the exit code is
# 75, and --resume ends bit-identical to an uninterrupted run.
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
ALGOS='algorithms=[mixup, label_smoothing]'
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full" --set "$ALGOS"
# Rank 1 alone receives SIGUSR1 after step 6 (injected, so the step is known): both ranks stop there.
OODT_INJECT_SIGNAL=1:6:10 run_expect 75 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" \
  --set run.dir="$WORK/part" --set "$ALGOS"
expect_contains "$WORK/o" "stopped by signal 10 after step 6 with a checkpoint"
[ -f "$WORK/part/ckpt_000000006.h5" ] || fail "no checkpoint at the step where the signal arrived"
# SIGTERM on rank 0 after step 15 (mid-epoch), then the rest.
OODT_INJECT_SIGNAL=0:15:15 run_expect 75 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" \
  --set run.dir="$WORK/part" --set "$ALGOS" --resume
expect_contains "$WORK/o" "stopped by signal 15 after step 15"
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" --set "$ALGOS" --resume
cmp "$WORK/full/ckpt_000000024.h5" "$WORK/part/ckpt_000000024.h5" || fail "resumed after signals, not bit-identical"

# A real signal sent to mpirun (which forwards SIGUSR1 to every rank) during a long run.
set +e
"${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/long" --set train.steps=100000 \
  --set train.eval_every=0 --set train.checkpoint_every=0 > "$WORK/long.log" 2>&1 &
pid=$!
for _ in $(seq 60); do grep -q "step " "$WORK/long.log" 2>/dev/null && break; sleep 0.5; done
sleep 1
kill -USR1 "$pid"
timeout 60 tail --pid="$pid" -f /dev/null
wait "$pid"; code=$?
set -e
[ "$code" -eq 75 ] || { cat "$WORK/long.log"; fail "exit code $code after SIGUSR1, expected 75"; }
expect_contains "$WORK/long.log" "stopped by signal 10"
ls "$WORK/long"/ckpt_*.h5 > /dev/null || fail "no checkpoint after SIGUSR1"
echo "1 passed, 0 failed"
