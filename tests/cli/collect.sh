# oodtrain collect: DomainBed's three model selections checked against an independent Python
# computation on synthetic finished runs, then the formats and a real sweep's table.
source "$(dirname "$0")/common.sh" "$@"
"$PYTHON" - "$WORK/runs" <<'PY'
import itertools, json, os, sys
import numpy as np
rng = np.random.default_rng(5)
root = sys.argv[1]
domains = ["d0", "d1", "d2"]
k = 0
for grid, rand, seed in itertools.product(["algorithms=[]", "algorithms=[mixup]"], ["optim.lr=0.1", "optim.lr=0.01"], [0, 1, 2]):
    helds = [[d] for d in domains] + [list(p) for p in itertools.combinations(domains, 2)]
    for held in helds:
        d = os.path.join(root, f"run{k:03d}"); k += 1
        os.makedirs(d)
        open(os.path.join(d, "done"), "w").close()
        with open(os.path.join(d, "sweep.yaml"), "w") as f:
            f.write(f'grid: "{grid}"\nrandom: "{rand}"\nseed: {seed}\ntest_domains: [{", ".join(held)}]\n')
        doms = {x: {"held_out": x in held, "in": {"acc": float(rng.uniform(0.3, 0.9)), "n": int(rng.integers(50, 100))},
                    "out": {"acc": float(rng.uniform(0.3, 0.9)), "n": int(rng.integers(10, 30))}} for x in domains}
        # The trainer writes each evaluation's summary (count-weighted validation accuracy of
        # the training domains' out splits); collect takes it from there.
        train = [x for x in domains if x not in held]
        val = sum(doms[x]["out"]["acc"] * doms[x]["out"]["n"] for x in train) / sum(doms[x]["out"]["n"] for x in train)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            f.write(json.dumps({"step": 1, "summary": {"val_acc": None}, "domains": {x: {"held_out": True, "in": {"acc": 0, "n": 1}, "out": {"acc": 0, "n": 1}} for x in domains}}) + "\n")
            f.write(json.dumps({"step": 2, "summary": {"val_acc": val}, "domains": doms}) + "\n")
# An unfinished run is ignored.
os.makedirs(os.path.join(root, "unfinished"))
open(os.path.join(root, "unfinished", "sweep.yaml"), "w").write('grid: "algorithms=[]"\nrandom: ""\nseed: 9\n')
PY
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select all --format csv --out "$WORK/table.csv"
"$PYTHON" - "$WORK/runs" "$WORK/table.csv" <<'PY'
import csv, glob, json, os, statistics, sys
runs = []
for d in sorted(glob.glob(sys.argv[1] + "/*/")):
    if not os.path.exists(d + "done"):
        continue
    meta = {}
    for line in open(d + "sweep.yaml"):
        key, _, value = line.partition(": ")
        meta[key] = value.strip().strip('"')
    last = json.loads(open(d + "metrics.jsonl").readlines()[-1])["domains"]
    held = sorted(x for x, v in last.items() if v["held_out"])
    train = [x for x in last if x not in held]
    val = sum(last[x]["out"]["acc"] * last[x]["out"]["n"] for x in train) / sum(last[x]["out"]["n"] for x in train)
    runs.append(dict(grid=meta["grid"], rand=meta["random"], seed=int(meta["seed"]), held=held, val=val, dom=last))

def both(r, x):
    a, b = r["dom"][x]["in"], r["dom"][x]["out"]
    return (a["acc"] * a["n"] + b["acc"] * b["n"]) / (a["n"] + b["n"])

want = {}
for method in ("training-domain", "leave-one-out", "oracle"):
    for g in sorted({r["grid"] for r in runs}):
        for t in ["d0", "d1", "d2"]:
            picks = []
            for seed in sorted({r["seed"] for r in runs}):
                cands = {}
                for h in sorted({r["rand"] for r in runs}):
                    rs = [r for r in runs if r["grid"] == g and r["seed"] == seed and r["rand"] == h]
                    if method == "leave-one-out":
                        pairs = [r for r in rs if len(r["held"]) == 2 and t in r["held"]]
                        score = statistics.mean(both(r, [x for x in r["held"] if x != t][0]) for r in pairs)
                        cands[h] = (score, statistics.mean(r["dom"][t]["in"]["acc"] for r in pairs))
                    else:
                        (r,) = [r for r in rs if r["held"] == [t]]
                        score = r["dom"][t]["out"]["acc"] if method == "oracle" else r["val"]
                        cands[h] = (score, r["dom"][t]["in"]["acc"])
                picks.append(max(cands.values())[1])
            se = statistics.stdev(picks) / len(picks) ** 0.5
            want[(method, g, t)] = (statistics.mean(picks), se, len(picks))
got = {(row["selection"], row["configuration"], row["domain"]): (float(row["mean"]), float(row["stderr"]), int(row["seeds"]))
       for row in csv.DictReader(open(sys.argv[2]))}
assert set(got) == set(want), (sorted(set(got) ^ set(want)))
for k, (m, se, n) in want.items():
    gm, gse, gn = got[k]
    assert abs(gm - m) < 1e-5 and abs(gse - se) < 1e-5 and gn == n, (k, got[k], want[k])
print(f"collect ok: {len(want)} cells match")
PY
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select training-domain
expect_contains "$WORK/o" "| configuration | d0 | d1 | d2 | avg |"
expect_contains "$WORK/o" "| algorithms=[mixup] |"
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select oracle --plot "$WORK/bars.svg" --curves "$WORK/curves.svg"
[ "$(grep -c '<rect x=' "$WORK/bars.svg")" -eq 8 ] || fail "expected 6 bars and 2 legend boxes in the plot"
[ "$(grep -c '<polyline' "$WORK/curves.svg")" -eq 2 ] || fail "expected one learning curve per configuration"
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select oracle --format latex
expect_contains "$WORK/o" "\\begin{tabular}{lcccc}"
run_expect 2 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select best
expect_contains "$WORK/o" "--select: 'best' is not one of"
mkdir "$WORK/empty"
run_expect 1 "$WORK/o" -- "$OODTRAIN" collect "$WORK/empty"
expect_contains "$WORK/o" "no finished sweep runs"
run_expect 2 "$WORK/o" -- "$OODTRAIN" collect "$WORK/nowhere"
expect_contains "$WORK/o" "is not a directory"
echo "1 passed, 0 failed"
