#!/usr/bin/env python3
"""Training throughput on one GPU: bf16 against fp32 and channels_last against the default memory
layout, measured side by side in one invocation (scripts/gpu_check.sh runs it; docs/gpu.md).

  bench/gpu_throughput.py --oodtrain BUILD/launch/oodtrain --data FILE.h5 [--device cuda]
                          [--models cnn,resnet18] [--rounds 2] [--steps 300] [--warmup 100]
                          [--batch 256] [--json OUT.json]

For each model, four contenders: train.precision fp32 | bf16, each with train.channels_last off
and on. One process per run (`oodtrain train`, no mpirun), train.cudnn_benchmark on in all four
(each layout gets its fastest convolution algorithms). A contender's rate is oodtrain's own
samples_per_s over the steps after the warm-up evaluation at --warmup (evaluation, checkpoints
and start-up excluded), as bench/throughput.py measures it. Rounds run the four in a rotated
order so drift hits all of them; the median of each is reported, and the ratios:
  bf16 / fp32            in each layout
  channels_last / default in each precision
  best / fp32 default
Ratios > 1 mean faster. Each run's final training loss is printed too: a contender that trains
fast but diverges is no contender.
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
MODELS = {"cnn": "{name: cnn, channels: [16, 32, 64], dropout: 0.1}", "resnet18": "{name: resnet18, stem: cifar}"}
CONTENDERS = [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]


def label(precision, channels_last):
    return f"{precision} {'channels_last' if channels_last else 'default'}"


def run(a, model, precision, channels_last):
    """One `oodtrain train`: (samples/s after the warm-up, final training loss, wall seconds)."""
    with tempfile.TemporaryDirectory() as d:
        sets = [f"run.dir={d}/run", f"model={MODELS[model]}", f"data.path={a.data}", f"data.batch_size={a.batch}",
                "data.eval_train_in=false", f"train.device={a.device}", f"train.steps={a.steps}",
                f"train.eval_every={a.warmup}", "train.checkpoint_every=0", "schedule.warmup_steps=0",
                f"train.precision={precision}", f"train.channels_last={str(channels_last).lower()}",
                "train.cudnn_benchmark=true"]
        cmd = [a.oodtrain, "train", "-c", os.path.join(ROOT, "configs/quickstart.yaml")]
        for s in sets:
            cmd += ["--set", s]
        t0 = time.time()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)}\nfailed ({p.returncode}):\n{p.stderr[-3000:]}")
        with open(f"{d}/run/metrics.jsonl") as f:
            rows = [json.loads(l) for l in f if l.strip()]
        return rows[-1]["samples_per_s"], rows[-1].get("train_loss"), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oodtrain", default=os.path.join(ROOT, "build/launch/oodtrain"))
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--models", default="cnn,resnet18")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch", type=int, default=256, help="data.batch_size (one process)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    if not 0 < a.warmup < a.steps:
        ap.error("need 0 < --warmup < --steps")
    models = a.models.split(",")
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model {m} (known: {', '.join(MODELS)})")
    print(f"device {a.device}, batch {a.batch}, {a.steps} steps (rate over the last {a.steps - a.warmup}), "
          f"{a.rounds} round(s), cudnn_benchmark on", flush=True)
    out = {"device": a.device, "batch": a.batch, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds, "models": {}}
    for model in models:
        rates = {c: [] for c in CONTENDERS}
        losses = {c: [] for c in CONTENDERS}
        for r in range(a.rounds):
            order = CONTENDERS[r % len(CONTENDERS):] + CONTENDERS[:r % len(CONTENDERS)]
            for c in order:
                rate, loss, wall = run(a, model, *c)
                rates[c].append(rate)
                losses[c].append(loss)
                print(f"{model} round {r}: {label(*c):<20} {rate:10.0f} samples/s  final train_loss {loss:.4f}  "
                      f"({wall:.0f} s)", flush=True)
        med = {c: statistics.median(v) for c, v in rates.items()}
        ratios = {
            "bf16/fp32 default": med[("bf16", False)] / med[("fp32", False)],
            "bf16/fp32 channels_last": med[("bf16", True)] / med[("fp32", True)],
            "channels_last/default fp32": med[("fp32", True)] / med[("fp32", False)],
            "channels_last/default bf16": med[("bf16", True)] / med[("bf16", False)],
            "best/fp32 default": max(med.values()) / med[("fp32", False)],
        }
        for name, v in ratios.items():
            print(f"{model} {name} = {v:.3f}")
        print(f"{model} medians (samples/s): " + ", ".join(f"{label(*c)} {med[c]:.0f}" for c in CONTENDERS), flush=True)
        out["models"][model] = {
            "samples_per_s": {label(*c): rates[c] for c in CONTENDERS},
            "median_samples_per_s": {label(*c): med[c] for c in CONTENDERS},
            "final_train_loss": {label(*c): losses[c] for c in CONTENDERS},
            "ratios": ratios,
        }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
