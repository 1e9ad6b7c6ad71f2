# Weight-space merges end to end: WiSE-FT interpolation and greedy/uniform soups on 2 ranks.
source "$(dirname "$0")/common.sh" "$@"
short=(--set train.steps=8 --set train.eval_every=8 --set train.checkpoint_every=8)
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/zs"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/ft" \
  --set 'algorithms=[mixup, label_smoothing]' --init-from "$WORK/zs/ckpt_000000008.h5"
run_expect 0 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" interpolate \
  --zero-shot "$WORK/zs/ckpt_000000008.h5" --finetuned "$WORK/ft/ckpt_000000008.h5" \
  --alphas 0:1:0.5 --eval "$WORK/tiny.yaml" --out "$WORK/wise" --write-checkpoints
expect_contains "$WORK/o" "wrote $WORK/wise/interpolation.csv"
[ "$(wc -l < "$WORK/wise/interpolation.csv")" -eq 4 ] || fail "expected a header and 3 rows"
expect_contains "$WORK/wise/interpolation.csv" "alpha,id_acc,ood_acc,ood_confidence,ood_ece"
[ -s "$WORK/wise/interpolation.png" ] || fail "no interpolation.png"  # figures: tests/cli/plots.sh
expect_contains "$WORK/wise/interpolation.svg" "<svg"
"$PYTHON" - "$WORK" <<'PY'
import sys, h5py, numpy as np
w = sys.argv[1]
zs, ft = h5py.File(w + "/zs/ckpt_000000008.h5")["model"], h5py.File(w + "/ft/ckpt_000000008.h5")["model"]
half = h5py.File(w + "/wise/alpha_0.500.h5")["model"]
for name in zs:
    a, b = zs[name][()], ft[name][()]
    if a.dtype.kind == "f":
        assert np.allclose(half[name][()], 0.5 * a + 0.5 * b, atol=1e-6), name
    assert np.array_equal(h5py.File(w + "/wise/alpha_0.000.h5")["model"][name][()], a) or a.dtype.kind != "f", name
# Accuracy at alpha 0 and 1 is each endpoint's own validation accuracy (evaluated on 2 ranks).
rows = [l.strip().split(",") for l in open(w + "/wise/interpolation.csv")][1:]
assert [float(r[0]) for r in rows] == [0.0, 0.5, 1.0], rows
print("interpolation ok")
PY
# The Fisher-weighted merge runs end to end, on 2 ranks, and differs from the plain one.
run_expect 0 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" interpolate \
  --zero-shot "$WORK/zs/ckpt_000000008.h5" --finetuned "$WORK/ft/ckpt_000000008.h5" \
  --alphas 0.5 --fisher 64 --eval "$WORK/tiny.yaml" --out "$WORK/fisher" --write-checkpoints
"$PYTHON" -c "
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1])['model'], h5py.File(sys.argv[2])['model']
assert any(not np.allclose(a[k][()], b[k][()]) for k in a if a[k].dtype.kind == 'f'), 'Fisher merge equals plain'
print('fisher ok')" "$WORK/fisher/alpha_0.500.h5" "$WORK/wise/alpha_0.500.h5"
# Checkpoints of different models are refused.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/other" --set model.channels=[4,4]
run_expect 1 "$WORK/o" -- "$OODTRAIN" interpolate --zero-shot "$WORK/zs/ckpt_000000008.h5" \
  --finetuned "$WORK/other/ckpt_000000008.h5" --eval "$WORK/tiny.yaml" --out "$WORK/bad"
expect_contains "$WORK/o" "cannot be merged"

# Greedy soup of two candidates fine-tuned from the same start with different seeds.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/ft2" \
  --set run.seed=9 --init-from "$WORK/zs/ckpt_000000008.h5"
run_expect 0 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" soup --method greedy \
  --checkpoints "$WORK/ft/ckpt_000000008.h5" "$WORK/ft2/ckpt_000000008.h5" --val "$WORK/tiny.yaml" --out "$WORK/soup/greedy.h5"
expect_contains "$WORK/o" "greedy soup of"
if grep -q "do not share a recorded origin" "$WORK/o"; then fail "candidates share an origin"; fi
"$PYTHON" - "$WORK/soup/greedy.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = s["candidates"]
assert s["method"] == "greedy" and s["kept"] and s["kept"][0] == c[0]["path"], s
assert c[0]["val_acc"] >= c[1]["val_acc"], c           # ranked by own validation accuracy
assert c[1]["kept"] == (c[1]["soup_val_acc"] >= c[0]["val_acc"]), c   # the >= rule
print("greedy soup ok")
PY
# A soup across different starts is made, but with a warning.
run_expect 0 "$WORK/o" -- "$OODTRAIN" soup --method uniform --checkpoints "$WORK/zs/ckpt_000000008.h5" \
  "$WORK/ft/ckpt_000000008.h5" --val "$WORK/tiny.yaml" --out "$WORK/soup/uniform.h5"
expect_contains "$WORK/o" "zs/ckpt_000000008.h5 records no origin"

# Negative case: two models trained from different random inits average into a much worse one.
for seed in 1 2; do
  run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/init$seed" \
    --set run.seed=$seed --set train.steps=150 --set train.eval_every=150 --set train.checkpoint_every=150 \
    --set model.channels=[8,16]
done
run_expect 0 "$WORK/o" -- "$OODTRAIN" soup --method greedy --checkpoints "$WORK/init1/ckpt_000000150.h5" \
  "$WORK/init2/ckpt_000000150.h5" --val "$WORK/tiny.yaml" --out "$WORK/soup/inits.h5"
expect_contains "$WORK/o" "records no origin"
"$PYTHON" - "$WORK/soup/inits.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["candidates"]
own = min(x["val_acc"] for x in c)
mixed = c[1]["soup_val_acc"]
print(f"own accuracies {[round(x['val_acc'], 3) for x in c]}, their average {mixed:.3f}")
assert own > 0.3, own                      # both candidates learned something
assert mixed < own - 0.15, (mixed, own)    # the average of different inits is far worse
assert not c[1]["kept"]
PY
echo "1 passed, 0 failed"
