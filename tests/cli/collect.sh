# oodtrain collect: DomainBed's three model selections end to end on the hand-built sweep of
# tests/fixtures/domainbed/runs.json (3 domains, 2 draws, 2 seeds, every single and pair held-out
# set, one pair run absent). The expected tables were worked out by hand from DomainBed's rules
# (see tests/launch/model_selection_test.cpp); then the formats, draws without an index, an X
# cell, and bad input.
source "$(dirname "$0")/common.sh" "$@"
# write_runs OUT [swap]: one run folder per fixture entry (sweep.yaml, metrics.jsonl, done,
# config.yaml naming the dataset); with "swap" the two draws' texts are exchanged (their
# indices kept), with "noindex" the draw index is left out of sweep.yaml.
write_runs() {
  "$PYTHON" - "$SRC/fixtures/domainbed/runs.json" "$1" "${2:-}" <<'PY'
import json, os, sys
runs, out, mode = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
swap = {"optim.lr=0.01": "optim.lr=0.1", "optim.lr=0.1": "optim.lr=0.01"}
for r in runs:
    d = os.path.join(out, r["dir"])
    os.makedirs(d)
    s = r["sweep"]
    rnd = swap[s["random"]] if mode == "swap" else s["random"]
    lines = [f'grid: "{s["grid"]}"', f'random: "{rnd}"']
    if mode != "noindex":
        lines.append(f'draw: {s["draw"]}')
    lines += [f'seed: {s["seed"]}', f'test_domains: [{", ".join(s["test_domains"])}]']
    open(os.path.join(d, "sweep.yaml"), "w").write("\n".join(lines) + "\n")
    open(os.path.join(d, "config.yaml"), "w").write("data: {path: /data/fixture_set.h5}\n")
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for m in r["metrics"]:
            f.write(json.dumps(m) + "\n")
    open(os.path.join(d, "done"), "w").write("finished\n")
PY
}
write_runs "$WORK/runs"

# The per-dataset and averages tables of each method (docs: launch/model_selection.h).
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select all
expect_contains "$WORK/o" "## Model selection: training-domain validation set"
expect_contains "$WORK/o" "### Dataset: fixture_set"
expect_contains "$WORK/o" "| configuration | d0 | d1 | d2 | Avg |"
expect_contains "$WORK/o" "| (base) | 66.0 +/- 2.8 | 64.0 +/- 1.4 | 75.0 +/- 0.7 | 68.3 |"
expect_contains "$WORK/o" "| (base) | 57.0 +/- 4.9 | 53.0 +/- 0.7 | 75.0 +/- 0.7 | 61.7 |"
expect_contains "$WORK/o" "| (base) | 68.0 +/- 1.4 | 64.0 +/- 1.4 | 78.0 +/- 1.4 | 70.0 |"
expect_contains "$WORK/o" "| configuration | fixture_set | Avg |"
expect_contains "$WORK/o" "| (base) | 68.3 +/- 1.6 | 68.3 |"
expect_contains "$WORK/o" "| (base) | 61.7 +/- 1.6 | 61.7 |"
expect_contains "$WORK/o" "| (base) | 70.0 +/- 0.5 | 70.0 |"
# A pair run the sweep lacks is named.
expect_contains "$WORK/o" "no finished run holds out [d1, d2]"
cp "$WORK/o" "$WORK/all.txt"

# Ties between draws go by the draw's index, not by its text: swapping the texts changes nothing.
write_runs "$WORK/swapped" swap
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/swapped" --select all
diff <(grep '^|' "$WORK/all.txt") <(grep '^|' "$WORK/o") || fail "the tables depend on the draws' text"

# Without the {d1, d2} pair in any draw or seed, leave-one-out has no value for d1 and d2.
rm -r "$WORK/runs/s0_h0_d1-d2" "$WORK/runs/s1_h0_d1-d2" "$WORK/runs/s1_h1_d1-d2"
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select leave-one-out
expect_contains "$WORK/o" "| (base) | 57.0 +/- 4.9 | X | X | X |"
expect_contains "$WORK/o" "| (base) | 57.0 +/- 4.9 | 57.0 |"

