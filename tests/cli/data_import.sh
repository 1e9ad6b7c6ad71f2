# Image datasets as researchers have them: a DomainBed-layout JPEG/PNG tree and a WILDS-style
# manifest, generated here from the test data in four style domains, imported, trained on 2
# ranks with augmentation and resumed bit-identically; every kind of bad input.
source "$(dirname "$0")/common.sh" "$@"
cmp() { "$PYTHON" "$SRC/cli/compare_checkpoints.py" "$@"; }
ROOT=$WORK/tree
"$PYTHON" - "$DATA" "$ROOT" <<'PY'
import io, os, sys, h5py, numpy as np
from PIL import Image
f = h5py.File(sys.argv[1]); root = sys.argv[2]
images, labels = f["images"][:600, 0], f["labels"][:600]
rng = np.random.default_rng(0)
def style(name, g):  # g: 28x28 uint8 -> RGB uint8
    x = g.astype(np.float32) / 255
    if name == "tint":
        return (np.stack([x, 0.6 * x, 0.2 + 0.5 * x], -1) * 255).astype(np.uint8)
    if name == "invert":
        return (np.stack([1 - x] * 3, -1) * 255).astype(np.uint8)
    if name == "noise":
        return (np.clip(np.stack([x] * 3, -1) + rng.normal(0, 0.15, (28, 28, 3)), 0, 1) * 255).astype(np.uint8)
    gy, gx = np.gradient(x)  # edges
    e = np.clip(np.hypot(gx, gy) * 4, 0, 1)
    return (np.stack([e, e, e * 0.5], -1) * 255).astype(np.uint8)
classes = {0: "shirt", 1: "trouser", 2: "pullover"}
k = 0
for d in ["edges", "invert", "noise", "tint"]:
    for c, cname in classes.items():
        os.makedirs(f"{root}/{d}/{cname}", exist_ok=True)
    n = 0
    for i in range(len(labels)):
        if labels[i] not in classes or n >= 36:
            continue
        img = Image.fromarray(style(d, images[i]))
        if k % 3 == 0:
            img = img.resize((32, 30))  # mixed sizes
        cname = classes[int(labels[i])]
        if k % 4 == 0:
            img.save(f"{root}/{d}/{cname}/{k:04d}.png")
        else:
            img.save(f"{root}/{d}/{cname}/{k:04d}.jpg", quality=90)
        k += 1; n += 1
# The kinds of images people have: grayscale, RGBA, CMYK JPEG, 16-bit PNG, palette, odd names.
g = Image.fromarray(images[0])
g.save(f"{root}/tint/shirt/gray.jpg")
Image.fromarray(style("tint", images[1])).convert("RGBA").save(f"{root}/tint/shirt/rgba.png")
Image.fromarray(style("tint", images[2])).convert("CMYK").save(f"{root}/tint/shirt/cmyk.jpg")
Image.fromarray((images[3].astype(np.uint16) * 257)).save(f"{root}/tint/shirt/deep16.png")
Image.fromarray(style("tint", images[4])).convert("P").save(f"{root}/tint/trouser/palette.png")
Image.fromarray(style("tint", images[5])).save(f"{root}/tint/trouser/spaced name é.jpg")
with open(os.path.join(os.fsencode(f"{root}/tint/trouser"), b"latin1-\xe9.jpg"), "wb") as fh:
    Image.fromarray(style("tint", images[6])).save(fh, format="JPEG")
open(f"{root}/tint/README.txt", "w").write("not an image\n")
open(f"{root}/tint/trouser/notes.txt", "w").write("not an image either\n")
PY
base=(--set train.steps=6 --set train.eval_every=6 --set train.checkpoint_every=3)

# Import: the report names what was converted and what was ignored.
run_expect 0 "$WORK/o" -- "$OODTRAIN" data import "$ROOT" -o "$WORK/styles.h5" --threads 2 --quiet
expect_contains "$WORK/o" "imported 151 images: 4 domains (edges, invert, noise, tint), 3 classes"
expect_contains "$WORK/o" "note: 1 cmyk images (converted to 8-bit RGB when read)"
expect_contains "$WORK/o" "note: 1 16-bit gray images"
expect_contains "$WORK/o" "ignored (not .jpg/.jpeg/.png) 2:"
expect_contains "$WORK/o" "tint/trouser/notes.txt"
# Deterministic whatever the thread count.
run_expect 0 "$WORK/o" -- "$OODTRAIN" data import "$ROOT" -o "$WORK/styles1.h5" --threads 1 --quiet
"$PYTHON" - "$WORK/styles.h5" "$WORK/styles1.h5" "$ROOT" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
for k in a:
    assert np.array_equal(a[k][()], b[k][()]), k
assert list(a.attrs["class_names"]) == ["pullover", "shirt", "trouser"], a.attrs["class_names"]
off, raw = a["image_offsets"][()], a["images_encoded"]
paths = a["image_paths"][()].tobytes(); po = a["image_path_offsets"][()]
for i in (0, 50, 150):  # stored bytes are the files' own
    name = paths[po[i]:po[i + 1]]
    assert raw[off[i]:off[i + 1]].tobytes() == open(sys.argv[3].encode() + b"/" + name, "rb").read(), name
print("import deterministic, bytes as on disk")
PY

