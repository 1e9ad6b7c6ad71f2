# train.precision end to end (core/precision.h). fp16's loss scaling on 2 ranks, simulated on
# the CPU (OODT_SIMULATE_FP16=1: fp32 arithmetic, fp16's scaling), with an overflow injected on
# one rank (OODT_INJECT_OVERFLOW=<rank>:<step>): every rank skips that step and backs off
# together; bf16 trains on the CPU; what cannot run is refused at set-up (exit 2).
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
FP16=(--set train.steps=8 --set train.eval_every=4 --set train.checkpoint_every=8 --set train.precision=fp16
      --set train.loss_scale.init=1024 --set train.loss_scale.growth_interval=2)

# The overflow on rank 1 at step 3, and on rank 0: if only the rank that overflowed skipped, rank
# 0's weights would differ between the two runs (and rank 1's would differ from rank 0's, which
# the evaluation, split over both ranks, would show).
OODT_SIMULATE_FP16=1 OODT_INJECT_OVERFLOW=1:3 run_expect 0 "$WORK/o1" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" \
  --set run.dir="$WORK/r1" "${FP16[@]}"
OODT_SIMULATE_FP16=1 OODT_INJECT_OVERFLOW=0:3 run_expect 0 "$WORK/o0" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" \
  --set run.dir="$WORK/r0" "${FP16[@]}"
OODT_SIMULATE_FP16=1 run_expect 0 "$WORK/on" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/rn" "${FP16[@]}"
cmp "$WORK/r1/ckpt_000000008.h5" "$WORK/r0/ckpt_000000008.h5" || fail "an overflow on rank 1 and one on rank 0 trained differently"
# The comparison can fail: without the overflow step 3 is applied.
if cmp "$WORK/rn/ckpt_000000008.h5" "$WORK/r1/ckpt_000000008.h5" > /dev/null; then fail "the injected overflow changed nothing"; fi
# By hand (init 1024, x2 after 2 finite steps, x0.5 after an overflow): 2048 after step 2, 1024
# after step 3 (skipped), still 1024 after step 4; 2048 after 5, 4096 after 7, tracker 1 after 8.
"$PYTHON" - "$WORK" <<'PY'
import json, sys
import h5py
work = sys.argv[1]
def rows(run):
    return [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
r1, r0, rn = rows("r1"), rows("r0"), rows("rn")
got = [(r["step"], r["plugins"]["precision.loss_scale"], r["plugins"]["precision.overflow_skips"]) for r in r1]
assert got == [(4, 1024.0, 1.0), (8, 4096.0, 0.0)], got
assert all(r["skipped_steps"] == 0 for r in r1), "overflow skips are not train.nonfinite's skipped steps"
# Both ranks evaluated the same model in both runs: identical evaluations.
for a, b in zip(r1, r0):
    assert a["domains"] == b["domains"] and a["train_loss"] == b["train_loss"], (a["step"], "r1 vs r0")
gotn = [(r["step"], r["plugins"]["precision.loss_scale"], r["plugins"]["precision.overflow_skips"]) for r in rn]
assert gotn == [(4, 4096.0, 0.0), (8, 16384.0, 0.0)], gotn
ls = h5py.File(f"{work}/r1/ckpt_000000008.h5")["trainer/loss_scaler"][()]
assert list(ls[:2]) == [4096.0, 1.0], ls
print("fp16 ok")
PY

# fp16 gradient compression carries the scaled gradients: at S = 2^24 they leave float16's range
# in transit and arrive as Inf, which must be an overflow (skip, back off until they fit), never
# a silently wrong gradient. The same run uncompressed (fp32 in transit) never overflows.
BIG=(--set train.loss_scale.init=16777216 --set train.loss_scale.growth_interval=2000)
OODT_SIMULATE_FP16=1 run_expect 0 "$WORK/oc" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/rc" "${FP16[@]}" \
  "${BIG[@]}" --set dist.compress=fp16
OODT_SIMULATE_FP16=1 run_expect 0 "$WORK/ou" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/ru" "${FP16[@]}" \
  "${BIG[@]}"
"$PYTHON" - "$WORK" <<'PY'
import json, math, sys
work = sys.argv[1]
rc = [json.loads(l) for l in open(f"{work}/rc/metrics.jsonl")]
ru = [json.loads(l) for l in open(f"{work}/ru/metrics.jsonl")]
skips = sum(r["plugins"]["precision.overflow_skips"] for r in rc)
assert skips >= 1 and rc[-1]["plugins"]["precision.loss_scale"] < 2**24, rc[-1]["plugins"]
assert math.isfinite(rc[-1]["train_loss"]) and all(r["skipped_steps"] == 0 for r in rc)
assert [r["plugins"]["precision.overflow_skips"] for r in ru] == [0.0, 0.0], [r["plugins"] for r in ru]
assert ru[-1]["plugins"]["precision.loss_scale"] == 2**24
print("compression ok:", int(skips), "overflow skips, scale", rc[-1]["plugins"]["precision.loss_scale"])
PY

# bf16 trains on the CPU to a finite loss.
run_expect 0 "$WORK/ob" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/rb" --set train.steps=6 \
  --set train.eval_every=0 --set train.precision=bf16
"$PYTHON" -c "
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1] + '/metrics.jsonl')]
assert rows[-1]['step'] == 6 and math.isfinite(rows[-1]['train_loss']), rows[-1]
assert 'precision.loss_scale' not in rows[-1].get('plugins', {})  # fp16 only
print('bf16 ok')" "$WORK/rb"

