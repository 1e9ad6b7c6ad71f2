#!/root/.cache/oodt/golden-venv/bin/python
"""Forward-parity fixtures for the pretrained-architecture backbones, written to
tests/fixtures/backbones.h5. No weights are stored: the reference model and oodtrain's own
model both fill every state-dict tensor with the same deterministic formula (FORMULA below),
the reference runs in float64 on a fixed input, and the C++ test compares its output.

Environment that produced the committed file (a virtualenv over Debian's python3, so the
reference runs on Debian's torch 1.13, the same as our LibTorch):
    torch 1.13.0a0 (python3-torch), torchvision 0.14.1a0 (python3-torchvision),
    timm 1.0.31, open_clip_torch 2.32.0 (the newest that accepts torch 1.13; 3.x wants torch 2),
    h5py 3.7.0, numpy 1.24.2 (Debian)
Recreate:
    apt-get install -y python3-torch python3-torchvision python3-h5py python3-numpy python3-venv
    /usr/bin/python3 -m venv --system-site-packages /root/.cache/oodt/golden-venv
    printf 'torch==1.13.0a0\\ntorchvision==0.14.1a0\\n' > /tmp/golden-constraints.txt
    /root/.cache/oodt/golden-venv/bin/pip install -c /tmp/golden-constraints.txt \\
        timm==1.0.31 open_clip_torch==2.32.0 safetensors==0.8.0
    /root/.cache/oodt/golden-venv/bin/python tests/golden/make_backbone_golden.py tests/fixtures/backbones.h5
Options: --check also rebuilds resnet18 from the filled state dict and verifies the fill (see
self_check); --only CASE[,CASE] limits the cases (for quick looks; never for the committed file).

File layout: one group per case with uint8 text datasets (UTF-8 bytes) `source`, `reference`,
`names` (state-dict keys joined by "\\n", which defines p), `shapes` (JSON), `output`
("logits" | "features"); float64 `input` [2,3,H,W] (torch.randn(2,3,H,W, dtype=float64,
generator=torch.Generator().manual_seed(seed)); groups of the same H share one dataset through
an HDF5 hard link), `eval` and, for the ResNets, `train` (BatchNorm on batch statistics);
int64 `seed`.
Root: text `formula`, `generator`; float64 `hash_check` [8] = the raw u of the formula for
p=3, k=0..7 (before any scaling), so the C++ side can unit-test its hash on its own.
"""
import argparse
import copy
import json
import math
import random
import sys

import h5py
import numpy as np
import torch

FORMULA = """Deterministic fill of every tensor of the reference model's state_dict() (parameters and
buffers, in state_dict order), after model.double(). Tensor number p (0-based position in that
order) has n elements in row-major order k = 0..n-1 of its shape. Each element gets a full-rank
pseudo-random u in [-1, 1) from splitmix64's output function, in uint64 with wrapping arithmetic:
  z = (p << 32) + k + 0x9E3779B97F4A7C15
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ^ (z >> 27)) * 0x94D049BB133111EB
  z = z ^ (z >> 31)
  u = double(z >> 11) * 2^-53 * 2.0 - 1.0          (exact in float64)
Rules, first match wins, evaluated in float64 in this order:
  name ends with "num_batches_tracked": 0
  name ends with "running_var": 1.0 + 0.5*u
  1-D tensor whose name ends with "weight": 1.0 + 0.2*u
  any other 1-D tensor (biases, running_mean, CLIP class_embedding [W]): 0.1*u
  0-dim tensor: 0.1*u (k = 0)
  tensor with >= 2 dims: u * s, with s = sqrt(3.0) / sqrt(double(n / shape[0])) computed once per
    tensor (n / shape[0] an integer division; sqrt correctly rounded), so the fan-in-scaled
    uniform has variance 1 / fan_in.
"""

# name -> (source, H=W, output kind, train mode too?)
CASES = {
    "resnet18": ("torchvision", 64, "logits", True),
    "resnet34": ("torchvision", 64, "logits", True),
    "resnet50": ("torchvision", 64, "logits", True),
    "resnet101": ("torchvision", 64, "logits", True),
    "vit_b16": ("timm", 32, "logits", False),
    "vit_s16": ("timm", 32, "logits", False),
    "clip_vit_b32": ("open_clip", 64, "features", False),
    "clip_vit_b16": ("open_clip", 32, "features", False),
    "tv_vit_b16": ("torchvision", 32, "logits", False),
}
# One input per image size, shared by the cases of that size (stored once, hard-linked into
# each group: random float64 does not compress, and the file is committed).
SEEDS = {64: 101, 32: 102}


