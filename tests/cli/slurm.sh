# Sweeps on a real (single-node, local) Slurm: a 4-run array with 2 ranks per run; a run
# preempted by SIGUSR1 that stops with a checkpoint, requeues itself, resumes and ends
# bit-identical to the same run made without Slurm; and a time limit and a scancel, each under
# mpirun and under srun inside sbatch. Needs the cluster of
# scripts/slurm_local.sh (scripts/test.sh starts and stops it; SLURM_CONF points at it).
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
command -v sbatch > /dev/null && sinfo -h > /dev/null 2>&1 \
  || fail "no Slurm cluster answers (start one with scripts/slurm_local.sh start and export SLURM_CONF)"
sed -i 's/steps: 24, eval_every: 12, checkpoint_every: 8/steps: 8, eval_every: 8, checkpoint_every: 4/' "$WORK/tiny.yaml"
job_state() { scontrol show job "$1" 2> /dev/null | grep -o "JobState=[A-Z]*" | head -1; }
# Wait until `sweep status` reports N runs in STATE, at most T seconds.
wait_for() {
  local sweep=$1 want=$2 t=$3
  for _ in $(seq "$t"); do
    "$OODTRAIN" sweep status "$sweep" 2>&1 | tail -1 | grep -qF "$want" && return 0
    sleep 1
  done
  "$OODTRAIN" sweep status "$sweep"; squeue; slurm_evidence; fail "sweep $sweep did not reach '$want' in $t s"
}
# What Slurm saw, for a failure's report: the jobs' output files and the controller's log.
slurm_evidence() {
  local f log=${OODT_SLURM_DIR:-/tmp/oodt-slurm}/log
  for f in "$WORK"/*/slurm/*.out; do [ -e "$f" ] && { echo "== $f"; tail -n 20 "$f"; }; done
  [ -e "$log/jobcomp.txt" ] && { echo "== jobcomp"; tail -n 8 "$log/jobcomp.txt"; }
  [ -e "$log/slurmctld.log" ] && { echo "== slurmctld.log"; tail -n 40 "$log/slurmctld.log"; }
  return 0
}

cat > "$WORK/s.yaml" <<YAML
out: $WORK/array
base: [$WORK/tiny.yaml]
grid: {algorithms: [[], [mixup]]}
seeds: [0, 1]
YAML
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep slurm "$WORK/s.yaml" --ntasks-per-run 2 --time 00:05:00 --max-parallel 1
expect_contains "$WORK/o" "4 array tasks"
expect_contains "$WORK/array/slurm/array.sh" "#SBATCH --array=0-3%1"
expect_contains "$WORK/array/slurm/array.sh" "#SBATCH --signal=B:USR1@120"
wait_for "$WORK/s.yaml" "4 runs in $WORK/array: 4 done" 180
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/array"
expect_contains "$WORK/o" "| algorithms=[mixup] |"

# Preemption: SIGUSR1 to the batch shell of a long run; it forwards the signal, the ranks stop
# with a checkpoint (exit 75) and the task requeues itself. Slurm holds a requeued job back
# for cred_expire (2 minutes) because slurmd refuses a credential made in or before the second
# it revoked the job's last one ("Job credential revoked"); the test moves the start a few
# seconds past the requeue instead of waiting, never into the revocation's second.
cat > "$WORK/p.yaml" <<YAML
out: $WORK/pre
base: [$WORK/tiny.yaml]
set: {train.steps: 1500, train.eval_every: 0, train.checkpoint_every: 0}
YAML
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep slurm "$WORK/p.yaml" --ntasks-per-run 2 --time 00:05:00
job=$(tail -1 "$WORK/o")
run=$(ls -d "$WORK"/pre/*/ | grep -v /slurm/)
for _ in $(seq 120); do grep -q "step " "$run/log.txt" 2>/dev/null && break; sleep 0.5; done
scancel --batch --signal=USR1 "${job}_0"
for _ in $(seq 60); do [ -e "$run/stopped" ] && break; sleep 0.5; done
[ -e "$run/stopped" ] || { cat "$run/log.txt"; fail "the preempted run did not stop with a checkpoint"; }
# The task requeues itself once mpirun has exited (about 20 s after the stop, docs/slurm.md).
for _ in $(seq 120); do [ "$(job_state "${job}_0")" = JobState=PENDING ] && break; sleep 1; done
[ "$(job_state "${job}_0")" = JobState=PENDING ] \
  || { scontrol show job "${job}_0"; slurm_evidence; fail "the stopped task was not requeued within 120 s"; }
