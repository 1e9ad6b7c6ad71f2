#!/usr/bin/python3
"""Golden outputs for data/augment.h (tests/data/augment_test.cpp): torchvision 0.14's tensor
transforms (torchvision.transforms.functional on uint8 and float32 tensors, Debian's
python3-torchvision with torch 1.13) on fixed images and fixed parameters, written to
tests/fixtures/augment_golden.h5.

Layout: images/<name> uint8 [3, H, W]; cases/<NNN> groups, each with attributes `op` and
`image` (str), `float_input` (1: the op ran on image.float() / 255), a float64 dataset `params`
(the op's arguments, in the order of its C++ signature; see each case below) and a dataset
`out` (torchvision's result).

Regenerate (never from the C++ implementation's output):
    /usr/bin/python3 tests/golden/make_augment_golden.py tests/fixtures/augment_golden.h5
"""
import math
import sys

import h5py
import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def make_images():
    g = torch.Generator().manual_seed(20)
    a = torch.randint(0, 256, (3, 37, 29), generator=g, dtype=torch.uint8)
    # Edge cases for the HSV conversion and the clamps: gray pixels (r = g = b, hue undefined),
    # ties between the maximum channels, pure primaries, black and white.
    a[:, 0, 0] = torch.tensor([0, 0, 0])
    a[:, 0, 1] = torch.tensor([255, 255, 255])
    a[:, 0, 2] = torch.tensor([77, 77, 77])
    a[:, 0, 3] = torch.tensor([255, 0, 0])
    a[:, 0, 4] = torch.tensor([0, 255, 0])
    a[:, 0, 5] = torch.tensor([0, 0, 255])
    a[:, 0, 6] = torch.tensor([200, 200, 10])
    a[:, 0, 7] = torch.tensor([10, 200, 200])
    a[:, 0, 8] = torch.tensor([200, 10, 200])
    a[:, 0, 9] = torch.tensor([254, 1, 128])
    # A smooth image (gradients plus mild noise) makes resize errors visible that noise hides.
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    noise = torch.randint(-8, 9, (3, 64, 48), generator=g).float()
    b = torch.stack([xx * 5.0, yy * 4.0, (xx + yy) * 2.3]) + noise
    b = b.clamp(0, 255).round().to(torch.uint8)
    return {"a": a, "b": b}


