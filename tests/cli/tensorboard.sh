# The run's flat logs, read back by their usual readers: TensorBoard events (log.tensorboard)
# through the tensorboard package, metrics.csv through Python's csv module, both checked
# against metrics.jsonl (written by another code path); and the progress line's triggers.
source "$(dirname "$0")/common.sh" "$@"
# scripts/setup.sh makes this virtualenv (tensorboard is on PyPI only).
TB_PYTHON=${TB_PYTHON:-$HOME/.cache/oodt/py-venv/bin/python}
"$TB_PYTHON" -c "import tensorboard" 2> /dev/null ||
  fail "no Python with the tensorboard package at $TB_PYTHON: run scripts/setup.sh (or set TB_PYTHON)"
MPI=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")

# The keys exist, with their defaults, and typos are caught.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --dump-config
"$PYTHON" -c "
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert c['log'] == {'tensorboard': False, 'csv': True}, c['log']
assert c['train']['log_every'] == 50 and c['train']['log_every_s'] == 30, c['train']" "$WORK/o"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set log.tensorbord=true
expect_contains "$WORK/o" "log.tensorbord: unknown key; did you mean 'log.tensorboard'?"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set train.log_every_s=-1
expect_contains "$WORK/o" "train.log_every_s: must be >= 0"

# Two ranks, a progress line every 5 steps and none by time.
run_expect 0 "$WORK/full.log" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/full" \
  --set log.tensorboard=true --set train.log_every=5 --set train.log_every_s=0
[ "$(grep -c '^step ' "$WORK/full.log")" -eq 4 ] || { cat "$WORK/full.log"; fail "expected 4 progress lines (steps 5, 10, 15, 20)"; }
for s in 5 10 15 20; do
  grep -qE "^step $s/24  epoch 0  loss\(avg 5 steps\) [0-9]+\.[0-9]{4}  lr [0-9.e-]+  [0-9]+ samples/s  elapsed [0-9]+:[0-9]{2}:[0-9]{2}  eta [0-9]+:[0-9]{2}:[0-9]{2}$" \
    "$WORK/full.log" || { cat "$WORK/full.log"; fail "no well-formed progress line for step $s"; }
done
expect_contains "$WORK/full.log" "eval step 12"
expect_contains "$WORK/full.log" "eval step 24"

# One rank, no held-out domain; a line whenever 1 microsecond passed: one every step.
run_expect 0 "$WORK/one.log" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/one" \
  --set log.tensorboard=true --set 'data.test_domains=[]' --set train.log_every=0 --set train.log_every_s=1e-6
[ "$(grep -c '^step [0-9]*/24  epoch 0  loss(avg 1 steps) ' "$WORK/one.log")" -eq 24 ] ||
  { cat "$WORK/one.log"; fail "expected a progress line at every step"; }
# Both triggers off: no progress lines, the evaluations still reported.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/quiet" \
  --set train.log_every=0 --set train.log_every_s=0 --set train.steps=4
! grep -q "^step " "$WORK/o" || { cat "$WORK/o"; fail "progress lines with both triggers off"; }
expect_contains "$WORK/o" "eval step 4"
[ ! -e "$WORK/quiet/tb" ] || fail "log.tensorboard is off by default, yet $WORK/quiet/tb exists"

# Interrupted at step 10; its newest checkpoint lost, so the resumed run (from step 8) replays
# steps 9 and 10 into a second events file. TensorBoard must show each step once.
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" \
  --set log.tensorboard=true --stop-at-step 10
rm "$WORK/part/ckpt_000000010.h5" "$WORK/part/ckpt_000000010.h5.sum"
sleep 1  # a second events file named by another second (a same-second name gets a suffix anyway)
run_expect 0 "$WORK/o" -- "${MPI[@]}" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" \
  --set log.tensorboard=true --resume
expect_contains "$WORK/o" "resuming from $WORK/part/ckpt_000000008.h5 (step 8)"

# The domains in the data file's order: the final table lists them so.
DOMAINS=$(awk '/^domain  /{t=1; next} t && NF {print $1}' "$WORK/full.log" | paste -sd, -)
[ -n "$DOMAINS" ] || { cat "$WORK/full.log"; fail "no domain table"; }

