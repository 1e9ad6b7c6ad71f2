# dist.watchdog: runs watchdog_probe on 2 ranks (rank 0 enters a barrier rank 1 never enters)
# and checks the job ends non-zero within 30 s with each rank's position reported.
set -uo pipefail
start=$(date +%s)
out=$(timeout 60 "${MPIRUN:-mpirun}" -np 2 --oversubscribe "$1" 2>&1)
code=$?
elapsed=$(( $(date +%s) - start ))
echo "$out"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$code" -ne 0 ] || fail "the job exited 0"
[ "$code" -ne 124 ] || fail "the job hung until the test's timeout"
[ "$elapsed" -le 30 ] || fail "the job took ${elapsed}s to end"
echo "$out" | grep -q "rank 0: #[0-9]* barrier (step 3 / after_optimizer_step skip_probe)" ||
  fail "rank 0's ledger does not show the plugin's barrier"
echo "$out" | grep -qE "watchdog \[rank 1/2\]: waited [0-9]+ s .* in collective #[0-9]+ all_reduce \[[0-9]+\] float \(step 4 / averaging\)" ||
  fail "rank 1 does not report where it waits"
echo "watchdog: job ended in ${elapsed}s, exit $code"
