# `oodtrain eval`: a checkpoint scored afresh gives exactly what the trainer's own evaluation of
# the same weights wrote to metrics.jsonl (an independent path through the trainer), on 1 or 2
# ranks; tables, JSON and CSV agree; bad input fails naming it.
source "$(dirname "$0")/common.sh" "$@"
# Checkpoints at the two evaluations (steps 12 and 24), so both have a metrics row to match.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set train.checkpoint_every=12
CK12=$WORK/run/ckpt_000000012.h5
CK24=$WORK/run/ckpt_000000024.h5
[ -f "$CK12" ] && [ -f "$CK24" ] || fail "expected checkpoints at steps 12 and 24"

# One checkpoint, on the data it was trained with (no -c): table, JSON and CSV.
run_expect 0 "$WORK/one" -- "$OODTRAIN" eval "$CK24" --json "$WORK/one.json" --csv "$WORK/one.csv"
expect_contains "$WORK/one" "$CK24 (step 24, epoch"
expect_contains "$WORK/one" "validation acc"
"$PYTHON" - "$WORK" "$DATA" "$CK24" <<'PY'
import csv, json, sys
import h5py, numpy as np
w, data, ck = sys.argv[1:]
rows = [json.loads(l) for l in open(w + "/run/metrics.jsonl") if l.strip()]
final = [r for r in rows if r["step"] == 24][-1]
got = json.load(open(w + "/one.json"))
assert isinstance(got, list) and len(got) == 1, got
e = got[0]
assert e["checkpoint"] == ck and e["step"] == 24, e
# The same weights on the same data, the same code path for the numbers: equal to the bit.
assert e["summary"] == final["summary"], (e["summary"], final["summary"])
assert e["domains"] == final["domains"], (e["domains"], final["domains"])
# Sample counts from the data file itself: each domain's in and out splits hold all its samples.
f = h5py.File(data, "r")
names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["domain_names"]]
counts = np.bincount(f["domains"][()], minlength=len(names))
for i, name in enumerate(names):
    d = e["domains"][name]
    assert d["in"]["n"] + d["out"]["n"] == counts[i], (name, d, counts[i])
    assert d["held_out"] == (name == "rot_0"), (name, d)
# The printed table: every domain and split, to the printed precision.
table = {}
for line in open(w + "/one"):
    parts = line.split()
    if len(parts) == 8 and parts[0] in names:
        table[(parts[0], parts[2])] = parts
assert len(table) == 2 * len(names), table
for (name, part), p in table.items():
    m = final["domains"][name][part]
    assert p[1] == ("held-out" if name == "rot_0" else "train"), p
    assert p[3:7] == ["%.4f" % m[k] for k in ("acc", "loss", "ece", "conf")], (p, m)
    assert int(p[7]) == m["n"], (p, m)
s = final["summary"]
assert ("validation acc %.4f" % s["val_acc"]) in open(w + "/one").read()
assert ("held-out acc %.4f" % s["heldout_acc"]) in open(w + "/one").read()
# CSV: one record per domain and split; numbers read back exactly.
with open(w + "/one.csv", newline="") as fh:
    recs = list(csv.DictReader(fh))
assert len(recs) == 2 * len(names), recs
for r in recs:
    m = final["domains"][r["domain"]][r["split"]]
    assert r["checkpoint"] == ck and r["step"] == "24", r
    assert r["role"] == ("held-out" if r["domain"] == "rot_0" else "train"), r
    for k in ("acc", "loss", "ece", "conf"):
        assert float(r[k]) == m[k], (r, m)
    assert int(r["n"]) == m["n"], r
print("eval = the trainer's final evaluation")
PY

# Two checkpoints, on 2 ranks: two entries, each equal to its own step's metrics row
# (accuracies and counts exactly; a batch's loss is summed in float32, so losses agree to ~1e-7
# when the ranks split the batches differently).
run_expect 0 "$WORK/two" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" eval "$CK12" "$CK24" --json "$WORK/two.json" \
  --csv "$WORK/two.csv"
[ "$(grep -c "validation acc" "$WORK/two")" -eq 2 ] || { cat "$WORK/two"; fail "expected two summaries, from rank 0 only"; }
"$PYTHON" - "$WORK" "$CK12" "$CK24" <<'PY'
import csv, json, sys
w, ck12, ck24 = sys.argv[1:]
rows = {r["step"]: r for r in (json.loads(l) for l in open(w + "/run/metrics.jsonl") if l.strip())}
got = json.load(open(w + "/two.json"))
assert [e["checkpoint"] for e in got] == [ck12, ck24] and [e["step"] for e in got] == [12, 24], got
for e in got:
    want = rows[e["step"]]
    assert e["world_size"] == 2, e
    assert e["summary"]["val_acc"] == want["summary"]["val_acc"], (e["summary"], want["summary"])
    assert e["summary"]["heldout_acc"] == want["summary"]["heldout_acc"], (e["summary"], want["summary"])
    for name, d in want["domains"].items():
        for part in ("in", "out"):
            a, b = e["domains"][name][part], d[part]
            assert a["acc"] == b["acc"] and a["n"] == b["n"], (name, part, a, b)
            assert abs(a["loss"] - b["loss"]) < 1e-6 * b["loss"], (name, part, a, b)
            for k in ("ece", "conf"):
                assert abs(a[k] - b[k]) < 1e-9, (name, part, k, a, b)