"$TB_PYTHON" - "$WORK" "$DOMAINS" "$(hostname)" <<'PY'
import csv, glob, json, math, os, re, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

work, domains, host = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
failures = []
def check(ok, what):
    if not ok:
        failures.append(what)

def rows_of(run):
    return [json.loads(l) for l in open(os.path.join(work, run, "metrics.jsonl"))]

def events_files(run):
    return sorted(glob.glob(os.path.join(work, run, "tb", "*")))

def records(path):
    # TensorBoard's own record reader: a bad length or CRC raises DataLossError.
    reader = pywrap_tensorflow.PyRecordReader_New(path.encode())
    out = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return out
        out.append(event_pb2.Event.FromString(reader.record()))

def scalars(run):
    acc = ea.EventAccumulator(os.path.join(work, run, "tb"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

def close(a, b):  # TensorBoard keeps float32
    return b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))

# --- two ranks: one file, from rank 0 only, named as TensorBoard expects
files = events_files("full")
check(len(files) == 1, f"full: expected one events file (rank 0's), found {files}")
check(re.fullmatch(r"events\.out\.tfevents\.\d{10}\." + re.escape(host), os.path.basename(files[0])),
      f"full: events file name {os.path.basename(files[0])}")
recs = records(files[0])
check(recs[0].file_version == "brain.Event:2", f"full: first record {recs[0]}")
check(all(not r.file_version for r in recs[1:]), "full: file_version in a later record")
check(recs[1].session_log.status == event_pb2.SessionLog.START and recs[1].step == 1,
      f"full: second record should be SessionLog START at step 1: {recs[1]}")

tb = scalars("full")
rows = rows_of("full")
eval_steps = [r["step"] for r in rows]
check(eval_steps == [12, 24], f"full: metrics.jsonl steps {eval_steps}")
for tag in ("train/loss", "train/lr"):
    check([s for s, _ in tb.get(tag, [])] == list(range(1, 25)), f"full: {tag} steps {tb.get(tag)}")
check(all(math.isfinite(v) for _, v in tb["train/loss"]), "full: a non-finite train/loss")
want = {"train/window_loss": "train_loss", "train/samples_per_s": "samples_per_s", "train/step_s": "step_s"}
for key in ("val_acc", "heldout_acc", "heldout_conf", "heldout_ece"):
    want["eval/" + key] = ("summary", key)
for d in domains:
    for split in ("in", "out"):
        for m in ("acc", "loss", "ece", "conf"):
            want[f"eval/{d}/{split}/{m}"] = ("domains", d, split, m)
def value(row, key):
    if isinstance(key, str):
        return row[key]
    for k in key:
        row = row[k]
    return row
for tag, key in want.items():
    got = tb.get(tag)
    check(got is not None and [s for s, _ in got] == eval_steps, f"full: {tag} at steps {got}")
    for (step, v), row in zip(got or [], rows):
        check(close(v, value(row, key)), f"full: {tag} at step {step}: {v} vs metrics.jsonl {value(row, key)}")
lr = dict(tb["train/lr"])
for row in rows:
    check(close(lr[row["step"]], row["lr"]), f"full: train/lr at {row['step']}: {lr[row['step']]} vs {row['lr']}")
extra = set(tb) - set(want) - {"train/loss", "train/lr"}
check(not extra, f"full: unexpected tags {extra}")

# --- metrics.csv: the same numbers, RFC 4180, the documented columns
with open(os.path.join(work, "full", "metrics.csv"), newline="") as f:
    raw = f.read()
check(raw.count("\r\n") == 3 and raw.endswith("\r\n"), "full: metrics.csv records must end in CRLF")
table = list(csv.reader(raw.splitlines(keepends=True)))
header = ["step", "epoch", "lr", "train_loss", "samples_per_s", "step_s", "val_acc", "heldout_acc", "heldout_conf",
          "heldout_ece"] + [f"{d}/{s}/{m}" for d in domains for s in ("in", "out") for m in ("acc", "loss", "ece", "conf")]