def cases(images):
    out = []

    def add(op, image, params, result, float_input=False):
        out.append((op, image, [float(p) for p in params], result, float_input))

    bil = InterpolationMode.BILINEAR
    for name, h, w, aa in [("a", 20, 15, 1), ("a", 50, 41, 1), ("a", 37, 60, 1), ("a", 37, 29, 1),
                           ("a", 9, 7, 1), ("b", 31, 17, 1), ("b", 100, 30, 1), ("b", 7, 5, 1),
                           ("b", 100, 90, 1), ("a", 96, 80, 1), ("b", 20, 15, 0), ("a", 50, 41, 0)]:
        add("resize", name, [h, w, aa], F.resize(images[name], [h, w], bil, antialias=bool(aa)))
    for name, t, l, h, w in [("a", 5, 3, 20, 17), ("a", -3, -4, 10, 12), ("a", 30, 20, 15, 15),
                             ("b", 0, 0, 64, 48), ("b", 60, -2, 8, 52)]:
        add("crop", name, [t, l, h, w], F.crop(images[name], t, l, h, w))
    for name, h, w in [("a", 24, 24), ("a", 36, 28), ("a", 34, 26), ("a", 40, 20), ("b", 70, 50),
                       ("b", 31, 17), ("b", 65, 49)]:
        add("center_crop", name, [h, w], F.center_crop(images[name], [h, w]))
    for name, t, l, h, w, oh, ow, aa in [("a", 3, 4, 25, 20, 16, 16, 1), ("b", 10, 5, 40, 30, 56, 56, 1),
                                         ("b", 0, 0, 64, 48, 24, 24, 1), ("a", 0, 0, 37, 29, 37, 29, 1),
                                         ("b", 10, 5, 40, 30, 13, 9, 0)]:
        add("resized_crop", name, [t, l, h, w, oh, ow, aa],
            F.resized_crop(images[name], t, l, h, w, [oh, ow], bil, antialias=bool(aa)))
    for name in images:
        add("hflip", name, [], F.hflip(images[name]))
    for name in images:
        # Float inputs on the small image only (they differ from uint8 only in bound and cast).
        for float_input in (False, True) if name == "a" else (False,):
            img = images[name].float().div(255) if float_input else images[name]
            for f in (0.5, 1.3, 0.0, 2.5):
                add("brightness", name, [f], F.adjust_brightness(img, f), float_input)
            for f in (0.5, 1.3, 0.0, 2.0):
                add("contrast", name, [f], F.adjust_contrast(img, f), float_input)
            for f in (0.5, 1.3, 0.0, 2.0):
                add("saturation", name, [f], F.adjust_saturation(img, f), float_input)
            for f in (-0.3, 0.1, 0.45, -0.5, 0.5, 0.0):
                add("hue", name, [f], F.adjust_hue(img, f), float_input)
        for c in (1, 3):
            add("grayscale", name, [c], F.rgb_to_grayscale(images[name], c).contiguous())
    # normalize: params = mean values, then std values (1 or 3 each, half and half).
    for name in images:
        x = images[name].float().div(255)
        add("normalize", name, IMAGENET_MEAN + IMAGENET_STD, F.normalize(x, IMAGENET_MEAN, IMAGENET_STD))
        add("normalize", name, [0.5, 0.25], F.normalize(x, [0.5], [0.25]))

    # The eval pipeline, params = [size, eval_resize (0 square, 1 shorter_side), crop_pct,
    # normalize (0 none, 1 imagenet)]: DomainBed's Resize((size, size)), ToTensor, Normalize
    # on the tensor path; and Resize(floor(size / crop_pct)) (shorter side) + CenterCrop(size).
    def eval_pipeline(img, size, mode, crop_pct, norm):
        if mode == 0:
            img = F.resize(img, [size, size], bil, antialias=True)
        else:
            img = F.resize(img, [math.floor(size / crop_pct)], bil, antialias=True)
            img = F.center_crop(img, [size, size])
        x = img.float().div(255)
        return F.normalize(x, IMAGENET_MEAN, IMAGENET_STD) if norm else x

    for name, size, mode, crop_pct, norm in [("a", 64, 0, 0.875, 1), ("b", 56, 0, 0.875, 1),
                                             ("b", 24, 1, 0.875, 1), ("a", 20, 1, 0.8, 0),
                                             ("a", 16, 0, 0.875, 0)]:
        add("pipeline_eval", name, [size, mode, crop_pct, norm], eval_pipeline(images[name], size, mode, crop_pct, norm))

    # The train pipeline with fixed draws, params = [size, top, left, height, width, flip,
    # order0..3, brightness, contrast, saturation, hue, gray, normalize]: DomainBed's order
    # RandomResizedCrop, RandomHorizontalFlip, ColorJitter (ops in `order`: 0 brightness,
    # 1 contrast, 2 saturation, 3 hue), RandomGrayscale, ToTensor, Normalize.
    def train_pipeline(img, p):
        size, top, left, h, w, flip = (int(v) for v in p[:6])
        order = [int(v) for v in p[6:10]]
        factors = p[10:14]
        gray, norm = int(p[14]), int(p[15])
        img = F.resized_crop(img, top, left, h, w, [size, size], bil, antialias=True)
        if flip:
            img = F.hflip(img)
        fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
        for k in order:
            img = fns[k](img, factors[k])
        if gray:
            img = F.rgb_to_grayscale(img, 3)
        x = img.float().div(255)
        return F.normalize(x, IMAGENET_MEAN, IMAGENET_STD) if norm else x

    for name, p in [("a", [32, 2, 3, 30, 22, 1, 2, 0, 3, 1, 1.2, 0.8, 1.25, -0.1, 0, 1]),
                    ("b", [40, 5, 0, 50, 48, 0, 3, 1, 0, 2, 0.75, 1.3, 0.7, 0.27, 1, 1]),
                    ("b", [24, 0, 0, 64, 48, 1, 0, 1, 2, 3, 1.0, 1.0, 1.0, 0.0, 0, 0])]:
        add("pipeline_train", name, p, train_pipeline(images[name], p))
    return out


def main(path):
    images = make_images()
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["torch"] = str(torch.__version__)
        f.attrs["torchvision"] = str(torchvision.__version__)
        for name, img in images.items():
            f.create_dataset("images/" + name, data=img.numpy())
        for i, (op, image, params, result, float_input) in enumerate(cases(images)):
            g = f.create_group(f"cases/{i:03d}")
            g.attrs["op"] = op
            g.attrs["image"] = image
            g.attrs["float_input"] = int(float_input)
            g.create_dataset("params", data=np.array(params, dtype=np.float64))
            g.create_dataset("out", data=result.contiguous().numpy(), compression="gzip", compression_opts=9)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/augment_golden.h5")
