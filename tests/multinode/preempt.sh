# Preemption across hosts (2 hosts x 2 ranks): SIGUSR1 on a rank of host 1 (injected at a known
# step) stops every rank after that step with a checkpoint and exit code 75, and --resume ends
# bit-identical to an uninterrupted run; SIGUSR1 to mpirun (forwarded to every rank on every
# host, as Slurm signals the job step) does the same mid-run.
source "$(dirname "$0")/common.sh" "$@"
cluster_up 2 2
run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np 4 "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full"
# Rank 2 (host 1) gets SIGUSR1 after step 6. -x: how the variable reaches remote ranks under ssh.
OODT_INJECT_SIGNAL=2:6:10 run_expect 75 "$WORK/o" -- bash "$CLUSTER" run -- -np 4 -x OODT_INJECT_SIGNAL \
  "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part"
expect_contains "$WORK/o" "stopped by signal 10 after step 6 with a checkpoint"
[ -f "$WORK/part/ckpt_000000006.h5" ] || fail "no checkpoint at the step where the signal arrived"
run_expect 0 "$WORK/o" -- bash "$CLUSTER" run -- -np 4 "$OODTRAIN" train -c "$WORK/tiny.yaml" \
  --set run.dir="$WORK/part" --resume
cmp_ckpt "$WORK/full/ckpt_000000024.h5" "$WORK/part/ckpt_000000024.h5" || fail "resumed after SIGUSR1, not bit-identical"

# A real SIGUSR1 to mpirun during a long run.
set +e
bash "$CLUSTER" run -- -np 4 "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/long" \
  --set train.steps=100000 --set train.eval_every=0 --set train.checkpoint_every=0 --set train.log_every=20 \
  > "$WORK/long.log" 2>&1 &
job=$!  # `run` execs into mpirun: this is mpirun's pid
set -e
wait_for_steps "$WORK/long.log"
[ "$(cat "/proc/$job/comm")" = mpirun ] || fail "pid $job is $(cat "/proc/$job/comm"), not mpirun"
kill -USR1 "$job"
set +e; timeout 60 tail --pid="$job" -f /dev/null; job_ended "$job"; wait "$job"; code=$?; set -e
[ "$code" -eq 75 ] || { cat "$WORK/long.log"; fail "exit code $code after SIGUSR1, expected 75"; }
expect_contains "$WORK/long.log" "stopped by signal 10"
ls "$WORK/long"/ckpt_*.h5 > /dev/null || fail "no checkpoint after SIGUSR1"
echo "1 passed, 0 failed"
