#!/usr/bin/python3
"""Golden values for train.precision: bf16 (tests/core/precision_test.cpp), computed with
Debian's python3-torch (1.13) under torch.autocast('cpu', dtype=torch.bfloat16), written to
tests/fixtures/precision_bf16.h5.

The model is oodtrain's mlp with `hidden: [16], batch_norm: true` written out by hand:
flatten, linear, batch norm, relu, linear head. The fp32 islands are oodtrain's contract
(core/precision.h): batch-norm statistics and log_softmax take float32 inputs (the batch norm's
output goes back to the input's dtype); everything else is what autocast chooses. One SGD step
(lr 0.1, momentum 0.9) on float32 master weights follows. The same step without autocast is
stored too (`fp32/`), so the C++ test can show it tells the two apart.

Regenerate (never from the C++ implementation's output):
    /usr/bin/python3 tests/golden/make_precision_golden.py tests/fixtures/precision_bf16.h5
and for LibTorch 2.x builds (CPU autocast's backward differs between the versions), with the
torch 2.11 of scripts/setup_torch2.sh plus numpy and h5py:
    ~/.cache/oodt/torch2-venv/bin/python tests/golden/make_precision_golden.py \
        tests/fixtures/precision_bf16_torch2.h5
"""
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(20240518)

N, C, H, W, HIDDEN, CLASSES = 8, 1, 4, 4, 16, 3
LR, MOMENTUM = 0.1, 0.9


def init():
    d_in = C * H * W
    p = {
        "trunk.fc0.weight": torch.randn(HIDDEN, d_in) / d_in ** 0.5,
        "trunk.fc0.bias": torch.randn(HIDDEN) * 0.1,
        "trunk.bn0.weight": 1.0 + 0.1 * torch.randn(HIDDEN),
        "trunk.bn0.bias": 0.1 * torch.randn(HIDDEN),
        "head.fc.weight": torch.randn(CLASSES, HIDDEN) / HIDDEN ** 0.5,
        "head.fc.bias": torch.randn(CLASSES) * 0.1,
    }
    buffers = {"trunk.bn0.running_mean": torch.zeros(HIDDEN), "trunk.bn0.running_var": torch.ones(HIDDEN)}
    return p, buffers


def step(params, buffers, x, y, autocast):
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    b = {k: v.clone() for k, v in buffers.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        h = x.flatten(1)
        h = F.linear(h, p["trunk.fc0.weight"], p["trunk.fc0.bias"])
        dtype = h.dtype
        h = F.batch_norm(h.float(), b["trunk.bn0.running_mean"], b["trunk.bn0.running_var"], p["trunk.bn0.weight"],
                         p["trunk.bn0.bias"], training=True, momentum=0.1, eps=1e-5).to(dtype)
        h = F.relu(h)
        logits = F.linear(h, p["head.fc.weight"], p["head.fc.bias"])
        loss = F.nll_loss(F.log_softmax(logits.float(), 1), y)
    loss.backward()
    out = {"loss": loss.detach(), "logits": logits.detach().float(), "logits_bf16": int(logits.dtype == torch.bfloat16)}
    with torch.no_grad():
        for k, v in p.items():
            assert v.grad.dtype == torch.float32
            out["grad/" + k] = v.grad.clone()
            # torch.optim.SGD's first step with momentum: the buffer is the gradient itself.
            out["after/" + k] = v - LR * v.grad
        for k, v in b.items():
            out["after/" + k] = v
    return out


def main(path):
    params, buffers = init()
    x = torch.rand(N, C, H, W)
    y = torch.randint(0, CLASSES, (N,))
    with h5py.File(path, "w") as f:
        f.attrs["lr"] = LR
        f.attrs["momentum"] = MOMENTUM
        f.create_dataset("x", data=x.numpy())
        f.create_dataset("y", data=y.numpy().astype(np.int64))
        for k, v in {**params, **buffers}.items():
            f.create_dataset("init/" + k, data=v.numpy())
        for group, autocast in (("bf16", True), ("fp32", False)):
            for k, v in step(params, buffers, x, y, autocast).items():
                f.create_dataset(group + "/" + k, data=np.asarray(v.numpy() if torch.is_tensor(v) else v))


if __name__ == "__main__":
    main(sys.argv[1])
