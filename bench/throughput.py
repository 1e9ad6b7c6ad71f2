#!/usr/bin/python3
"""Training throughput benchmarks, each one command, ratios from runs side by side:

  bench/throughput.py scaling [--rounds 3]
      samples/s of `mpirun -np 2 oodtrain train` over 2 x samples/s of one process (no
      communication), CNN on Rotated Fashion-MNIST, batch 64 per rank, 1 thread per rank.
      Also two independent single processes at once, one per core: what the machine allows
      two processes without any communication (shared caches and memory bandwidth), so the
      report separates the machine's loss from the framework's.
  bench/throughput.py pytorch [--rounds 3]
      oodtrain against bench/ddp_baseline.py (PyTorch DDP, gloo), both `mpirun -np 2`, same
      model, data, batch, optimizer and threads: the CNN and a small MLP.
  bench/throughput.py compare --baseline OTHER/oodtrain [--rounds 3]
      this build's oodtrain against another build of it (an earlier commit, say), both
      `mpirun -np 2`, same everything: the CNN and the MLP. What a change costs or saves.

  bench/throughput.py precision [--rounds 3] [--models cnn,resnet18]
      train.precision bf16 against fp32 in one process (1 thread, CPU autocast), per model:
      the step rate and the training-loss curve (the progress lines' mean loss over each
      sixth of the run) of both, and the largest relative difference between the curves.

Rounds alternate the contenders so drift hits both; the median of each is reported. Every
process is launched by mpirun with the same binding (one core per rank). oodtrain's rate is
its own `samples_per_s` over the steps after the warm-up evaluation (evaluation and
checkpoints excluded); the baseline times the same steps between barriers.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
MODELS = {"cnn": "{name: cnn, channels: [16, 32, 64], dropout: 0.1}", "mlp": "{name: mlp, hidden: [256, 256]}",
          "resnet18": "{name: resnet18, stem: cifar}"}


def mpirun(n):
    return ["mpirun", "-np", str(n), "--bind-to", "core", "--oversubscribe"]


def train_cmd(a, model, run_dir, extra):
    sets = [f"run.dir={run_dir}", f"model={MODELS[model]}", f"train.steps={a.steps}",
            f"train.eval_every={a.warmup}", "train.checkpoint_every=0", "train.threads=1",
            "data.eval_train_in=false", f"data.path={a.data}", *extra]
    cmd = [a.oodtrain, "train", "-c", os.path.join(ROOT, "configs/quickstart.yaml")]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def rate(run_dir):
    with open(f"{run_dir}/metrics.jsonl") as f:
        return [json.loads(l) for l in f if l.strip()][-1]["samples_per_s"]


def oodtrain(a, ranks, model, extra=(), binary=None):
    with tempfile.TemporaryDirectory() as d:
        cmd = train_cmd(a, model, f"{d}/run", extra)
        if binary:
            cmd[0] = binary
        subprocess.run(mpirun(ranks) + cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return rate(f"{d}/run")


def curve(a, model, extra, every, binary=None):
    """One process, stopped after a.steps steps before any evaluation (`--stop-at-step`; an
    evaluation of resnet18 takes minutes here): (median samples/s of its progress lines after
    the first, [(step, mean loss of the `every` steps up to it)]), read from the progress lines."""
    with tempfile.TemporaryDirectory() as d:
        cmd = train_cmd(a, model, f"{d}/run", [*extra, f"train.steps={a.steps + 1}", "train.eval_every=0",
                                               f"train.log_every={every}", "train.log_every_s=0"])
        cmd += ["--stop-at-step", str(a.steps)]
        if binary:
            cmd[0] = binary
        out = subprocess.run(mpirun(1) + cmd, env=ENV, check=True, capture_output=True, text=True).stdout
    rates, points = [], []
    for line in out.splitlines():
        f = line.split()
        if line.startswith("step ") and "samples/s" in f:
            points.append((int(f[1].split("/")[0]), float(f[f.index("epoch") + 5])))
            rates.append(float(f[f.index("samples/s") - 1]))
    if len(rates) < 2:
        raise SystemExit(f"too few progress lines in:\n{out}")
    return statistics.median(rates[1:]), points


def independent_pair(a, model, extra=()):
    """Two single-process runs at once, pinned to cores 0 and 1: their summed samples/s."""
    with tempfile.TemporaryDirectory() as d:
        procs = [subprocess.Popen(["taskset", "-c", str(c)] + train_cmd(a, model, f"{d}/run{c}", extra), env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in (0, 1)]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(p.stderr.read().decode())
        return rate(f"{d}/run0") + rate(f"{d}/run1")


def pytorch(a, model):
    cmd = mpirun(2) + [os.environ.get("PYTHON", "/usr/bin/python3"), os.path.join(ROOT, "bench/ddp_baseline.py"), "--data", a.data,
                       "--model", model, "--steps", str(a.steps), "--warmup", str(a.warmup)]
    out = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True).stdout
    return float(next(l for l in out.splitlines() if l.startswith("samples_per_s")).split()[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["scaling", "pytorch", "compare", "precision"])
    ap.add_argument("--models", default="cnn,resnet18", help="precision: the models")
    ap.add_argument("--baseline", help="compare: the other build's oodtrain binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--data", default=os.path.join(ROOT, "datasets/rotated_fmnist.h5"))
    ap.add_argument("--oodtrain", default=os.path.join(ROOT, "build/launch/oodtrain"))
    ap.add_argument("--set", action="append", default=[], help="extra oodtrain --set for both np runs")
    a = ap.parse_args()
    if a.which == "scaling":
        one, pair, two = [], [], []
        for r in range(a.rounds):
            one.append(oodtrain(a, 1, "cnn", a.set))
            pair.append(independent_pair(a, "cnn", a.set))
            two.append(oodtrain(a, 2, "cnn", a.set))
            print(f"round {r}: 1 process {one[-1]:.0f}, 2 independent processes {pair[-1]:.0f}, "
                  f"2 ranks {two[-1]:.0f} samples/s", flush=True)
        m1, mp, m2 = statistics.median(one), statistics.median(pair), statistics.median(two)
        print(f"scaling efficiency (2 ranks / (2 x 1 process)): {m2 / (2 * m1):.3f}  "
              f"[{m1:.0f} vs {m2:.0f} samples/s, median of {a.rounds}]")
        print(f"  the machine's ceiling (2 independent processes / (2 x 1 process)): {mp / (2 * m1):.3f}; "
              f"2 ranks / 2 independent processes: {m2 / mp:.3f}")
        return
    if a.which == "precision":
        for model in a.models.split(","):
            # resnet18 (11M parameters) takes ~1 s a step here: a shorter run, same windows.
            steps = a.steps if model != "resnet18" else min(a.steps, 60)
            every = max(1, steps // 6)
            b = argparse.Namespace(**{**vars(a), "steps": steps})
            rates = {"fp32": [], "bf16": []}
            curves = {}
            for r in range(a.rounds):
                for p in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
                    rate, c = curve(b, model, [*a.set, f"train.precision={p}"], every)
                    rates[p].append(rate)
                    curves[p] = c  # the same seed every round: the same curve up to rounding
                    print(f"{model} round {r}: {p} {rate:.0f} samples/s", flush=True)
            m32, m16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
            rel = [abs(y - x) / abs(x) for (_, x), (_, y) in zip(curves["fp32"], curves["bf16"])]
            print(f"{model}: bf16 / fp32 = {m16 / m32:.3f}  [{m16:.0f} vs {m32:.0f} samples/s, median of {a.rounds}]")
            print(f"{model}: train_loss per window (step fp32 bf16): " +
                  ", ".join(f"{s} {x:.4f} {y:.4f}" for (s, x), (_, y) in zip(curves["fp32"], curves["bf16"])))
            print(f"{model}: largest relative train_loss difference {max(rel):.4f}")
        return
    if a.which == "compare":
        if not a.baseline:
            ap.error("compare needs --baseline OTHER/oodtrain")
        for model in ("cnn", "mlp"):
            ours, theirs = [], []
            for r in range(a.rounds):
                ours.append(oodtrain(a, 2, model, a.set))
                theirs.append(oodtrain(a, 2, model, a.set, binary=a.baseline))
                print(f"{model} round {r}: this build {ours[-1]:.0f}, baseline {theirs[-1]:.0f} samples/s", flush=True)
            mo, mt = statistics.median(ours), statistics.median(theirs)
            print(f"{model}: this build / baseline = {mo / mt:.3f}  [{mo:.0f} vs {mt:.0f} samples/s, median of {a.rounds}]")
        return
    for model in ("cnn", "mlp"):
        ours, theirs = [], []
        for r in range(a.rounds):
            ours.append(oodtrain(a, 2, model, a.set))
            theirs.append(pytorch(a, model))
            print(f"{model} round {r}: oodtrain {ours[-1]:.0f}, PyTorch DDP {theirs[-1]:.0f} samples/s", flush=True)
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"{model}: oodtrain / PyTorch DDP = {mo / mt:.3f}  [{mo:.0f} vs {mt:.0f} samples/s, median of {a.rounds}]")


if __name__ == "__main__":
    main()