def build(case):
    """Returns (model, human-readable reference description)."""
    import torchvision

    base = f"torch {torch.__version__}; "
    if case.startswith("resnet"):
        call = f"torchvision.models.{case}(num_classes=10)"
        return getattr(torchvision.models, case)(num_classes=10), base + f"torchvision {torchvision.__version__}: {call}"
    if case == "tv_vit_b16":
        call = "torchvision.models.vit_b_16(image_size=32, num_classes=10)"
        return torchvision.models.vit_b_16(image_size=32, num_classes=10), base + f"torchvision {torchvision.__version__}: {call}"
    if case in ("vit_b16", "vit_s16"):
        import timm

        arch = {"vit_b16": "vit_base_patch16_224", "vit_s16": "vit_small_patch16_224"}[case]
        call = f"timm.create_model('{arch}', pretrained=False, img_size=32, num_classes=10)"
        return timm.create_model(arch, pretrained=False, img_size=32, num_classes=10), base + f"timm {timm.__version__}: {call}"
    if case.startswith("clip_"):
        import open_clip

        arch, size = {"clip_vit_b32": ("ViT-B-32-quickgelu", 64), "clip_vit_b16": ("ViT-B-16-quickgelu", 32)}[case]
        call = f"open_clip.create_model('{arch}', pretrained=None, force_image_size={size}).visual"
        model = open_clip.create_model(arch, pretrained=None, force_image_size=size).visual
        # The -quickgelu configs must really give QuickGELU (x*sigmoid(1.702x)), as OpenAI's CLIP.
        acts = {type(m).__name__ for m in model.modules() if "GELU" in type(m).__name__}
        assert acts == {"QuickGELU"}, acts
        return model, base + f"open_clip_torch {open_clip.__version__}: {call} (QuickGELU activations)"
    raise KeyError(case)


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def hash_u(p, k):
    """The formula's u for tensor p at the positions k (uint64 array), vectorized. Every constant
    is an np.uint64 so numpy stays in uint64 (a Python int would promote to float64); the
    multiplies wrap modulo 2^64 on purpose."""
    k = np.asarray(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (np.uint64(p) << np.uint64(32)) + k + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        z = z ^ (z >> np.uint64(31))
    # z >> 11 < 2^53 converts to double exactly; the scaling by powers of two and the -1 are exact.
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0


def hash_u_scalar(p, k):
    """Same u with Python's unbounded ints reduced mod 2^64: an independent path for self_check."""
    m = (1 << 64) - 1
    z = ((p << 32) + k + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z = z ^ (z >> 31)
    return float(z >> 11) * 2.0**-53 * 2.0 - 1.0


def fill_values(name, shape, p):
    """The formula's values for one tensor, as a float64 numpy array of the given shape."""
    n = int(np.prod(shape)) if len(shape) else 1
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.float64)
    u = hash_u(p, np.arange(n, dtype=np.uint64))
    if name.endswith("running_var"):
        v = 1.0 + 0.5 * u
    elif len(shape) == 1 and name.endswith("weight"):
        v = 1.0 + 0.2 * u
    elif len(shape) <= 1:
        v = 0.1 * u
    else:
        s = math.sqrt(3.0) / math.sqrt(n // shape[0])
        v = u * s
    return v.reshape(shape)


def fill(model):
    """Fills the (already double) model in place; returns the state-dict names and shapes."""
    sd = model.state_dict()
    names, shapes = [], []
    with torch.no_grad():
        for p, (name, t) in enumerate(sd.items()):
            shape = list(t.shape)
            t.copy_(torch.from_numpy(np.asarray(fill_values(name, shape, p))))
            names.append(name)
            shapes.append(shape)
    return names, shapes


def make_input(size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=g, dtype=torch.float64)


def run_case(case):
    source, size, kind, with_train = CASES[case]
    seed = SEEDS[size]
    torch.manual_seed(0)  # construction-time init is overwritten, but keep it fixed anyway
    model, reference = build(case)
    model = model.double()
    names, shapes = fill(model)
    x = make_input(size, seed)
    fresh = copy.deepcopy(model)  # untouched copy of the fresh fill for the train-mode forward
    model.eval()
    with torch.no_grad():
        ev = model(x).clone()
    out = {"source": source, "reference": reference + "; model.double(), filled by the formula",
           "names": names, "shapes": shapes, "input": x, "eval": ev, "output": kind, "seed": seed}
    if with_train:
        fresh.train()
        with torch.no_grad():
            out["train"] = fresh(x).clone()
    return out, model


def text(g, name, s):
    g.create_dataset(name, data=np.frombuffer(s.encode("utf-8"), dtype=np.uint8))


def sane(case, key, y):
    y = y.numpy()
    m = float(np.abs(y).max())
    assert np.isfinite(y).all(), (case, key, "non-finite output")
    assert m > 1e-6, (case, key, "output ~0", m)
    assert m < 1e6, (case, key, "output explodes", m)
    # How much the output depends on the input at all (the two batch rows are different inputs).
    # With full-rank weights this is of order 1 relative; an earlier rank-2 fill gave ~1e-5, which
    # a C++ comparison with a loose tolerance could not tell from an input-independent output.
    # Reported, and must be clearly nonzero.
    d = float(np.abs(y[0] - y[1]).max())
    assert d > 1e-3 * m, (case, key, "output hardly depends on the input", d / m)
    return m, d


def self_check(case="resnet18"):
    """Second path for one case: the filled state dict loaded (strict) into a freshly built model
    must reproduce the outputs, every tensor must match the formula computed element by element
    with Python ints (hash_u_scalar, not the numpy path) at spot positions, and no parameter or
    buffer may have escaped the fill."""
    # The hash itself against splitmix64 as published (Vigna, splitmix64.c): seeded with x = 0,
    # its i-th next() (i = 0, 1, ...) mixes the state (i + 1) * 0x9E3779B97F4A7C15, which is our
    # z for (p << 32) + k = i * 0x9E3779B97F4A7C15 (mod 2^64).
    known = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    for i, want in enumerate(known):
        pk = (i * 0x9E3779B97F4A7C15) % 2**64
        want_u = float(want >> 11) * 2.0**-53 * 2.0 - 1.0
        assert hash_u_scalar(pk >> 32, pk & 0xFFFFFFFF) == want_u, i
        assert hash_u(pk >> 32, np.array([pk & 0xFFFFFFFF], dtype=np.uint64))[0] == want_u, i
    r = random.Random(7)
    ps = [0, 3, 77, 4095]
    ks = [0, 1, 7, 2**31 - 1, 2**32 - 1] + [r.randrange(2**32) for _ in range(64)]
    for p in ps:
        vec = hash_u(p, np.array(ks, dtype=np.uint64))
        for k, got in zip(ks, vec.tolist()):
            assert got == hash_u_scalar(p, k), (p, k)
            assert -1.0 <= got < 1.0
    out, model = run_case(case)
    sd = model.state_dict()
    # Every parameter and persistent buffer went through the fill (both views of the model).
    owned = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    assert owned == set(sd), owned ^ set(sd)
    rng = np.random.default_rng(0)
    for p, (name, t) in enumerate(sd.items()):
        flat = t.reshape(-1)
        n = flat.numel()
        for k in set(rng.integers(0, n, size=8).tolist()) | {0, n - 1}:
            u = hash_u_scalar(p, k)
            if name.endswith("num_batches_tracked"):
                want = 0.0
            elif name.endswith("running_var"):
                want = 1.0 + 0.5 * u
            elif t.dim() == 1 and name.endswith("weight"):
                want = 1.0 + 0.2 * u
            elif t.dim() <= 1:
                want = 0.1 * u
            else:
                want = u * (math.sqrt(3.0) / math.sqrt(n // t.shape[0]))
            got = float(flat[k])
            assert got == want, (name, k, got, want)
    rebuilt, _ = build(case)
    rebuilt = rebuilt.double()
    rebuilt.load_state_dict(copy.deepcopy(sd), strict=True)
    rebuilt.eval()
    with torch.no_grad():
        y = rebuilt(out["input"])
    assert torch.equal(y, out["eval"]), (y - out["eval"]).abs().max()
    # A model whose fill missed a tensor would keep its random init: an independently seeded
    # build + fill must agree bit for bit.
    torch.manual_seed(12345)
    other, _ = build(case)
    other = other.double()
    fill(other)
    other.eval()
    with torch.no_grad():
        assert torch.equal(other(out["input"]), out["eval"])
    print(f"self-check {case}: ok ({len(sd)} tensors, rebuilt and reseeded outputs identical)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--only", default="")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    cases = args.only.split(",") if args.only else list(CASES)
    if args.check:
        self_check()
    with h5py.File(args.out, "w") as f:
        text(f, "formula", FORMULA)
        f.create_dataset("hash_check", data=hash_u(3, np.arange(8, dtype=np.uint64)))
        inputs = {}
        text(f, "generator", "tests/golden/make_backbone_golden.py (run with " + sys.executable + ")")
        for case in cases:
            out, _ = run_case(case)
            g = f.create_group(case)
            for key in ("source", "reference", "output"):
                text(g, key, out[key])
            text(g, "names", "\n".join(out["names"]))
            text(g, "shapes", json.dumps(out["shapes"]))
            g.create_dataset("seed", data=np.int64(out["seed"]))
            size = out["input"].shape[-1]
            if size in inputs:
                assert np.array_equal(inputs[size][()], out["input"].numpy())
                g["input"] = inputs[size]  # hard link: reads as an ordinary dataset
            else:
                inputs[size] = g.create_dataset("input", data=out["input"].numpy())
            mags = []
            for key in ("eval", "train"):
                if key in out:
                    g.create_dataset(key, data=out[key].numpy())
                    m, d = sane(case, key, out[key])
                    mags.append(f"{key} {list(out[key].shape)} max|y|={m:.4g} max|y0-y1|/max|y|={d / m:.3g}")
            print(f"{case}: {len(out['names'])} tensors; " + "; ".join(mags))


if __name__ == "__main__":
    main()
