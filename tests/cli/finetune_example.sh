# scripts/finetune_example.sh end to end (random open_clip- and torchvision-named weights,
# Colored FMNIST made RGB), then its outputs checked against what the files it wrote imply:
# the import against the file's own tensors and names, the probe's frozen trunk, WiSE-FT's
# endpoints against `eval` and the fine-tune's metrics, the sweep runs' origin, the greedy
# soup's rule and average. Also: the shipped recipes resolve, and a failing step fails the script.
source "$(dirname "$0")/common.sh" "$@"
ROOT=$(cd "$SRC/.." && pwd)
EX=$WORK/ex

# A step that fails stops the script with its log (here: no usable oodtrain).
run_expect 1 "$WORK/o" -- bash "$ROOT/scripts/finetune_example.sh" "$WORK/bad" /bin/false
expect_contains "$WORK/o" "finetune_example: step 'data' failed"

set +e
timeout 300 bash "$ROOT/scripts/finetune_example.sh" "$EX" "$OODTRAIN" > "$WORK/o" 2>&1
rc=$?
set -e
[ "$rc" -eq 0 ] || { cat "$WORK/o"; fail "finetune_example.sh exited $rc"; }
expect_contains "$WORK/o" "finetune example done"
cat "$WORK/o"

# The import report lists every text-tower entry of the whole CLIP file as ignored.
expect_contains "$EX/logs/import.txt" "head: 2 classes from $EX/weights/zeroshot.safetensors"
expect_contains "$EX/logs/import.txt" "ignored 6 tensors outside 'visual.'"
expect_contains "$EX/logs/lp.txt" "optim.freeze: 32 of 34 parameter tensors frozen"  # 3 + 2 + 2 x 12 + 2 + 1 visual.*, + head
expect_contains "$EX/logs/erm.txt" "init: head.fc reset: the checkpoint's classifies 1000 classes from 256 features, this model 2 from 256"

"$PYTHON" - "$EX" <<'PY'
import csv, glob, json, re, struct, sys
import h5py
import numpy as np
import yaml

ex = sys.argv[1]
def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        a, b = d["data_offsets"]
        dtype = {"F32": "<f4", "I64": "<i8"}[d["dtype"]]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype).reshape(d["shape"])
    return out
def model(path):
    with h5py.File(path) as f:
        return {k: f["model"][k][()] for k in f["model"]}
def origin(path):
    with h5py.File(path) as f:
        return f["meta/init_from"][()].tobytes().decode()

# --- import: open_clip's names -> ours, written out by hand from open_clip's VisionTransformer.
clip = read_safetensors(f"{ex}/weights/clip_small.safetensors")
theta0 = model(f"{ex}/weights/theta0.h5")
block = [("ln_1.", "ln1."), ("attn.in_proj_weight", "attn.qkv.weight"), ("attn.in_proj_bias", "attn.qkv.bias"),
         ("attn.out_proj.", "attn.proj."), ("ln_2.", "ln2."), ("mlp.c_fc.", "fc1."), ("mlp.c_proj.", "fc2.")]
def ours(name):
    name = name[len("visual."):]
    m = re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", name)
    if m:
        for theirs, mine in block:
            if m[2].startswith(theirs):
                return f"trunk.blocks.{m[1]}.{mine}{m[2][len(theirs):]}"
        raise KeyError(name)
    if name in ("conv1.weight", "class_embedding", "positional_embedding"):
        return "trunk.embed." + name
    return "trunk.proj.weight" if name == "proj" else "trunk." + name
visual = [k for k in clip if k.startswith("visual.")]
assert len(visual) == 32, len(visual)
for k in visual:
    assert np.array_equal(theta0[ours(k)], clip[k]), (k, ours(k))
head = read_safetensors(f"{ex}/weights/zeroshot.safetensors")["weight"]
assert np.array_equal(theta0["head.fc.weight"], head) and not theta0["head.fc.bias"].any()
assert sorted(theta0) == sorted([ours(k) for k in visual] + ["head.fc.weight", "head.fc.bias"])
ignored = [line.strip() for line in open(f"{ex}/logs/import.txt")][3:9]
assert ignored == [k for k in clip if not k.startswith("visual.")], ignored

