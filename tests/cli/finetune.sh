# Starting a fine-tune from pretrained weights: `weights export/import` round trips in the
# source libraries' names, --init-from with skipped names, a reset or given head, frozen
# parameters and per-group learning rates (1 and 2 ranks), and the errors of each.
source "$(dirname "$0")/common.sh" "$@"
# A small torchvision-style ResNet-18 (CIFAR stem, width 4) on the 1-channel test data.
cat > "$WORK/r18.yaml" <<YAML
run: {dir: $WORK/src, seed: 5}
data: {path: $DATA, test_domains: [rot_0], batch_size: 16}
model: {name: resnet18, stem: cifar, width: 4}
optim: {name: sgd, lr: 0.05, momentum: 0.9}
train: {steps: 4, eval_every: 4, checkpoint_every: 4, threads: 1}
YAML
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml"
SRC_CK=$WORK/src/ckpt_000000004.h5

# Export in torchvision's names and import back: the same tensors.
run_expect 0 "$WORK/o" -- "$OODTRAIN" weights export "$SRC_CK" --to torchvision -o "$WORK/r18.safetensors"
expect_contains "$WORK/o" "in torchvision's names"
run_expect 0 "$WORK/o" -- "$OODTRAIN" weights import "$WORK/r18.safetensors" --from torchvision --arch resnet18 \
  --set stem=cifar --set width=4 --channels 1 --image-size 28 -o "$WORK/imported.h5"
expect_contains "$WORK/o" "head: 10 classes from $WORK/r18.safetensors"
"$PYTHON" - "$SRC_CK" "$WORK/imported.h5" "$WORK/r18.safetensors" <<'PY'
import sys, json, struct, h5py, numpy as np
a, b = h5py.File(sys.argv[1])["model"], h5py.File(sys.argv[2])["model"]
assert sorted(a) == sorted(b), set(a) ^ set(b)
for k in a:
    assert np.array_equal(a[k][()], b[k][()]), k
raw = open(sys.argv[3], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
names = set(json.loads(raw[8:8 + n])) - {"__metadata__"}
assert "fc.weight" in names and "layer1.0.conv1.weight" in names and "bn1.running_var" in names, sorted(names)[:5]
print("round trip ok:", len(a), "tensors")
PY

# oodtrain 0.1's CIFAR resnet18 names (stem.conv, shortcut.conv) convert both ways.
run_expect 0 "$WORK/o" -- "$OODTRAIN" weights export "$SRC_CK" --to oodtrain-0.1 -o "$WORK/old.safetensors"
run_expect 0 "$WORK/o" -- "$OODTRAIN" weights import "$WORK/old.safetensors" --from oodtrain-0.1 --arch resnet18 \
  --set stem=cifar --set width=4 --channels 1 --image-size 28 -o "$WORK/from_old.h5"
"$PYTHON" - "$SRC_CK" "$WORK/from_old.h5" "$WORK/old.safetensors" <<'PY'
import sys, json, struct, h5py, numpy as np
a, b = h5py.File(sys.argv[1])["model"], h5py.File(sys.argv[2])["model"]
assert sorted(a) == sorted(b) and all(np.array_equal(a[k][()], b[k][()]) for k in a)
raw = open(sys.argv[3], "rb").read()
names = set(json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]]))
assert {"trunk.stem.conv.weight", "trunk.layer2.0.shortcut.bn.running_var", "head.fc.bias"} <= names
PY

