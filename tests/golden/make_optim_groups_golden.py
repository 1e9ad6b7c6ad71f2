#!/usr/bin/python3
"""Golden values for per-group learning rates and weight decay (optim.groups) from torch.optim's
own param_groups, with a schedule that rescales every group alike (as oodtrain's does):

    /usr/bin/python3 tests/golden/make_optim_groups_golden.py tests/fixtures/optim_groups.h5

Per optimizer: parameters `trunk.w` (base group), `head.w` (lr 10x, no weight decay) and
`head.b` (lr 0: frozen by rate) after each of 5 steps on fixed gradients."""
import sys

import h5py
import torch

torch.manual_seed(7)
T, base = 5, 0.05
factors = [1.0, 0.8, 0.5, 0.3, 0.1]  # a schedule's multipliers
names = ["trunk.w", "head.w", "head.b"]
p0 = {n: torch.randn(3, 2) for n in names}
grads = {n: torch.randn(T, 3, 2) for n in names}
cases = {
    "sgd": (torch.optim.SGD, dict(momentum=0.9, weight_decay=0.01)),
    "adamw": (torch.optim.AdamW, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
    "adam": (torch.optim.Adam, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
}
with h5py.File(sys.argv[1], "w") as f:
    f["factors"] = factors
    for n in names:
        f[f"p0/{n}"] = p0[n].numpy()
        f[f"grads/{n}"] = grads[n].numpy()
    for case, (cls, kw) in cases.items():
        ps = {n: p0[n].clone().requires_grad_(True) for n in names}
        groups = [{"params": [ps["trunk.w"]], "lr": base},
                  {"params": [ps["head.w"]], "lr": base * 10, "weight_decay": 0.0},
                  {"params": [ps["head.b"]], "lr": 0.0}]
        opt = cls(groups, lr=base, **kw)
        initial = [g["lr"] for g in opt.param_groups]
        out = {n: [] for n in names}
        for t in range(T):
            for g, lr0 in zip(opt.param_groups, initial):
                g["lr"] = lr0 * factors[t]
            for n in names:
                ps[n].grad = grads[n][t].clone()
            opt.step()
            for n in names:
                out[n].append(ps[n].detach().clone())
        for n in names:
            f[f"{case}/{n}"] = torch.stack(out[n]).numpy()
        f[case].attrs["weight_decay"] = kw["weight_decay"]