check(table[0] == header, f"full: metrics.csv header {table[0]}")
check(len(table) == 3, f"full: metrics.csv has {len(table)} records")
for rec, row in zip(table[1:], rows):
    for name, cell in zip(header, rec):
        if "/" in name:
            d, s, m = name.split("/")
            ref = row["domains"][d][s][m]
        elif name in ("val_acc", "heldout_acc", "heldout_conf", "heldout_ece"):
            ref = row["summary"][name]
        else:
            ref = row[name]
        # Both are the shortest decimal of the same double: exact.
        check(float(cell) == ref, f"full: metrics.csv {name} at step {row['step']}: {cell} vs {ref}")

# --- one rank: train/loss is the step's loss, so a window's mean is metrics.jsonl's train_loss
tb1 = scalars("one")
rows1 = rows_of("one")
losses = dict(tb1["train/loss"])
check(sorted(losses) == list(range(1, 25)), f"one: train/loss steps {sorted(losses)}")
begin = 1
for row in rows1:
    window = [losses[s] for s in range(begin, row["step"] + 1)]
    mean = sum(window) / len(window)
    check(abs(mean - row["train_loss"]) <= 1e-6 * abs(row["train_loss"]),
          f"one: mean train/loss over steps {begin}..{row['step']} {mean} vs train_loss {row['train_loss']}")
    begin = row["step"] + 1
# No held-out domain: nothing measured, so no scalar, and an empty CSV field (null in JSON).
check(rows1[-1]["summary"]["heldout_acc"] is None, "one: heldout_acc should be null")
check("eval/heldout_acc" not in tb1 and "eval/val_acc" in tb1, f"one: tags {sorted(tb1)}")
with open(os.path.join(work, "one", "metrics.csv"), newline="") as f:
    recs1 = list(csv.DictReader(f))
check([r["heldout_acc"] for r in recs1] == ["", ""], f"one: heldout_acc cells {[r['heldout_acc'] for r in recs1]}")
check([float(r["val_acc"]) for r in recs1] == [r["summary"]["val_acc"] for r in rows1], "one: val_acc cells")

# --- interrupted and resumed: two files, merged by TensorBoard into one curve
files = events_files("part")
check(len(files) == 2, f"part: expected two events files, found {files}")
check(records(files[0])[-1].step == 10, "part: the first file should end at step 10")
second = records(files[1])
check(second[1].session_log.status == event_pb2.SessionLog.START and second[1].step == 9,
      f"part: the resumed file should start with SessionLog START at step 9: {second[1]}")
tbp = scalars("part")
check(tbp["train/loss"] == tb["train/loss"],
      f"part: merged train/loss differs from the uninterrupted run's:\n{tbp['train/loss']}\n{tb['train/loss']}")
check([s for s, _ in tbp["eval/val_acc"]] == [12, 24], f"part: eval/val_acc steps {tbp['eval/val_acc']}")
# The accumulator the TensorBoard server itself loads with (scalars as tensors) agrees.
pacc = pea.EventAccumulator(os.path.join(work, "part", "tb"), size_guidance={"tensors": 0})
pacc.Reload()
check([e.step for e in pacc.Tensors("train/loss")] == list(range(1, 25)),
      f"part: the server's accumulator shows train/loss at steps {[e.step for e in pacc.Tensors('train/loss')]}")
with open(os.path.join(work, "part", "metrics.csv"), newline="") as f:
    recp = list(csv.reader(f))
check(recp[0] == header and [r[0] for r in recp[1:]] == ["12", "24"], f"part: metrics.csv {recp}")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print("tensorboard and csv checks ok")
PY

# --overwrite clears the events and the CSV with the rest of the run's files.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/tiny.yaml" --set run.dir="$WORK/part" \
  --set log.tensorboard=true --set train.steps=2 --overwrite
[ "$(ls "$WORK/part/tb" | wc -l)" -eq 1 ] || { ls -l "$WORK/part/tb"; fail "--overwrite left old events files"; }
[ "$(grep -c . "$WORK/part/metrics.csv")" -eq 2 ] || { cat "$WORK/part/metrics.csv"; fail "--overwrite left old CSV rows"; }
echo "1 passed, 0 failed"
