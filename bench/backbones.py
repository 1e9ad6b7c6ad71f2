#!/usr/bin/python3
"""Training step time of the large backbones on the CPU against PyTorch eager, side by side:

    bench/backbones.py [--rounds 2] [--steps 12] [--warmup 2] [--batch 8] [--threads 2]
                       [--models resnet50,vit_b16] [--channels-last]

One process per side and model, alternating (oodtrain, PyTorch, oodtrain, PyTorch, ...), on
224x224 RGB images, fp32, cross-entropy, SGD (lr 0.01, momentum 0.9, no weight decay), train
mode, `--threads` intra-op threads for both (OMP_NUM_THREADS too). Both read the same
generated HDF5 domain file (docs/data.md; random uint8 pixels and labels, 264 samples, one
domain, written to a temporary folder):

- oodtrain: `oodtrain train` with `model.name` resnet50 or vit_b16. Its rate is the
  `samples_per_s` of its last metrics.jsonl record: the steps after the warm-up evaluation
  (at step --warmup), evaluation (a 9-sample split) and the final checkpoint excluded. The
  reader streams the file into its block cache (all of it fits) and prefetches batches on a
  thread.
- PyTorch: this script run as a child (`--child`): torchvision's resnet50 or vit_b_16 (the
  architecture of timm's vit_base_patch16_224: patch 16, width 768, 12 blocks of 12 heads,
  LayerNorm eps 1e-6, exact GELU, class-token pooling), the file's images loaded once into
  memory as uint8 by h5py; each timed step gathers a shuffled batch of rows, scales it to
  [0, 1] and trains on it. It times the same number of steps after the same warm-up.

Labels are random, so the loss climbs; runs this short stay finite (oodtrain would stop on a
non-finite loss, `train.nonfinite: abort`, where PyTorch would train on).

Peak memory is each child's own peak resident set (wait4's ru_maxrss), the whole process:
oodtrain's includes its final checkpoint, so oodtrain's own peak at its last evaluation
(metrics.jsonl `peak_rss_mb`, before the checkpoint) is printed too.

--channels-last trains both sides channels_last (oodtrain `train.channels_last`), for the
convolutional models. The environment passes to both sides: `OMP_WAIT_POLICY=PASSIVE bench/backbones.py`
compares them with libgomp's idle threads sleeping at once (docs/performance.md).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES, HOLDOUT, CLASSES = 264, 9, 10


def make_data(path):
    import h5py
    import numpy as np
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("/images", data=rng.integers(0, 256, (SAMPLES, 3, 224, 224), dtype=np.uint8),
                         chunks=(16, 3, 224, 224))
        f.create_dataset("/labels", data=rng.integers(0, CLASSES, SAMPLES).astype(np.int64))
        f.create_dataset("/domains", data=np.zeros(SAMPLES, np.int64))
        f.attrs["domain_names"] = ["random"]
        f.attrs["num_classes"] = np.int64(CLASSES)


def env(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads))


def wait_child(cmd, threads, out_path=None):
    """Runs cmd; returns (stdout text, peak RSS in MiB of that child alone)."""
    with open(out_path or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, env=env(threads), stdout=out, stderr=subprocess.PIPE, text=True)
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {code}:\n{err}")
    return usage.ru_maxrss / 1024.0  # KiB on Linux


def oodtrain(a, model, data, workdir):
    run_dir = os.path.join(workdir, f"run-{model}-{time.monotonic_ns()}")
    sets = [f"run.dir={run_dir}", f"data.path={data}", "data.test_domains=[]", f"data.batch_size={a.batch}",
            f"data.holdout_fraction={HOLDOUT / SAMPLES}", "data.eval_train_in=false", f"model={{name: {model}}}",
            "optim.name=sgd", "optim.lr=0.01", "optim.momentum=0.9", "optim.weight_decay=0",
            "schedule.name=constant", "schedule.warmup_steps=0", f"train.steps={a.warmup + a.steps}",
            f"train.eval_every={a.warmup}", "train.checkpoint_every=0", f"train.threads={a.threads}",
            f"train.eval_batch_size={a.batch}", f"train.channels_last={str(a.channels_last).lower()}"]
    cmd = [a.oodtrain, "train", "-c", os.path.join(ROOT, "configs/quickstart.yaml")]
    for s in sets:
        cmd += ["--set", s]
    rss = wait_child(cmd, a.threads, os.path.join(workdir, "oodtrain.log"))
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        last = [json.loads(l) for l in f if l.strip()][-1]
    if last["step"] != a.warmup + a.steps:
        raise SystemExit(f"oodtrain's last record is step {last['step']}, expected {a.warmup + a.steps}")
    return a.batch / last["samples_per_s"], rss, last["peak_rss_mb"]


def pytorch(a, model, data, workdir):
    out = os.path.join(workdir, "pytorch.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--data", data, "--models", model,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(a.batch), "--threads", str(a.threads)]
    if a.channels_last:
        cmd.append("--channels-last")
    rss = wait_child(cmd, a.threads, out)
    with open(out) as f:
        times = json.load(f)["step_s"]
    return sum(times) / len(times), rss


def child(a):
    """The PyTorch side: prints {"step_s": [...]} of the timed steps."""
    import h5py
    import torch
    import torchvision
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with h5py.File(a.data, "r") as f:
        images = torch.from_numpy(f["/images"][:])  # uint8, as oodtrain's block cache holds them
        labels = torch.from_numpy(f["/labels"][:])
    net = (torchvision.models.resnet50 if a.models == "resnet50" else torchvision.models.vit_b_16)(num_classes=CLASSES)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0)
    order = torch.randperm(SAMPLES - HOLDOUT)
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        rows = order[(step * a.batch) % len(order):][:a.batch]
        x = images[rows].float().div_(255).contiguous(memory_format=fmt)
        y = labels[rows]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"step_s": times}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,vit_b16")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--oodtrain", default=os.path.join(ROOT, "build/launch/oodtrain"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if a.warmup < 1:
        ap.error("--warmup must be >= 1 (oodtrain's rate window starts at the warm-up evaluation)")
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "random224.h5")
        make_data(data)
        print(f"batch {a.batch}, {a.threads} threads, {a.steps} timed steps after {a.warmup}, "
              f"{a.rounds} rounds; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
        rows = []
        for model in a.models.split(","):
            ours, theirs, rss_o, rss_own, rss_t = [], [], [], [], []
            for r in range(a.rounds):
                s, rss, own = oodtrain(a, model, data, d)
                ours.append(s), rss_o.append(rss), rss_own.append(own)
                print(f"{model} round {r}: oodtrain {s:.3f} s/step, peak RSS {rss:.0f} MiB "
                      f"({own:.0f} at its last evaluation)", flush=True)
                s, rss = pytorch(a, model, data, d)
                theirs.append(s), rss_t.append(rss)
                print(f"{model} round {r}: PyTorch {s:.3f} s/step, peak RSS {rss:.0f} MiB", flush=True)
            mo, mt = statistics.median(ours), statistics.median(theirs)
            rows.append((model, mo, mt, mt / mo, max(rss_o), max(rss_own), max(rss_t)))
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        for model, mo, mt, ratio, ro, rown, rt in rows:
            print(f"{model}: oodtrain {mo:.3f} s/step, PyTorch {mt:.3f} s/step, oodtrain / PyTorch (samples/s) "
                  f"{ratio:.3f}; peak RSS oodtrain {ro:.0f} MiB ({rown:.0f} before its checkpoint), PyTorch {rt:.0f} MiB")


if __name__ == "__main__":
    main()
