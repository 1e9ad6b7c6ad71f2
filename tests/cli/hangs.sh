# A rank stopped with SIGSTOP mid-run: the other rank's watchdog (dist.timeout_s) asks every rank
# where it is, names the one that does not answer, and the job ends non-zero.
source "$(dirname "$0")/common.sh" "$@"
"$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/run" \
  --set train.steps=100000 --set train.eval_every=0 --set train.checkpoint_every=0 --set dist.timeout_s=4 \
  > "$WORK/o" 2>&1 &
job=$!
# Rank 1's process of this job (its run folder is this test's own: under ctest -j other tests
# run oodtrain too), found from its environment.
victim=
for _ in $(seq 150); do
  for p in $(pgrep -f "$OODTRAIN train -c $WORK/tiny.yaml" || true); do
    if tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$p; fi
  done
  [ -n "$victim" ] && grep -q "^step " "$WORK/o" && break
  sleep 0.2
done
[ -n "$victim" ] || { kill "$job"; cat "$WORK/o"; fail "rank 1 did not start"; }
kill -STOP "$victim"
start=$(date +%s)
set +e
timeout 60 tail --pid="$job" -f /dev/null
wait "$job"
code=$?
set -e
elapsed=$(( $(date +%s) - start ))
kill -KILL "$victim" 2> /dev/null || true
[ "$code" -ne 0 ] || fail "the job exited 0"
[ "$elapsed" -le 30 ] || fail "the job took ${elapsed}s to end after rank 1 stopped"
expect_contains "$WORK/o" "watchdog [rank 0/2]: waited"
expect_contains "$WORK/o" "rank(s) 1 did not answer within 5 s: stopped (SIGSTOP)"
echo "rank 1 stopped: rank 0 named it, job ended in ${elapsed}s, exit $code"
echo "1 passed, 0 failed"