with open(w + "/two.csv", newline="") as fh:
    recs = list(csv.DictReader(fh))
assert [r["checkpoint"] for r in recs].count(ck12) == len(recs) // 2 == 12, recs
print("2 ranks, 2 checkpoints ok")
PY

# A data config given with -c: the same data with another held-out domain scores every split
# the same; only the roles and the summary change.
run_expect 0 "$WORK/o" -- "$OODTRAIN" eval "$CK24" -c "$WORK/tiny.yaml" --set 'data.test_domains=[rot_15]' \
  --json "$WORK/c.json"
"$PYTHON" - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
a, b = json.load(open(w + "/one.json"))[0], json.load(open(w + "/c.json"))[0]
for name in a["domains"]:
    assert b["domains"][name]["held_out"] == (name == "rot_15"), b["domains"][name]
    for part in ("in", "out"):
        assert a["domains"][name][part] == b["domains"][name][part], name
# Held-out accuracy: rot_15's two splits, count-weighted (computed here from the splits).
d = b["domains"]["rot_15"]
want = (d["in"]["acc"] * d["in"]["n"] + d["out"]["acc"] * d["out"]["n"]) / (d["in"]["n"] + d["out"]["n"])
assert abs(b["summary"]["heldout_acc"] - want) < 1e-12, (b["summary"], want)
print("-c data config ok")
PY

# --split out: only the out splits are evaluated.
run_expect 0 "$WORK/o" -- "$OODTRAIN" eval "$CK24" --split out --csv "$WORK/out.csv"
[ "$(grep -c ',in,' "$WORK/out.csv")" -eq 0 ] && [ "$(grep -c ',out,' "$WORK/out.csv")" -eq 6 ] || { cat "$WORK/out.csv"; fail "--split out"; }

# A path that needs quoting in CSV (a comma and a quote) comes back whole.
ODD="$WORK/odd, \"name\".h5"
cp "$CK24" "$ODD" && cp "$CK24.sum" "$ODD.sum"
run_expect 0 "$WORK/o" -- "$OODTRAIN" eval "$ODD" --csv "$WORK/odd.csv"
"$PYTHON" -c "
import csv, sys
recs = list(csv.DictReader(open(sys.argv[1], newline='')))
assert len(recs) == 12 and all(r['checkpoint'] == sys.argv[2] for r in recs), recs[0]
print('csv quoting ok')" "$WORK/odd.csv" "$ODD"

# Bad input: a missing or damaged checkpoint (exit 1, named), a model section that is not the
# checkpoint's, an unknown data key, an unknown split (exit 2, named).
run_expect 1 "$WORK/o" -- "$OODTRAIN" eval "$CK24" "$WORK/missing.h5"
expect_contains "$WORK/o" "$WORK/missing.h5"
cp "$CK24" "$WORK/bad.h5" && cp "$CK24.sum" "$WORK/bad.h5.sum"
printf 'XXXX' | dd of="$WORK/bad.h5" bs=1 seek=4096 conv=notrunc status=none
run_expect 1 "$WORK/o" -- "$OODTRAIN" eval "$WORK/bad.h5"
expect_contains "$WORK/o" "$WORK/bad.h5"
run_expect 1 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" eval "$WORK/missing.h5"
expect_contains "$WORK/o" "$WORK/missing.h5"
printf 'data: {path: %s}\nmodel: {name: cnn, channels: [4, 16]}\n' "$DATA" > "$WORK/wide.yaml"
run_expect 2 "$WORK/o" -- "$OODTRAIN" eval "$CK24" -c "$WORK/wide.yaml"
expect_contains "$WORK/o" "model.channels"
expect_contains "$WORK/o" "wide.yaml"
run_expect 2 "$WORK/o" -- "$OODTRAIN" eval "$CK24" --set model.dropout=0.5
expect_contains "$WORK/o" "model.dropout: --set gives 0.5"
printf 'data: {path: %s, test_domain: [rot_0]}\n' "$DATA" > "$WORK/typo.yaml"
run_expect 2 "$WORK/o" -- "$OODTRAIN" eval "$CK24" -c "$WORK/typo.yaml"
expect_contains "$WORK/o" "data.test_domain: unknown key"
run_expect 2 "$WORK/o" -- "$OODTRAIN" eval "$CK24" --split both
expect_contains "$WORK/o" "--split: 'both' is not one of"
run_expect 2 "$WORK/o" -- "$OODTRAIN" eval "$CK24" --json "$CK24"
expect_contains "$WORK/o" "is one of the checkpoints"
echo "eval ok"
