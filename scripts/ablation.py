#!/usr/bin/python3
"""Runs one experiment under several variants and seeds and prints mean ± std of the final
evaluation: the quick way to check that a plugin moves results in the expected direction.

  scripts/ablation.py -c configs/quickstart.yaml -c bench/experiments/msd.yaml \
      --variant "baseline=" --variant "msd=algorithms=[{multi_sample_dropout: {samples: 8}}]" \
      --seeds 0 1 2 --np 2 --out runs/ablation_msd

Each --variant is NAME=SET[;SET...]: --set overrides for that variant (empty for none).
Metrics (from the last line of each run's metrics.jsonl): train_loss (mean since the previous
evaluation), val_acc (training domains' out splits), heldout_acc (held-out domains, in+out),
heldout_ece. The table is printed as Markdown and written to OUT/summary.md.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from oodt_metrics import evaluations, summary  # noqa: E402


def summarize(run_dir):
    last = evaluations(run_dir)[-1]
    s = summary(last)
    return {"train_loss": last["train_loss"], "val_acc": s["val"], "heldout_acc": s["held"], "heldout_ece": s["held_ece"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", action="append", required=True)
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/launch/oodtrain"))
    args = ap.parse_args()

    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    rows = {}
    for variant in args.variant:
        name, _, sets = variant.partition("=")
        for seed in args.seeds:
            run_dir = os.path.join(args.out, f"{name}_seed{seed}")
            cmd = ["mpirun", "-np", str(args.np), "--oversubscribe", args.binary] if args.np > 1 else [args.binary]
            cmd += ["train"] + sum([["-c", c] for c in args.config], [])
            cmd += ["--set", f"run.dir={run_dir}", "--set", f"run.seed={seed}"]
            for s in filter(None, sets.split(";")):
                cmd += ["--set", s]
            t0 = time.time()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            r = summarize(run_dir)
            r["seconds"] = time.time() - t0
            rows.setdefault(name, []).append(r)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()), file=sys.stderr)

    keys = ["train_loss", "val_acc", "heldout_acc", "heldout_ece", "seconds"]
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, rs in rows.items():
        cells = []
        for k in keys:
            vals = [r[k] for r in rs]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.4f} ± {sd:.4f}" if k != "seconds" else f"{statistics.mean(vals):.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"seeds {args.seeds}, {args.np} ranks, configs {args.config}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