# bf16 against fp32 on 2 ranks, the same seed: the training loss of every 4-step window within
# 1% (relative) of fp32's over 24 steps, yet not equal to it (bf16 arithmetic really ran), and
# held-out accuracy within 5 points. Then bf16 stopped at step 10 and resumed ends bit-identical
# to the uninterrupted bf16 run.
CURVE=(--set train.eval_every=4 --set train.checkpoint_every=8)
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/c32" "${CURVE[@]}"
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/c16" "${CURVE[@]}" \
  --set train.precision=bf16
"$PYTHON" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def rows(run):
    return [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
a, b = rows("c32"), rows("c16")
assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(4, 25, 4)), ([r["step"] for r in a], [r["step"] for r in b])
rel = [abs(y["train_loss"] - x["train_loss"]) / x["train_loss"] for x, y in zip(a, b)]
print("bf16 vs fp32, relative train-loss difference per window:", " ".join(f"{v:.4f}" for v in rel))
assert max(rel) <= 0.01, rel
assert max(rel) > 0, "bf16 gave fp32's losses exactly: autocast did not run"
gap = abs(a[-1]["summary"]["heldout_acc"] - b[-1]["summary"]["heldout_acc"])
assert gap <= 0.05, (a[-1]["summary"], b[-1]["summary"])
PY
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/c16r" "${CURVE[@]}" \
  --set train.precision=bf16 --stop-at-step 10
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/c16r" "${CURVE[@]}" \
  --set train.precision=bf16 --resume
expect_contains "$WORK/o" "resuming from"
cmp "$WORK/c16/ckpt_000000024.h5" "$WORK/c16r/ckpt_000000024.h5" || fail "bf16: resumed at 10, not bit-identical"

# Refused at set-up, exit 2, naming the key: fp16 on a CPU (no simulation), a typo'd value, a
# plugin that cannot (LSQ with levels wider than bfloat16 holds exactly).
run_expect 2 "$WORK/e1" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/e1r" --set train.precision=fp16
expect_contains "$WORK/e1" "train.precision"
expect_contains "$WORK/e1" "fp16 needs a CUDA device"
run_expect 2 "$WORK/e2" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/e2r" --set train.precision=fp8
expect_contains "$WORK/e2" "train.precision"
expect_contains "$WORK/e2" "fp8"
run_expect 2 "$WORK/e3" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/e3r" --set train.precision=bf16 \
  --set 'algorithms=[{lsq: {weight_bits: 12}}]'
expect_contains "$WORK/e3" "lsq"
expect_contains "$WORK/e3" "12-bit levels are not exact"
# ... while 4-bit LSQ trains under bf16.
run_expect 0 "$WORK/o4" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/r4" --set train.steps=4 \
  --set train.eval_every=0 --set train.precision=bf16 --set 'algorithms=[lsq]'
echo "1 passed, 0 failed"