# 2 ranks with DomainBed's augmentation at 32 px; resumed from step 3 = uninterrupted.
cat > "$WORK/img.yaml" <<YAML
run: {dir: $WORK/full, seed: 4}
data: {path: $WORK/styles.h5, test_domains: [edges], batch_size: 12, augment: {preset: domainbed, size: 32}}
model: {name: cnn, channels: [4, 8], dropout: 0.1}
optim: {name: adam, lr: 0.001}
train: {steps: 6, eval_every: 6, checkpoint_every: 3, threads: 1}
YAML
np=("$MPIRUN" -np 2 --oversubscribe "$OODTRAIN")
run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/img.yaml"
expect_contains "$WORK/o" "edges          held-out"
run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/img.yaml" --set run.dir="$WORK/part" --set train.steps=6 \
  --stop-at-step 3
run_expect 0 "$WORK/o" -- "${np[@]}" train -c "$WORK/img.yaml" --set run.dir="$WORK/part" --resume
cmp "$WORK/full/ckpt_000000006.h5" "$WORK/part/ckpt_000000006.h5" || fail "resume with augmentation is not bit-identical"
# Without a size, encoded images cannot be batched: the key is named.
run_expect 2 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/img.yaml" --set run.dir="$WORK/x" --set 'data.augment={preset: none}'
expect_contains "$WORK/o" "data.augment.size:"

# --decode stores fixed-size pixels the plain reader takes.
run_expect 0 "$WORK/o" -- "$OODTRAIN" data import "$ROOT" -o "$WORK/dec.h5" --decode 16x16 --quiet
"$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1]); assert f['images'].shape == (151, 3, 16, 16), f['images'].shape" "$WORK/dec.h5"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/img.yaml" --set run.dir="$WORK/dec" --set data.path="$WORK/dec.h5" \
  --set data.augment.preset=none --set train.steps=2

# A manifest with its own splits (WILDS-style): train rows are the in splits.
"$PYTHON" - "$ROOT" "$WORK/manifest.csv" <<'PY'
import csv, os, sys
root, out = sys.argv[1], sys.argv[2]
rows = []
for d in sorted(os.listdir(root)):
    for c in sorted(os.listdir(f"{root}/{d}")):
        if not os.path.isdir(f"{root}/{d}/{c}"):
            continue
        for i, f in enumerate(sorted(x for x in os.listdir(f"{root}/{d}/{c}") if x.endswith(".jpg") and x.isascii())):
            rows.append([os.path.relpath(f"{root}/{d}/{c}/{f}", os.path.dirname(out)), c, d, "train" if i % 4 else "val"])
with open(out, "w", newline="") as fh:
    w = csv.writer(fh); w.writerow(["path", "label", "domain", "split"]); w.writerows(rows)
PY
run_expect 0 "$WORK/o" -- "$OODTRAIN" data import "$WORK/manifest.csv" -o "$WORK/manifest.h5" --quiet
expect_contains "$WORK/o" "4 domains (edges, invert, noise, tint), 3 classes"
run_expect 0 "$WORK/o" -- "$OODTRAIN" train -c "$WORK/img.yaml" --set run.dir="$WORK/man" --set data.path="$WORK/manifest.h5" \
  --set train.steps=2

# Bad input: each named, or skipped and listed with --skip-bad.
cp -r "$ROOT" "$WORK/bad"
head -c 300 "$ROOT/noise/shirt/$(ls "$ROOT/noise/shirt" | grep jpg | head -1)" > "$WORK/bad/noise/shirt/truncated.jpg"
echo "hello" > "$WORK/bad/noise/shirt/text.jpg"
run_expect 1 "$WORK/o" -- "$OODTRAIN" data import "$WORK/bad" -o "$WORK/bad.h5" --quiet
expect_contains "$WORK/o" "noise/shirt/t"
expect_contains "$WORK/o" "(--skip-bad skips unreadable images)"
run_expect 0 "$WORK/o" -- "$OODTRAIN" data import "$WORK/bad" -o "$WORK/bad.h5" --quiet --skip-bad
expect_contains "$WORK/o" "skipped (unreadable) 2:"
expect_contains "$WORK/o" "noise/shirt/text.jpg"
expect_contains "$WORK/o" "noise/shirt/truncated.jpg"
mkdir -p "$WORK/bad/invert/dress"
run_expect 1 "$WORK/o" -- "$OODTRAIN" data import "$WORK/bad" -o "$WORK/bad.h5" --quiet --skip-bad
expect_contains "$WORK/o" "the domains have different class folders ('edges' lacks dress"
touch "$WORK/bad/invert/dress/.keep"
for d in edges noise tint; do mkdir -p "$WORK/bad/$d/dress"; done
run_expect 1 "$WORK/o" -- "$OODTRAIN" data import "$WORK/bad" -o "$WORK/bad.h5" --quiet
expect_contains "$WORK/o" "class folder 'edges/dress' has no .jpg/.jpeg/.png images"
# A known layout with the wrong classes.
mkdir -p "$WORK/pacs"
for d in art_painting cartoon photo sketch; do mkdir -p "$WORK/pacs/$d/dog"; cp "$ROOT/tint/shirt/0003.jpg" "$WORK/pacs/$d/dog/"; done 2>/dev/null || \
  for d in art_painting cartoon photo sketch; do mkdir -p "$WORK/pacs/$d/dog"; cp "$(ls "$ROOT"/tint/shirt/*.jpg | head -1)" "$WORK/pacs/$d/dog/"; done
run_expect 1 "$WORK/o" -- "$OODTRAIN" data import "$WORK/pacs" -o "$WORK/p.h5" --quiet
expect_contains "$WORK/o" "pacs has classes dog, elephant, giraffe, guitar, horse, house, person; found dog"
run_expect 2 "$WORK/o" -- "$OODTRAIN" data import "$ROOT" -o "$WORK/p.h5" --decode 16by16
expect_contains "$WORK/o" "--decode: '16by16' is not HxW"
echo "data import ok"