# A 3-class head file (safetensors written by hand: the format is tiny) and an import with it.
"$PYTHON" - "$WORK/head3.safetensors" "$WORK/head_bad.safetensors" <<'PY'
import sys, json, struct, numpy as np
def write(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
rng = np.random.default_rng(0)
write(sys.argv[1], {"weight": rng.standard_normal((3, 32)), "bias": np.arange(3.0)})
write(sys.argv[2], {"weight": rng.standard_normal((10, 31))})
PY
run_expect 0 "$WORK/o" -- "$OODTRAIN" weights import "$WORK/r18.safetensors" --from torchvision --arch resnet18 \
  --set stem=cifar --set width=4 --channels 1 --image-size 28 --head "$WORK/head3.safetensors" -o "$WORK/head3.h5"
expect_contains "$WORK/o" "head: 3 classes from $WORK/head3.safetensors (the file's own classifier is not used)"

ft=(--set train.steps=3 --set train.eval_every=3 --set train.checkpoint_every=3)
# The 3-class head does not fit 10 classes: reset and said so; init.skip keeps layer4 fresh.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/ft1" \
  --init-from "$WORK/head3.h5" --set 'init.skip=["trunk.layer4.*"]'
expect_contains "$WORK/o" "init: head.fc reset: the checkpoint's classifies 3 classes from 32 features, this model 10 from 32"
expect_contains "$WORK/o" "init: skipped (init.skip) 30:"  # layer4: 2 blocks, 6 weight tensors + 6 BNs of 4 + 1
# init.head: keep refuses it, naming the shapes.
run_expect 1 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/ft2" \
  --init-from "$WORK/head3.h5" --set init.head=keep
expect_contains "$WORK/o" "'head.fc.weight' has shape [3, 32], the model expects [10, 32]"
# A head of the wrong shape from a file is named with the file.
run_expect 1 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/ft3" \
  --init-from "$WORK/imported.h5" --set init.head_from="$WORK/head_bad.safetensors"
expect_contains "$WORK/o" "head_bad.safetensors (init.head_from): 'weight' has shape [10, 31], this model's head.fc.weight is [10, 32]"

# Linear probe on 2 ranks: the trunk frozen (untouched, no gradient exchanged), the head trained.
run_expect 0 "$WORK/o" -- "$MPIRUN" -np 2 --oversubscribe "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" \
  --set run.dir="$WORK/lp" --init-from "$WORK/imported.h5" --set 'optim.freeze=["trunk.*"]'
expect_contains "$WORK/o" "optim.freeze: 60 of 62 parameter tensors frozen"
# Then full fine-tuning from the probe with the head at lr 0 (a per-group rate): only the trunk moves.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/ftall" \
  --init-from "$WORK/lp/ckpt_000000003.h5" --set 'optim.groups=[{params: ["head.*"], lr: 0}]'
"$PYTHON" - "$WORK/imported.h5" "$WORK/lp/ckpt_000000003.h5" "$WORK/ftall/ckpt_000000003.h5" <<'PY'
import sys, h5py, numpy as np
init, lp, ft = (h5py.File(p)["model"] for p in sys.argv[1:])
params = [k for k in init if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
trunk = [k for k in params if k.startswith("trunk.")]
assert all(np.array_equal(init[k][()], lp[k][()]) for k in trunk), "frozen trunk moved"
assert not np.array_equal(init["head.fc.weight"][()], lp["head.fc.weight"][()]), "probe head did not train"
assert np.array_equal(lp["head.fc.weight"][()], ft["head.fc.weight"][()]), "head at lr 0 moved"
assert any(not np.array_equal(lp[k][()], ft[k][()]) for k in trunk), "trunk did not train"
print("LP-FT ok")
PY

# --resume that finds no checkpoint (a sweep's or Slurm array's first start) still starts from
# init.from; once a checkpoint exists it resumes from it instead.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/sweeplike" \
  --set init.from="$WORK/imported.h5" --resume
expect_contains "$WORK/o" "init: 122 tensors from $WORK/imported.h5"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/sweeplike" \
  --set init.from="$WORK/imported.h5" --set train.steps=4 --resume
expect_contains "$WORK/o" "resuming from $WORK/sweeplike/ckpt_000000003.h5"
if grep -q "^init:" "$WORK/o"; then fail "a resumed run loaded init.from again"; fi

# Errors name the key.
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" --set run.dir="$WORK/e1" --set 'optim.freeze=["trunk.layr4.*"]'
expect_contains "$WORK/o" "optim.freeze: 'trunk.layr4.*' matches no parameter"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" --set run.dir="$WORK/e2" \
  --set 'optim.groups=[{params: ["head.*"], lr: 0.1, lr_scale: 2}]'
expect_contains "$WORK/o" "optim.groups.0.lr: give lr or lr_scale, not both"
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" --set run.dir="$WORK/e3" --set init.head=maybe
expect_contains "$WORK/o" "init.head: 'maybe' is not one of: auto, keep, reset"
# Names of another library are listed, not dropped.
run_expect 1 "$WORK/o" -- "$OODTRAIN" weights import "$WORK/r18.safetensors" --from timm --arch vit -o "$WORK/x.h5"
expect_contains "$WORK/o" "does not fit vit with the timm names"
expect_contains "$WORK/o" "unexpected in the file"
expect_contains "$WORK/o" "conv1.weight (no rule of the timm table matches)"
run_expect 2 "$WORK/o" -- "$OODTRAIN" weights import "$WORK/r18.safetensors" --from keras --arch resnet18 -o "$WORK/x.h5"
expect_contains "$WORK/o" "--from: 'keras' is not one of: torchvision, timm, open_clip"
# A torchvision ResNet-18 file into the ImageNet-stem model: conv1's shape is named.
run_expect 1 "$WORK/o" -- "$OODTRAIN" weights import "$WORK/r18.safetensors" --from torchvision --arch resnet18 \
  --set width=4 --channels 1 -o "$WORK/x.h5"
expect_contains "$WORK/o" "'conv1.weight' (trunk.conv1.weight) has shape [4, 1, 3, 3], resnet18 at 224 px expects [4, 1, 7, 7]"
# Plugin state has no source name: export refuses unless told to leave it out.
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/r18.yaml" "${ft[@]}" --set run.dir="$WORK/q" --set 'algorithms=[lsq]'
run_expect 1 "$WORK/o" -- "$OODTRAIN" weights export "$WORK/q/ckpt_000000003.h5" --to torchvision -o "$WORK/q.safetensors"
expect_contains "$WORK/o" "have no torchvision name (--skip-unmapped leaves them out)"
run_expect 0 "$WORK/o" -- "$OODTRAIN" weights export "$WORK/q/ckpt_000000003.h5" --to torchvision -o "$WORK/q.safetensors" --skip-unmapped
expect_contains "$WORK/o" "left out"
echo "finetune ok"
