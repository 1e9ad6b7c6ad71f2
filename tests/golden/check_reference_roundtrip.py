"""Round trip through the reference libraries themselves (not run by ctest: it needs timm and
open_clip, see make_backbone_golden.py for the environment):

    /root/.cache/oodt/golden-venv/bin/python tests/golden/check_reference_roundtrip.py \
        build/launch/oodtrain /tmp/rt

For torchvision's ResNet-50 and ViT-B/16, timm's ViT-S/16 and open_clip's ViT-B-32 (whole
model, text tower included): random weights saved by the library (safetensors and torch.save),
`oodtrain weights import`, `oodtrain weights export`, then loaded back into the library's own
model with load_state_dict(strict=True) and compared tensor by tensor (exact)."""
import subprocess
import sys

import open_clip
import timm
import torch
import torchvision
from safetensors.torch import load_file, save_file

oodtrain, work = sys.argv[1], sys.argv[2]


def run(*args):
    out = subprocess.run([oodtrain, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"oodtrain {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stdout


def check(name, model, source, arch, size, fmt, prefix="", extra=()):
    torch.manual_seed(0)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = f"{work}/{name}.{fmt}"
    if fmt == "pt":
        torch.save(model.state_dict(), path)  # an OrderedDict with _metadata, as people save them
    else:
        save_file(sd, path)
    report = run("weights", "import", path, "--from", source, "--arch", arch, "--image-size", str(size),
                 "-o", f"{work}/{name}.h5", *extra)
    run("weights", "export", f"{work}/{name}.h5", "--to", source, "-o", f"{work}/{name}_back.safetensors",
        *(["--prefix", prefix] if prefix else []))
    back = load_file(f"{work}/{name}_back.safetensors")
    target = model.visual if prefix else model
    inner = {k[len(prefix):]: v for k, v in back.items()}
    target.load_state_dict(inner, strict=True)
    want = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)} if prefix else sd
    for k, v in want.items():
        assert torch.equal(inner[k], v), k
    print(f"{name}: {len(inner)} tensors back into {source}'s model, exact ({report.splitlines()[0]})")


check("tv_resnet50", torchvision.models.resnet50(), "torchvision", "resnet50", 224, "pt")
check("tv_vit_b16", torchvision.models.vit_b_16(), "torchvision", "vit_b16", 224, "safetensors")
check("timm_vit_s16", timm.create_model("vit_small_patch16_224", pretrained=False), "timm", "vit_s16", 224, "safetensors")
clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
check("clip_b32", clip, "open_clip", "clip_vit_b32", 224, "safetensors", prefix="visual.")
