# A bad config under mpirun: every rank fails with the same message, non-zero exit, no hang.
source "$(dirname "$0")/common.sh" "$@"
start=$(date +%s)
set +e
timeout 60 "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" --set optim.momentum=1.5 > "$WORK/o" 2>&1
code=$?
set -e
[ "$code" -ne 124 ] || fail "mpirun hung (timeout)"
[ "$code" -ne 0 ] || fail "expected a non-zero exit"
for r in 0 1; do
  expect_contains "$WORK/o" "oodtrain: error [rank $r/2]: optim.momentum: must be in [0, 1)"
done
# A data error (the file is missing) is agreed the same way.
set +e
timeout 60 "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train -c "$WORK/tiny.yaml" --set data.path=/nonexistent.h5 > "$WORK/o" 2>&1
code=$?
set -e
[ "$code" -ne 0 ] && [ "$code" -ne 124 ] || fail "exit $code"
expect_contains "$WORK/o" "[rank 1/2]: /nonexistent.h5: file not found"
echo "took $(( $(date +%s) - start )) s"
echo "1 passed, 0 failed"
