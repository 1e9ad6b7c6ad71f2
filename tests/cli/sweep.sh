# Sweeps: plan, run (2 ranks per run), rerun skips finished runs, a failing run does not stop
# the others and keeps its error, runs stopped by a signal resume to bit-identical results,
# and bad sweep files are refused before anything runs.
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
sed -i 's/steps: 24, eval_every: 12, checkpoint_every: 8/steps: 8, eval_every: 8, checkpoint_every: 4/' "$WORK/tiny.yaml"
cat > "$WORK/s.yaml" <<YAML
out: $WORK/sweep
base: [$WORK/tiny.yaml]
set: {optim.momentum: 0.8}
grid:
  algorithms: [[], [mixup]]
seeds: [0, 1]
test_domains: {each: [rot_0, rot_15]}
YAML
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep plan "$WORK/s.yaml"
expect_contains "$WORK/o" "8 runs in $WORK/sweep: 8 not started"
expect_contains "$WORK/o" "algorithms=[mixup] test=[rot_15] seed=1"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/s.yaml" --ranks-per-run 2 --oversubscribe
expect_contains "$WORK/o" "8 runs: 8 done now"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/s.yaml" --ranks-per-run 2 --oversubscribe
expect_contains "$WORK/o" "8 runs: 0 done now, 8 already done"
"$PYTHON" - "$WORK/sweep" <<'PY'
import glob, os, sys, yaml
dirs = sorted(glob.glob(sys.argv[1] + "/*/"))
assert len(dirs) == 8 and all(len(os.path.basename(d.rstrip("/"))) == 12 for d in dirs), dirs
seen = set()
for d in dirs:
    c = yaml.safe_load(open(d + "config.yaml"))
    assert os.path.exists(d + "done") and os.path.exists(d + "ckpt_000000008.h5"), d
    assert c["optim"]["momentum"] == 0.8 and c["run"]["dir"] == d.rstrip("/"), c
    seen.add((str(c["algorithms"]), tuple(c["data"]["test_domains"]), c["run"]["seed"]))
assert len(seen) == 8, seen
print("sweep ok")
PY
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/sweep" --select all
expect_contains "$WORK/o" "| configuration | rot_0 | rot_15 | rot_30 | rot_45 | rot_60 | rot_75 | Avg |"
expect_contains "$WORK/o" "| algorithms=[mixup] |"
expect_contains "$WORK/o" "leave-one-out: no run of dataset rotated_fmnist holds out a pair of domains"
# The same sweep, every run stopped by SIGUSR1 after step 4, then rerun: stopped, then done,
# and each run ends bit-identical to the uninterrupted one (same hash, other folder).
sed "s|$WORK/sweep|$WORK/sweep2|" "$WORK/s.yaml" > "$WORK/s2.yaml"
OODT_INJECT_SIGNAL=0:4:10 run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/s2.yaml" --ranks-per-run 2 --oversubscribe
expect_contains "$WORK/o" "8 stopped, 0 failed"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep status "$WORK/s2.yaml"
expect_contains "$WORK/o" "8 stopped"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/s2.yaml" --ranks-per-run 2 --oversubscribe --parallel 2
expect_contains "$WORK/o" "8 runs: 8 done now"
# --parallel 2 x 2 ranks share the cores: each rank was given cores / 4 threads.
want=$(( $(nproc) / 4 )); [ "$want" -ge 1 ] || want=1
for d in "$WORK"/sweep2/*/; do
  grep -q "2 rank(s), backend mpi, device cpu, $want thread(s) per rank" "$d/log.txt" || fail "$d: not $want thread(s) per rank"
done
for d in "$WORK"/sweep/*/; do
  cmp "$d/ckpt_000000008.h5" "$WORK/sweep2/$(basename "$d")/ckpt_000000008.h5" > /dev/null || fail "resumed run $d differs"
done
# A run that fails (its data file is missing) does not stop the others; its error is kept.
cat > "$WORK/s3.yaml" <<YAML
out: $WORK/sweep3
base: [$WORK/tiny.yaml]
grid: {data.path: [$DATA, $WORK/missing.h5]}
YAML
run_expect 1 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/s3.yaml"
expect_contains "$WORK/o" "2 runs: 1 done now, 0 already done, 0 running elsewhere, 0 stopped, 1 failed"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep status "$WORK/s3.yaml"
expect_contains "$WORK/o" "missing.h5: file not found"
# collect names what it leaves out: the failed run.
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/sweep3"
expect_contains "$WORK/o" "1 of 2 runs are not finished and are left out (1 failed)"
expect_contains "$WORK/o" "missing.h5: file not found"

# A sweep runner killed while its run goes on: a rerun sees the orphan running (its lock), does
# not start it twice, and the orphan writes its own `done`, so collect counts it.
cat > "$WORK/s4.yaml" <<YAML
out: $WORK/sweep4
base: [$WORK/tiny.yaml]
set: {train.steps: 3000, train.eval_every: 3000, train.checkpoint_every: 0}
YAML
"$OODTRAIN" sweep run "$WORK/s4.yaml" > "$WORK/first" 2>&1 &
runner=$!
run4=$(for _ in $(seq 100); do d=$(ls -d "$WORK"/sweep4/*/ 2> /dev/null | head -1); [ -n "$d" ] && [ -e "$d/.lock" ] && echo "$d" && break; sleep 0.2; done)
[ -n "$run4" ] || { cat "$WORK/first"; fail "the sweep's run did not start"; }
kill -KILL "$runner"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep status "$WORK/s4.yaml"
expect_contains "$WORK/o" "1 running"
run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep run "$WORK/s4.yaml"
expect_contains "$WORK/o" "[running elsewhere]"
expect_contains "$WORK/o" "1 running elsewhere"
run_expect 1 "$WORK/o" -- "$OODTRAIN" collect "$WORK/sweep4"
expect_contains "$WORK/o" "1 of 1 runs are not finished and are left out (1 running)"
for _ in $(seq 600); do [ -e "$run4/done" ] && break; sleep 0.2; done
[ -e "$run4/done" ] || fail "the orphaned run did not mark itself done"
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/sweep4"
if grep -q "not finished" "$WORK/o"; then fail "collect left the finished orphan out"; fi

# Bad sweeps are refused before anything runs, naming the run or the key.
printf 'base: [%s]\ngrid: {optim.lr: [0.1, -1]}\n' "$WORK/tiny.yaml" > "$WORK/bad.yaml"
run_expect 2 "$WORK/o" -- "$OODTRAIN" sweep plan "$WORK/bad.yaml"
expect_contains "$WORK/o" "run 'optim.lr=-1 seed=0': optim.lr: must be"
printf 'base: [%s]\nseed: [1]\n' "$WORK/tiny.yaml" > "$WORK/bad.yaml"
run_expect 2 "$WORK/o" -- "$OODTRAIN" sweep plan "$WORK/bad.yaml"
expect_contains "$WORK/o" "seeds"
echo "1 passed, 0 failed"
