# Quantization-aware training end to end on 2 ranks: LSQ started from a float checkpoint, GAQAT
# (SAGM + scale-gradient freezing) resumed bit-identically, and the integer export.
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/float" \
  --set train.steps=8 --set train.eval_every=8 --set train.checkpoint_every=8
QAT='algorithms=[{lsq: {weight_bits: 4, input_bits: 4}}, {gaqat: {window: 4, interval: 4}}]'
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full" --set "$QAT" \
  --init-from "$WORK/float/ckpt_000000008.h5"
"$PYTHON" - "$WORK/full" <<'PY'
import json, sys
p = json.loads(open(sys.argv[1] + "/metrics.jsonl").readlines()[-1])["plugins"]
frozen = [k for k in p if k.endswith(".frozen")]
assert len(frozen) == 6 and "gaqat.frozen_share" in p and "gaqat.conflicting_share" in p, p
print("gaqat metrics ok: frozen share", p["gaqat.frozen_share"], "conflicting share", p["gaqat.conflicting_share"])
PY
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" --set "$QAT" \
  --init-from "$WORK/float/ckpt_000000008.h5" --stop-at-step 5
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" --set "$QAT" --resume --stop-at-step 13
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" --set "$QAT" --resume
cmp "$WORK/full/ckpt_000000024.h5" "$WORK/part/ckpt_000000024.h5" || fail "resumed GAQAT run differs"

run_expect 0 "$WORK/o" -- "$OODTRAIN" export --quantized "$WORK/full/ckpt_000000024.h5" --out "$WORK/int.h5"
expect_contains "$WORK/o" "3 quantized layers"
"$PYTHON" - "$WORK/full/ckpt_000000024.h5" "$WORK/int.h5" <<'PY'
import sys, h5py, numpy as np
ck, q = h5py.File(sys.argv[1])["model"], h5py.File(sys.argv[2])
bits = {}
for layer, g in q["layers"].items():
    w, s, b = ck[layer + ".weight"][()].astype(np.float64), g.attrs["weight_step"], int(g.attrs["weight_bits"])
    ints = g["weight"][()]
    assert ints.dtype == np.int8 and ints.min() >= -2 ** (b - 1) and ints.max() <= 2 ** (b - 1) - 1, layer
    assert np.array_equal(ints, np.round(np.clip(w / s, -2 ** (b - 1), 2 ** (b - 1) - 1))), layer
    assert g.attrs["input_signed"] == 0, layer   # images and post-ReLU features
    bits[layer] = b
assert bits == {"trunk.block0.conv": 8, "trunk.block1.conv": 4, "head.fc": 8}, bits   # first and last at 8
assert "trunk.block0.bn.running_mean" in q["float"]
print("export ok:", bits)
PY
# Quantized checkpoints merge like float ones (the scorer enables the recorded quantizers).
run_expect 0 "$WORK/o" -- "$OODTRAIN" soup --method uniform --checkpoints "$WORK/full/ckpt_000000016.h5" \
  "$WORK/full/ckpt_000000024.h5" --val "$WORK/tiny.yaml" --out "$WORK/qsoup.h5"
expect_contains "$WORK/o" "uniform soup of 2 of 2 candidates"
run_expect 1 "$WORK/o" -- "$OODTRAIN" export --quantized "$WORK/float/ckpt_000000008.h5" --out "$WORK/bad.h5"
expect_contains "$WORK/o" "no quantizers in this checkpoint"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" --set 'algorithms=[gaqat]'
expect_contains "$WORK/o" "the model has no quantizers: add the lsq plugin"
echo "1 passed, 0 failed"
