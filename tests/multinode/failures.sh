# Failures across hosts: a rank killed on host 1 ends the job with the dead rank named, and
# host 1's link cut mid-run makes the watchdog (dist.timeout_s) name the unreachable rank.
source "$(dirname "$0")/common.sh" "$@"
LONG=(--set train.steps=100000 --set train.eval_every=0 --set train.checkpoint_every=0 --set train.log_every=20)

# SIGKILL to world rank 3, the second rank on host 1 (2 hosts x 2 ranks, by slot).
cluster_up 2 2
set +e
bash "$CLUSTER" run -- -np 4 "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/kill" "${LONG[@]}" \
  > "$WORK/kill.log" 2>&1 &
job=$!
set -e
wait_for_steps "$WORK/kill.log"
victim=$(rank_pid 3) || fail "rank 3 not found"
[ "$(ip netns identify "$victim")" = oodt-h1 ] || fail "rank 3 is not on host 1"
kill -KILL "$victim"
start=$(date +%s)
set +e; timeout 60 tail --pid="$job" -f /dev/null; job_ended "$job"; wait "$job"; code=$?; set -e
elapsed=$(( $(date +%s) - start ))
[ "$code" -ne 0 ] || fail "the job exited 0 after rank 3 was killed"
[ "$elapsed" -le 30 ] || fail "the job took ${elapsed}s to end after rank 3 was killed"
grep -qE "rank 3 .*on node oodt-h1 exited on signal 9" "$WORK/kill.log" || { cat "$WORK/kill.log"; fail "the dead rank is not named"; }
echo "rank 3 killed on host 1: job ended in ${elapsed}s, exit $code"

# Host 1's link down (2 hosts x 1 rank): rank 0 waits in a collective, its watchdog asks every
# rank where it is, and names rank 1, which cannot answer. mpirun cannot reach its daemon on
# host 1 either, so the job ends once the link is back (as after a real network blip).
cluster_up 2 1
set +e
bash "$CLUSTER" run -- -np 2 "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/link" "${LONG[@]}" \
  --set dist.timeout_s=10 > "$WORK/link.log" 2>&1 &
job=$!
set -e
wait_for_steps "$WORK/link.log"
bash "$CLUSTER" link 1 down
start=$(date +%s)
for _ in $(seq 120); do grep -q "rank(s) 1 did not answer" "$WORK/link.log" && break; sleep 0.5; done
named=$(( $(date +%s) - start ))
expect_contains "$WORK/link.log" "watchdog [rank 0/2]: waited 1"
expect_contains "$WORK/link.log" "rank(s) 1 did not answer within 5 s"
# timeout_s, then up to 5 s for the answers, plus the 0.2 s polls
[ "$named" -le 20 ] || fail "the watchdog named rank 1 ${named}s after the link went down (dist.timeout_s 10)"
bash "$CLUSTER" link 1 up
set +e; timeout 60 tail --pid="$job" -f /dev/null; job_ended "$job"; wait "$job"; code=$?; set -e
[ "$code" -ne 0 ] || fail "the job exited 0 after the link was cut"
echo "host 1 link down: watchdog named rank 1 after ${named}s, job ended (exit $code) after the link came back"
echo "1 passed, 0 failed"
