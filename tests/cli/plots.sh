# Figures (scripts/oodt_plot.py, embedded in oodtrain): interpolate and soup write PNG and SVG
# beside their numbers, also from a moved binary; the script draws the collect JSON fixture;
# the figures carry axis titles, the alphas as ticks, legends off the data; a missing
# interpreter, a missing matplotlib and a failing script are reported (exit 1).
source "$(dirname "$0")/common.sh" "$@"
SCRIPTS=$SRC/../scripts
FIX=$SRC/fixtures/plots
short=(--set train.steps=8 --set train.eval_every=8 --set train.checkpoint_every=8)
mkdir -p "$WORK/tmp"
export TMPDIR=$WORK/tmp  # where plot() makes its private folder: checked empty at the end

# valid_figures FILE...: PNG signature or an SVG that parses as XML with an <svg> root.
valid_figures() {
  "$PYTHON" - "$@" <<'PY'
import sys, xml.etree.ElementTree as E
for f in sys.argv[1:]:
    if f.endswith(".png"):
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f + ": not a PNG"
    else:
        root = E.parse(f).getroot()
        assert root.tag.endswith("svg"), f + ": root " + root.tag
PY
}

run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/zs"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" "${short[@]}" --set run.dir="$WORK/ft" \
  --init-from "$WORK/zs/ckpt_000000008.h5"
ZS=$WORK/zs/ckpt_000000008.h5
FT=$WORK/ft/ckpt_000000008.h5

# interpolate from a copy of the binary in a folder with no scripts/ near it: the script is
# the one inside the binary.
mkdir -p "$WORK/bin" "$WORK/elsewhere"
cp "$OODTRAIN" "$WORK/bin/oodtrain"
(cd "$WORK/elsewhere" && run_expect 0 "$WORK/o" -- "$WORK/bin/oodtrain" interpolate --zero-shot "$ZS" --finetuned "$FT" \
  --alphas 0:1:0.25 --eval "$WORK/tiny.yaml" --out "$WORK/wise")
expect_contains "$WORK/o" "wrote $WORK/wise/interpolation.png and $WORK/wise/interpolation.svg"
valid_figures "$WORK/wise/interpolation.png" "$WORK/wise/interpolation.svg"

run_expect 0 "$WORK/o" -- "$OODTRAIN" soup --method greedy --checkpoints "$FT" "$ZS" --val "$WORK/tiny.yaml" \
  --out "$WORK/soup/greedy.h5"
valid_figures "$WORK/soup/greedy.png" "$WORK/soup/greedy.svg"
run_expect 0 "$WORK/o" -- "$OODTRAIN" soup --method uniform --checkpoints "$FT" "$ZS" --val "$WORK/tiny.yaml" \
  --out "$WORK/soup/uniform.h5"
valid_figures "$WORK/soup/uniform.png" "$WORK/soup/uniform.svg"

# The script itself on the collect JSON fixture, both formats.
run_expect 1 "$WORK/e" -- "$PYTHON" "$SCRIPTS/oodt_plot.py" bars --in "$FIX/collect.json" --out "$WORK/f/bars.png"
expect_contains "$WORK/e" "oodt_plot bars: cannot write $WORK/f/bars.png"
mkdir -p "$WORK/f"
"$PYTHON" "$SCRIPTS/oodt_plot.py" bars --in "$FIX/collect.json" --out "$WORK/f/bars.png" --out "$WORK/f/bars.svg"
"$PYTHON" "$SCRIPTS/oodt_plot.py" bars --in "$FIX/collect.json" --method oracle --out "$WORK/f/oracle.png"
"$PYTHON" "$SCRIPTS/oodt_plot.py" curves --in "$FIX/collect.json" --out "$WORK/f/curves.png" --out "$WORK/f/curves.svg"
valid_figures "$WORK/f/bars.png" "$WORK/f/bars.svg" "$WORK/f/oracle.png" "$WORK/f/curves.png" "$WORK/f/curves.svg"
run_expect 1 "$WORK/e" -- "$PYTHON" "$SCRIPTS/oodt_plot.py" bars --in "$FIX/collect.json" --method nosuch --out "$WORK/f/x.png"
expect_contains "$WORK/e" "no selection 'nosuch' (have: training-domain, oracle)"

# What the figures show, checked on the Figure objects against numbers read here from the inputs.
"$PYTHON" - "$SCRIPTS" "$FIX" "$WORK" <<'PY'
import csv, json, sys
sys.path.insert(0, sys.argv[1])
import oodt_plot as P
fix, work = sys.argv[2], sys.argv[3]

def visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]

def legends_off_data(fig, name):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legends = [a.get_legend() for a in fig.axes if a.get_legend()] + list(fig.legends)
    assert legends, name + ": no legend"
    for leg in legends:
        lb = leg.get_window_extent(r)
        for a in visible_axes(fig):
            assert not lb.overlaps(a.get_window_extent(r)), f"{name}: legend over the data of {a.get_title(loc='left')!r}"

def ticks_apart(fig, name):
    """No two x tick labels of a panel overlap (long names wrap, rotate or get room)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for a in visible_axes(fig):
        boxes = [t.get_window_extent(r) for t in a.get_xticklabels() if t.get_text()]
        for i in range(len(boxes) - 1):
            assert boxes[i].x1 <= boxes[i + 1].x0, f"{name}: x tick labels {i} and {i + 1} overlap"

# WiSE-FT: ticks at exactly the alphas (the fixture's 0, 0.1, ..., 1; the run's 0:1:0.25).
for path, want in ((fix + "/interpolation.csv", ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]),
                   (work + "/wise/interpolation.csv", ["0", "0.25", "0.5", "0.75", "1"])):
    fig = P.wiseft_figure({"WiSE-FT": [P.read_interpolation(path)]})
    assert len(fig.axes) == 2, fig.axes
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == want, (path, [t.get_text() for t in ax.get_xticklabels()])
        assert ax.get_xlabel().startswith("\u03b1") and ax.get_ylabel(), (ax.get_xlabel(), ax.get_ylabel())
    # ID accuracy in percent, read back from the first panel's first line
    rows = list(csv.DictReader(open(path)))
    ys = fig.axes[0].lines[0].get_ydata()
    assert all(abs(y - 100 * float(r["id_acc"])) < 1e-9 for y, r in zip(ys, rows)), (ys, rows)
    legends_off_data(fig, "wiseft")
    ticks_apart(fig, "wiseft")

# Bars, training-domain selection of the fixture: 3 configurations x (4 domains + Avg) = 15
# cells, 2 of them null (mixup on rot_15 and its Avg) -> 13 bars and 2 x markers; 1 cell has
# n = 1 -> 12 whiskers.
fig = P.bars_figure(json.load(open(fix + "/collect.json")))
ax = fig.axes[0]
assert len(ax.patches) == 13, len(ax.patches)
assert len([l for l in ax.lines if l.get_marker() == "x"]) == 2
assert len(ax.collections) == 12, len(ax.collections)
assert [t.get_text() for t in ax.get_xticklabels()] == ["rot_0", "rot_15", "rot_30", "rot_45", "Avg"]
assert ax.get_xlabel() == "test domain" and ax.get_ylabel() == "held-out accuracy (%)"
assert "training-domain" in ax.get_title(loc="left"), ax.get_title(loc="left")
heights = sorted(round(p.get_height(), 6) for p in ax.patches)
assert heights[-1] == 90.6 and heights[0] == 61.3, heights  # rot_45 of the long config; rot_0 of algorithms=[]
texts = [t.get_text() for t in ax.get_legend().get_texts()]
assert any("lr_scale" in t and "\n" in t for t in texts), texts  # the long name wrapped, not cut
assert "".join(texts).replace("\n", " ").count("merge: greedy}}], optim.lr=0.01") == 1, texts
legends_off_data(fig, "bars")
ticks_apart(fig, "bars")

# Curves: one panel per held-out domain of the fixture (rot_0, rot_15, rot_30); in a panel only
# that domain's accuracy; the mean over seeds computed here from the JSON.
data = json.load(open(fix + "/collect.json"))
fig = P.curves_figure(data)
axes = visible_axes(fig)
assert [a.get_title(loc="left") for a in axes] == ["held out: rot_0", "held out: rot_15", "held out: rot_30"], [a.get_title(loc="left") for a in axes]
for a in axes:
    dom = a.get_title(loc="left").split(": ")[1]
    held = [l.get_label() for l in a.lines if "held-out" in l.get_label()]
    assert held and all(l.endswith("held-out " + dom) for l in held), (dom, held)
    assert a.get_xlabel() == "step", a.get_xlabel()
runs = [c for c in data["curves"] if c["config"] == "algorithms=[]" and "rot_15" in c["held_out"]]
want = sum(next(p for p in c["points"] if p["step"] == 600)["domains"]["rot_15"]["in"] for c in runs) / len(runs) * 100
line = next(l for l in axes[1].lines if l.get_label() == "algorithms=[] | held-out rot_15")
assert abs(line.get_ydata()[list(line.get_xdata()).index(600)] - want) < 1e-9, (line.get_ydata(), want)
assert axes[0].get_ylabel() == "accuracy (%)"
legends_off_data(fig, "curves")

# Soups: the fixture's greedy soup tried 4 candidates and kept 3.
fig = P.soup_figure(json.load(open(fix + "/soup_greedy.json")))
assert "3 of 4 candidates" in fig.axes[0].get_title(loc="left"), fig.axes[0].get_title(loc="left")
assert fig.axes[0].get_ylabel() == "validation accuracy (%)" and fig.axes[0].get_xlabel()
legends_off_data(fig, "soup")
ticks_apart(fig, "soup")
fig = P.soup_figure(json.load(open(work + "/soup/greedy.json")))  # paths ft/ckpt_..., zs/ckpt_...
assert fig.axes[0].get_xlabel()
ticks_apart(fig, "soup of the run")

# The experiment scripts draw through the same module.
import soup_experiments as se, fed_qat_experiments as fq
rows = P.read_interpolation(fix + "/interpolation.csv")
se.plot_wise_ft([{"wise_ft": rows, "wise_bang": rows}] * 2, work + "/f/wise_ft")
fq.plot_rounds({"fedspeed": [[{"round": 4, "val": 0.5}, {"round": 8, "val": 0.6}]] * 2,
                "fedavg": [[{"round": 4, "val": 0.4}, {"round": 8, "val": 0.5}]]}, work + "/f/fed", "FedSpeed vs FedAvg")
fq.plot_qat({"fp32": [0.6, 0.62], "W4A4 LSQ": [0.55, 0.57], "W4A4 GAQAT": [0.56, 0.58]}, work + "/f/qat", "QAT")
print("figures ok")
PY
valid_figures "$WORK/f/wise_ft.png" "$WORK/f/wise_ft.svg" "$WORK/f/fed.png" "$WORK/f/fed.svg" "$WORK/f/qat.svg"

# The shipped figures of docs/results.md redrawn from its tables.
"$PYTHON" "$SCRIPTS/results_figures.py" --out "$WORK/rf" > "$WORK/o" || { cat "$WORK/o"; fail "results_figures.py"; }
valid_figures "$WORK"/rf/{wise_ft_bang,fedspeed_dirichlet,fedspeed_domain,qat_heldout}.{png,svg}

# Failures: the numbers are written first, then the figure's problem is reported (exit 1).
interp() { run_expect 1 "$WORK/o" -- "$OODTRAIN" interpolate --zero-shot "$ZS" --finetuned "$FT" --alphas 1 \
  --eval "$WORK/tiny.yaml" --out "$WORK/$1"; [ -s "$WORK/$1/interpolation.csv" ] || fail "no csv in $1"; }
OODT_PYTHON=$WORK/no/such/python3 interp nopython
expect_contains "$WORK/o" "figures need python3-matplotlib: apt-get install python3-matplotlib (cannot run '$WORK/no/such/python3'"
mkdir -p "$WORK/nompl/matplotlib"
echo 'raise ImportError("no matplotlib in this test")' > "$WORK/nompl/matplotlib/__init__.py"
printf '#!/bin/sh\nPYTHONPATH=%s exec /usr/bin/python3 "$@"\n' "$WORK/nompl" > "$WORK/py-nompl"
printf '#!/bin/sh\nexec /usr/bin/python3 "$@" --bogus-option\n' > "$WORK/py-bad"
chmod +x "$WORK/py-nompl" "$WORK/py-bad"
OODT_PYTHON=$WORK/py-nompl interp nompl
expect_contains "$WORK/o" "figures need python3-matplotlib: apt-get install python3-matplotlib ($WORK/py-nompl cannot import matplotlib"
OODT_PYTHON=$WORK/py-bad interp badscript
expect_contains "$WORK/o" "the wiseft figure of $WORK/badscript/interpolation.csv failed"
expect_contains "$WORK/o" "unrecognized arguments: --bogus-option"   # the script's stderr
# plot()'s private folder is gone after success and failure alike.
if ls -d "$WORK"/tmp/oodt-plot-* 2> /dev/null; then fail "temporary folders left behind"; fi
echo "1 passed, 0 failed"