scontrol update JobId="${job}_0" StartTime=now+5
wait_for "$WORK/p.yaml" "1 runs in $WORK/pre: 1 done" 180
expect_contains "$run/log.txt" "stopped by signal 10"
expect_contains "$run/log.txt" "resuming from"
# The same run without Slurm or interruption, in another folder (same hash).
sed "s|$WORK/pre|$WORK/local|" "$WORK/p.yaml" > "$WORK/l.yaml"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/l.yaml" --ranks-per-run 2 --oversubscribe
cmp "$run/ckpt_000001500.h5" "$WORK/local/$(basename "$run")/ckpt_000001500.h5" || fail "preempted run differs"
# Signals the job gets from Slurm itself, for both launchers (each case runs alone: the
# node has the CPUs of one 2-rank job).
#  - Time limit: `--signal=B:USR1@115` with a 2-minute limit reaches the batch shell 5-35 s in
#    (slurmctld checks limits every 30 s); the shell forwards it, the ranks stop with a
#    checkpoint (exit 75) and the task requeues itself.
#  - scancel: TERM to every process of the job, ranks included (and USR1 through the batch
#    shell and the launcher); they stop with a checkpoint
#    within KillWait (5 s here) and the job stays cancelled. mpirun exits 1 when signalled, so
#    the run's own `stopped` mark is what says the ranks got their checkpoint out.
for launcher in mpirun srun; do
  for how in time_limit scancel; do
    cat > "$WORK/$how-$launcher.yaml" <<YAML
out: $WORK/$how-$launcher
base: [$WORK/tiny.yaml]
set: {train.steps: 300000, train.eval_every: 0, train.checkpoint_every: 0}
YAML
    if [ "$how" = time_limit ]; then args=(--time 00:02:00 --signal-seconds 115); else args=(--time 00:05:00); fi
    run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep slurm "$WORK/$how-$launcher.yaml" --ntasks-per-run 2 \
      --launcher "$launcher" "${args[@]}"
    job=$(tail -1 "$WORK/o")_0
    run=$(ls -d "$WORK/$how-$launcher"/*/ | grep -v /slurm/)
    if [ "$how" = scancel ]; then
      for _ in $(seq 120); do grep -q "step " "$run/log.txt" 2> /dev/null && break; sleep 0.5; done
      scancel "$job"
      # TERM reaches the ranks from Slurm and, turned into USR1, from the batch shell through
      # the launcher: whichever comes first stops them.
      want_signal='1[05]' want_state=JobState=CANCELLED
    else
      want_signal=10 want_state=JobState=PENDING  # requeued, held back by Slurm
    fi
    for _ in $(seq 100); do [ -e "$run/stopped" ] && break; sleep 1; done
    [ -e "$run/stopped" ] || { cat "$run/log.txt" || true; fail "$launcher, $how: the run did not stop with a checkpoint"; }
    for _ in $(seq 60); do [ "$(job_state "$job")" = "$want_state" ] && break; sleep 1; done
    [ "$(job_state "$job")" = "$want_state" ] || { cat "$run/log.txt"; fail "$launcher, $how: job is $(job_state "$job"), expected $want_state"; }
    grep -qE "stopped by signal $want_signal after step" "$run/stopped" ||
      { cat "$run/stopped"; fail "$launcher, $how: stopped by another signal than $want_signal"; }
    step=$(grep -o "after step [0-9]*" "$run/stopped" | grep -o "[0-9]*$")
    [ -e "$run/$(printf 'ckpt_%09d.h5.sum' "$step")" ] || { ls "$run"; fail "$launcher, $how: no verified checkpoint at step $step"; }
    scancel "$job" 2> /dev/null || true  # the requeued one
    for _ in $(seq 30); do [ -z "$(squeue -h -j "$job" 2> /dev/null)" ] && break; sleep 0.5; done
    run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep status "$WORK/$how-$launcher.yaml"
    expect_contains "$WORK/o" "1 stopped"
    echo "$launcher, $how: $(cat "$run/stopped"); job was $want_state"
  done
done

echo "1 passed, 0 failed"