# --- probe, LP-FT, fine-tune: what moved and where each started.
lp, lpft, ft = (f"{ex}/runs/{r}/ckpt_000000008.h5" for r in ("lp", "lpft", "ft"))
mlp, mlpft, mft = model(lp), model(lpft), model(ft)
trunk = [k for k in theta0 if k.startswith("trunk.")]
assert all(np.array_equal(mlp[k], theta0[k]) for k in trunk), "the probe's frozen trunk moved"
assert not np.array_equal(mlp["head.fc.weight"], theta0["head.fc.weight"]), "the probe's head did not train"
assert all(not np.array_equal(mft[k], theta0[k]) for k in trunk), "a fine-tuned trunk tensor did not move"
assert all(not np.array_equal(mlpft[k], mlp[k]) for k in trunk)
assert origin(lp) == origin(ft) == f"{ex}/weights/theta0.h5" and origin(lpft) == lp

# --- WiSE-FT: 5 alphas; alpha 0 scores as `eval` scores theta_0, alpha 1 as the fine-tune's last evaluation.
rows = list(csv.DictReader(open(f"{ex}/wise/interpolation.csv")))
assert [float(r["alpha"]) for r in rows] == [0, 0.25, 0.5, 0.75, 1], rows
zs = json.load(open(f"{ex}/zeroshot_eval.json"))[0]["summary"]
last = json.loads(open(f"{ex}/runs/ft/metrics.jsonl").read().splitlines()[-1])["summary"]
for row, s in ((rows[0], zs), (rows[-1], last)):
    assert abs(float(row["id_acc"]) - s["val_acc"]) < 1e-9 and abs(float(row["ood_acc"]) - s["heldout_acc"]) < 1e-9, (row, s)

# --- the sweep: two runs, both fine-tuned from theta_0.
cands = sorted(glob.glob(f"{ex}/sweeps/soup/*/ckpt_000000008.h5"))
assert len(cands) == 2, cands
assert all(origin(c) == f"{ex}/weights/theta0.h5" for c in cands), [origin(c) for c in cands]

# --- greedy soup: best candidate first, the next kept iff the soup scores >= it, the soup the mean of the kept.
s = json.load(open(f"{ex}/soup/soup.json"))
c = s["candidates"]
assert s["method"] == "greedy" and sorted(x["path"] for x in c) == cands
assert c[0]["val_acc"] >= c[1]["val_acc"] and c[0]["kept"]
assert c[1]["kept"] == (c[1]["soup_val_acc"] >= c[0]["soup_val_acc"])
assert s["kept"] == [x["path"] for x in c if x["kept"]]
assert s["val_acc"] == (c[1]["soup_val_acc"] if c[1]["kept"] else c[0]["soup_val_acc"])
soup, kept = model(f"{ex}/soup/soup.h5"), [model(p) for p in s["kept"]]
for k in soup:
    assert np.allclose(soup[k], np.mean([m[k] for m in kept], 0), rtol=1e-6, atol=1e-7), k

# --- ResNet-50: torchvision names X -> trunk.X, fc -> head.fc; then trained from it.
r50 = read_safetensors(f"{ex}/weights/r50_small.safetensors")
imported = model(f"{ex}/weights/r50.h5")
assert sorted(imported) == sorted(("head." + k) if k.startswith("fc.") else ("trunk." + k) for k in r50)
for k, v in r50.items():
    assert np.array_equal(imported[("head." + k) if k.startswith("fc.") else ("trunk." + k)].reshape(v.shape), v), k
erm = f"{ex}/runs/erm/ckpt_000000008.h5"
assert origin(erm) == f"{ex}/weights/r50.h5"
with h5py.File(erm) as f:
    optim = yaml.safe_load(f["meta/config"][()].tobytes().decode())["optim"]
assert optim["name"] == "adam" and optim["lr"] == 5e-5 and optim["weight_decay"] == 0, optim
print("finetune example outputs ok")
PY

# The shipped recipes resolve (every key checked), and the soup sweep expands to 3 x 2 x 2 x 2 runs.
for f in wiseft_clip_vitb32 domainbed_erm_resnet50; do
  run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$ROOT/configs/finetune/$f.yaml" --dump-config
done
(cd "$ROOT" && run_expect 0 "$WORK/o" -- "$OODTRAIN" sweep plan configs/finetune/soup_sweep.yaml)
expect_contains "$WORK/o" "24 runs in runs/sweeps/soup: 24 not started"
echo "finetune example ok"