# CSV (RFC 4180, numbers unrounded), LaTeX (escaped), JSON; a run folder that is not finished
# is named and left out; with --include-unfinished its evaluations are used.
write_runs "$WORK/fmt"
sed -i 's/grid: ""/grid: "algorithms=[mixup, sagm]"/' "$WORK"/fmt/*/sweep.yaml
rm "$WORK/fmt/s1_h1_d2/done"
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/fmt" --select training-domain --format csv --out "$WORK/t.csv" \
  --json "$WORK/t.json"
expect_contains "$WORK/o" "1 of 23 runs are not finished and are left out"
expect_contains "$WORK/o" "s1_h1_d2: not started"
"$PYTHON" - "$WORK/t.csv" "$WORK/t.json" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cell = {(r["table"], r["column"]): r for r in rows}
assert rows[0]["configuration"] == "algorithms=[mixup, sagm]", rows[0]
# d2, seed 1 loses draw 1's single run: draw 0 is selected (step 50, 0.70), with seed 0's 0.74.
assert cell[("dataset", "d2")]["n"] == "2" and abs(float(cell[("dataset", "d2")]["mean"]) - 72) < 1e-9, cell[("dataset", "d2")]
assert abs(float(cell[("dataset", "d0")]["stderr"]) - 2.8284271247) < 1e-6
doc = json.load(open(sys.argv[2]))
sel = doc["selections"][0]
assert sel["method"] == "training-domain" and sel["domains"] == ["d0", "d1", "d2"], sel
assert sel["rows"][0]["cells"]["d1"]["n"] == 2
assert len(doc["curves"]) == 22 and all(len(c["points"]) == 2 for c in doc["curves"])
picked = {(s["seed"], s["test_domain"]): s for s in doc["selected"]}
assert picked[(0, "d1")]["draw"] == 1 and picked[(0, "d2")]["step"] == 50, picked
print("csv and json ok")
PY
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/fmt" --select training-domain --include-unfinished
expect_contains "$WORK/o" "their evaluations so far are used"
expect_contains "$WORK/o" "75.0 +/- 0.7"
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/fmt" --select oracle --format latex
expect_contains "$WORK/o" "\\begin{tabular}{lcccc}"
expect_contains "$WORK/o" "configuration & d0 & d1 & d2 & Avg \\\\"
expect_contains "$WORK/o" "fixture\\_set"
expect_contains "$WORK/o" "68.0 \$\\pm\$ 1.4"

# Figures (scripts/oodt_plot.py through the binary), PNG and SVG.
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/swapped" --select oracle --plot "$WORK/bars.png" \
  --plot "$WORK/bars.svg" --curves "$WORK/curves.png"
"$PYTHON" - "$WORK/bars.png" "$WORK/bars.svg" "$WORK/curves.png" <<'PY'
import sys, xml.etree.ElementTree as E
for p in (sys.argv[1], sys.argv[3]):
    assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n", p
E.parse(sys.argv[2])
PY

# Sweeps written before the draw index: draws are numbered by their text.
write_runs "$WORK/noindex" noindex
run_expect 0 "$WORK/o" -- "$OODTRAIN" collect "$WORK/noindex" --select all
diff <(grep '^|' "$WORK/all.txt") <(grep '^|' "$WORK/o") || fail "numbering draws by their text changed the tables"

run_expect 2 "$WORK/o" -- "$OODTRAIN" collect "$WORK/runs" --select best
expect_contains "$WORK/o" "--select: 'best' is not one of"
mkdir "$WORK/empty"
run_expect 1 "$WORK/o" -- "$OODTRAIN" collect "$WORK/empty"
expect_contains "$WORK/o" "no finished sweep runs"
run_expect 2 "$WORK/o" -- "$OODTRAIN" collect "$WORK/nowhere"
expect_contains "$WORK/o" "is not a directory"
echo "1 passed, 0 failed"
