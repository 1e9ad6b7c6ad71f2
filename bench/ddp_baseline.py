#!/usr/bin/python3
"""The baseline oodtrain is measured against: the same model, data, batch, optimizer and
thread count trained by PyTorch DistributedDataParallel (gloo), launched by mpirun:

    mpirun -np 2 python3 bench/ddp_baseline.py --model cnn --steps 300 --warmup 150

Written the way a careful PyTorch user would: images held in memory as uint8 (cheaper than
oodtrain's HDF5 reads), a per-rank shuffled index per epoch, SGD with momentum and weight
decay, one intra-op thread per rank, DDP's default 25 MB buckets overlapping backward. Prints
one line: `samples_per_s <all ranks' samples / s over the timed steps>`.
"""
import argparse
import os
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn


def build(name, channels, hidden, dropout, classes=10):
    if name == "cnn":  # oodtrain's `cnn`: [conv3x3 (no bias), BN, ReLU, maxpool2] per block
        layers, cin = [], 1
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            cin = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, classes)]
        return nn.Sequential(*layers)
    layers, cin = [nn.Flatten()], 28 * 28  # oodtrain's `mlp`: [linear, ReLU] per hidden layer
    for h in hidden:
        layers += [nn.Linear(cin, h), nn.ReLU()]
        cin = h
    return nn.Sequential(*layers, nn.Linear(cin, classes))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="datasets/rotated_fmnist.h5")
    ap.add_argument("--test-domain", default="rot_0")
    ap.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    ap.add_argument("--channels", default="16,32,64")
    ap.add_argument("--hidden", default="256,256")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=64, help="per rank")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=150, help="untimed first steps")
    ap.add_argument("--port", default="29533")
    a = ap.parse_args()

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", a.port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)

    with h5py.File(a.data, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["domain_names"]]
        keep = np.asarray(f["/domains"][:]) != names.index(a.test_domain)
        images = torch.from_numpy(np.asarray(f["/images"][:])[keep])  # uint8 [N, 1, 28, 28]
        labels = torch.from_numpy(np.asarray(f["/labels"][:])[keep].astype(np.int64))

    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(
        build(a.model, [int(c) for c in a.channels.split(",")], [int(h) for h in a.hidden.split(",")],
              a.dropout if a.model == "cnn" else 0.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1000 + rank)
    order, pos = torch.randperm(len(labels), generator=gen), 0
    model.train()
    for step in range(a.steps):
        if step == a.warmup:
            dist.barrier()
            t0 = time.perf_counter()
        if pos + a.batch > len(order):
            order, pos = torch.randperm(len(labels), generator=gen), 0
        idx = order[pos:pos + a.batch]
        pos += a.batch
        x = images[idx].float().div_(255.0)
        y = labels[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        print(f"samples_per_s {(a.steps - a.warmup) * a.batch * world / dt:.1f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
