# One process: the CLI surface, a short run and its run directory.
source "$(dirname "$0")/common.sh" "$@"

run_expect 0 "$WORK/help" -- "$OODTRAIN" --help
expect_contains "$WORK/help" "list-algorithms"
run_expect 0 "$WORK/thelp" -- "$OODTRAIN" train --help
expect_contains "$WORK/thelp" "--dump-config"
run_expect 0 "$WORK/ver" -- "$OODTRAIN" --version
expect_contains "$WORK/ver" "oodtrain 0.1.0 (git "
run_expect 0 "$WORK/algos" -- "$OODTRAIN" list-algorithms
for a in label_smoothing mixup multi_sample_dropout ghost_batch_norm ssa; do
  grep -qE "^$a +[a-z_,]+ " "$WORK/algos" || fail "list-algorithms misses $a"
done
grep -qE "^label_smoothing +before_loss " "$WORK/algos" || fail "label_smoothing phases"
run_expect 2 "$WORK/unknown" -- "$OODTRAIN" trian
expect_contains "$WORK/unknown" "did you mean 'train'"

# --dump-config: the resolved tree with defaults, overrides applied, nothing trained.
run_expect 0 "$WORK/dump" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set optim.lr=0.2 --set 'algorithms=[mixup]' --dump-config
expect_contains "$WORK/dump" "lr: 0.2"
expect_contains "$WORK/dump" "bucket_mb: 25"
expect_contains "$WORK/dump" "alpha: 0.4"
[ ! -d "$WORK/run" ] || fail "--dump-config must not train"

run_expect 0 "$WORK/train" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set 'algorithms=[label_smoothing, mixup]'
expect_contains "$WORK/train" "held-out"
expect_contains "$WORK/train" "rot_75         train"
test -f "$WORK/run/config.yaml" || fail "no config.yaml in the run dir"
expect_contains "$WORK/run/config.yaml" "smoothing: 0.1"
expect_contains "$WORK/run/plugins.txt" "before_forward: mixup"
test -f "$WORK/run/ckpt_000000024.h5" || fail "no final checkpoint"
# keep_checkpoints (2): step 8 was removed, 16 and 24 remain.
[ "$(ls "$WORK/run" | grep -c '^ckpt_.*\.h5$')" -eq 2 ] || fail "expected 2 checkpoints: $(ls "$WORK/run")"
[ "$(ls "$WORK/run" | grep -c '^ckpt_.*\.h5\.sum$')" -eq 2 ] || fail "expected each checkpoint's digest beside it: $(ls "$WORK/run")"
[ "$(wc -l < "$WORK/run/metrics.jsonl")" -eq 2 ] || fail "expected 2 evaluations in metrics.jsonl"
"$PYTHON" - "$WORK/run" <<'PY'
import json, sys, h5py
run = sys.argv[1]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
last = rows[-1]
assert last["step"] == 24 and last["world_size"] == 1, last
for key in ("epoch", "lr", "train_loss", "samples_per_s"):
    assert key in last, key
d = last["domains"]
assert set(d) == {"rot_0", "rot_15", "rot_30", "rot_45", "rot_60", "rot_75"}, d.keys()
assert d["rot_0"]["held_out"] and not d["rot_15"]["held_out"]
for split in ("in", "out"):
    m = d["rot_15"][split]
    assert 0 <= m["acc"] <= 1 and m["loss"] > 0 and 0 <= m["ece"] <= 1 and m["n"] > 0, m
f = h5py.File(run + "/ckpt_000000024.h5", "r")
assert f.attrs["format"] == b"oodtrain-checkpoint" and f.attrs["format_version"] == 2 and f.attrs["step"] == 24
assert "trunk.block0.conv.weight" in f["model"] and "head.fc.weight" in f["model"]
assert "trunk.block0.conv.weight.momentum_buffer" in f["optimizer"]
assert "mixup" in f["plugins"] and "label_smoothing" in f["plugins"]
assert f["rng/torch_cpu"].shape[0] == 1
assert "label_smoothing" in f["meta/config"][()].tobytes().decode()
print("run directory ok")
PY

# --init-from: a new run from those weights.
run_expect 0 "$WORK/init" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/run2" --set train.steps=2 \
  --init-from "$WORK/run/ckpt_000000024.h5"
"$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1]); assert f['meta/init_from'][()].tobytes().decode().endswith('ckpt_000000024.h5')" \
  "$WORK/run2/ckpt_000000002.h5"
echo "1 passed, 0 failed"
