# A run folder holds one run: a fresh run refuses a used folder, --overwrite starts afresh
# there, two runs never share one, a folder that cannot be written fails at set-up, a full disk
# fails the run without a cut metrics line, and a refused set-up leaves nothing behind.
source "$(dirname "$0")/common.sh" "$@"
short=(--set train.steps=8 --set train.eval_every=4 --set train.checkpoint_every=4)

# Fresh, then refused, then --overwrite: the earlier run's checkpoints and metrics are gone.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/r"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/r"
expect_contains "$WORK/o" "holds an earlier run"
touch "$WORK/r/ckpt_000000099.h5" "$WORK/r/notes.txt"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set train.steps=4 --set run.dir="$WORK/r" --overwrite
[ ! -e "$WORK/r/ckpt_000000099.h5" ] || fail "--overwrite kept an earlier checkpoint"
[ -e "$WORK/r/notes.txt" ] || fail "--overwrite removed a file that is not a run's"
[ "$(wc -l < "$WORK/r/metrics.jsonl")" -eq 1 ] || fail "--overwrite appended to the earlier metrics"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/r" --overwrite --resume
expect_contains "$WORK/o" "--overwrite and --resume exclude each other"

# Two runs in one folder at once: the second is refused, naming the first.
"$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/busy" --set train.steps=100000 --set train.eval_every=0 \
  --set train.checkpoint_every=0 > "$WORK/first" 2>&1 &
first=$!
for _ in $(seq 100); do grep -q "^step\|run dir" "$WORK/first" 2>/dev/null && break; sleep 0.2; done
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/busy" --resume
expect_contains "$WORK/o" "$WORK/busy is in use by pid $first on"
kill -TERM "$first"
wait "$first" || true
[ -e "$WORK/busy/config.yaml" ] || fail "the first run's files are gone"

# A refused set-up leaves no folder (made for the run) and changes no file (of an earlier run).
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/none1" --set model.name=mlp \
  --set 'algorithms=[{ghost_batch_norm: {size: 4}}]'
[ ! -e "$WORK/none1" ] || fail "a refused module surgery left $WORK/none1"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/none2" --set 'algorithms=[gaqat]'
[ ! -e "$WORK/none2" ] || fail "a run refused at fit_start left $WORK/none2"
cp "$WORK/r/config.yaml" "$WORK/config.before"
run_expect 1 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/r" --set model.name=mlp --resume
expect_contains "$WORK/o" "model state does not match the configured model"
cmp -s "$WORK/config.before" "$WORK/r/config.yaml" || fail "a refused --resume overwrote config.yaml"

# A read-only folder fails at set-up, naming it (a read-only bind mount: root writes through
# file permissions).
mkdir -p "$WORK/ro"
if mount --bind "$WORK/ro" "$WORK/ro" 2> /dev/null && mount -o remount,bind,ro "$WORK/ro" 2> /dev/null; then
  run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/ro" "${short[@]}"
  umount "$WORK/ro"
  expect_contains "$WORK/o" "run.dir: cannot write in $WORK/ro: Read-only file system"
else
  echo "(no bind mounts here: the read-only case is skipped)"
fi

# A disk that fills (a small tmpfs): the run fails naming the file, and metrics.jsonl holds
# whole lines only.
mkdir -p "$WORK/full"
if mount -t tmpfs -o size=40k tmpfs "$WORK/full" 2> /dev/null; then
  set +e
  "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full" --set train.steps=40 --set train.eval_every=2 \
    --set train.checkpoint_every=0 > "$WORK/o" 2>&1
  code=$?
  set -e
  cp "$WORK/full/metrics.jsonl" "$WORK/metrics.full" 2> /dev/null || true
  umount "$WORK/full"
  [ "$code" -eq 1 ] || { cat "$WORK/o"; fail "a full disk gave exit $code, expected 1"; }
  grep -qE "cannot write $WORK/full/metrics.jsonl: No space left on device|$WORK/full/ckpt_000000040.h5" "$WORK/o" ||
    { cat "$WORK/o"; fail "the error does not name the file that could not be written"; }
  "$PYTHON" -c "import json, sys; [json.loads(l) for l in open(sys.argv[1])]" "$WORK/metrics.full" ||
    fail "metrics.jsonl has a cut line"
else
  echo "(no tmpfs mounts here: the full-disk case is skipped)"
fi
echo "1 passed, 0 failed"
