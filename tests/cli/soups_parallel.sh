# Soup candidates trained in parallel (one per rank) and sparse model soups (IMP), on 2 ranks:
# the soup is the mean of the candidates, an interrupted run restores every rank's candidate
# exactly, pruned weights stay exactly zero, and each phase prunes the expected number.
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/base" \
  --set train.steps=8 --set train.eval_every=8 --set train.checkpoint_every=8
BASE=$WORK/base/ckpt_000000008.h5

# --- soup_ingredients: candidate 1 trains at half the learning rate; BN statistics averaged.
ING='algorithms=[{soup_ingredients: {merge: uniform, recalibrate_fraction: 0, lr_scale: [1.0, 0.5]}}]'
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/ing" --set "$ING" --init-from "$BASE"
expect_contains "$WORK/o" "the final evaluation below is the uniform soup's"
"$PYTHON" - "$WORK/ing" "$BASE" <<'PY'
import json, os, sys, h5py, numpy as np
run, base = sys.argv[1], sys.argv[2]
c0, c1 = (h5py.File(f"{run}/candidate_{g}.h5") for g in (0, 1))
soup = h5py.File(f"{run}/ckpt_000000024.h5")
origin = [c["meta/init_from"][()].tobytes().decode() for c in (c0, c1)]
assert origin[0] == origin[1] == os.path.abspath(base), (origin, base)
assert c0.attrs["step"] == c1.attrs["step"] == 24
differ = 0
for name, d in soup["model"].items():
    a, b, s = c0["model"][name][()], c1["model"][name][()], d[()]
    if a.dtype.kind != "f":
        assert np.array_equal(s, a), name
        continue
    differ += not np.allclose(a, b)
    assert np.allclose(s, (a.astype(np.float64) + b) / 2, atol=1e-6, rtol=0), name
assert differ > 0, "both candidates are the same model"
meta = json.load(open(f"{run}/candidates.json"))
assert meta["merge"] == "uniform" and [c["kept"] for c in meta["candidates"]] == [True, True], meta
print("uniform soup of parallel candidates ok")
PY
# Interrupted twice (once mid-epoch), resumed: every candidate and the soup are bit-identical.
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/ing2" --set "$ING" \
  --init-from "$BASE" --stop-at-step 5
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/ing2" --set "$ING" --resume --stop-at-step 13
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/ing2" --set "$ING" --resume
for f in candidate_0.h5 candidate_1.h5 ckpt_000000024.h5; do
  cmp "$WORK/ing/$f" "$WORK/ing2/$f" || fail "resumed $f differs from the uninterrupted run's"
done
# The candidates' checkpoints feed `oodtrain soup` as they are (shared origin: no warning).
run_expect 0 "$WORK/o" -- "${MPI[@]}" soup --method greedy --checkpoints "$WORK/ing/candidate_0.h5" \
  "$WORK/ing/candidate_1.h5" --val "$WORK/tiny.yaml" --out "$WORK/ing/greedy.h5"
if grep -q "do not share a recorded origin" "$WORK/o"; then fail "parallel candidates should share an origin"; fi
# Groups must divide the ranks; lr_scale needs one entry per candidate.
run_expect 2 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" \
  --set 'algorithms=[{soup_ingredients: {group_size: 3}}]'
expect_contains "$WORK/o" "algorithms.soup_ingredients.group_size"
run_expect 2 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" \
  --set 'algorithms=[{soup_ingredients: {lr_scale: [1, 2, 3]}}]'
expect_contains "$WORK/o" "algorithms.soup_ingredients.lr_scale"

# --- sparse_soup: 2 phases to 75% sparsity, 2 candidates, greedy merge; then resumed exactly
# from the phase boundary (step 12) and from mid-phase (step 17).
SMS='algorithms=[{sparse_soup: {sparsity: 0.75, phases: 2, merge: greedy}}]'
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/sms" --set "$SMS" --init-from "$BASE"
expect_contains "$WORK/o" "sparse_soup: phase 2/2 done"
"$PYTHON" - "$WORK/sms" <<'PY'
import json, sys, h5py, numpy as np
run = sys.argv[1]
ck = h5py.File(f"{run}/ckpt_000000024.h5")
weights = {k: v[()] for k, v in ck["model"].items() if v.ndim >= 2}
masks = ck["plugins/sparse_soup"]
total = sum(w.size for w in weights.values())
# Independent count: each phase removes round(p * remaining) (Python's round), p = 1 - (1-s)^(1/T).
p, remaining, expected = 1 - (1 - 0.75) ** 0.5, total, []
for _ in range(2):
    remaining -= round(p * remaining)
    expected.append(total - remaining)
zeros = sum(int((w == 0).sum()) for w in weights.values())
assert zeros == expected[-1], (zeros, expected)
for name, w in weights.items():
    m = masks["mask." + name][()]
    assert np.array_equal(w == 0, m == 0), name    # zero exactly where pruned, and only there
events = [json.loads(l) for l in open(f"{run}/sparse_soup.jsonl")]
assert [e["event"] for e in events] == ["pruned", "merged", "pruned", "merged"], events
assert [e["zeros"] for e in events] == [expected[0], expected[0], expected[1], expected[1]], (events, expected)
assert all(len(e["val_acc"]) == 2 for e in events if e["event"] == "merged"), events
print(f"sparse soup ok: {zeros} of {total} weights zero after 2 phases, as expected {expected}")
PY
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/sms2" --set "$SMS" \
  --init-from "$BASE" --stop-at-step 12
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/sms2" --set "$SMS" --resume --stop-at-step 17
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/sms2" --set "$SMS" --resume
cmp "$WORK/sms/ckpt_000000024.h5" "$WORK/sms2/ckpt_000000024.h5" || fail "resumed sparse soup differs"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/bad" \
  --set 'algorithms=[{sparse_soup: {phases: 5}}]'
expect_contains "$WORK/o" "train.steps"
echo "1 passed, 0 failed"
