#!/usr/bin/python3
"""The pretrain -> fine-tune experiment behind docs/results.md for model soups, WiSE-FT, BANG and
sparse model soups, on Rotated Fashion-MNIST, for several seeds:

  1. theta_0: the quickstart CNN trained on rotations 30-75 (bench/experiments/soups_pretrain.yaml);
  2. fine-tuned on rot_0 alone, plain and with BANG's recipe (mixup + label smoothing)
     (bench/experiments/soups_finetune.yaml, configs/algorithms/bang_finetune.yaml);
  3. WiSE-FT: `oodtrain interpolate` of theta_0 with each, alpha = 0, 0.1, ..., 1;
  4. soups: 4 candidates fine-tuned in parallel (one per rank, each with its own data order; at
     lr x 0.5/1/2/4, or all at the same lr), merged greedily in the run; the uniform soup of the
     same candidates by `oodtrain soup`;
  5. sparse soups on the pre-training task from theta_0: 90% sparsity in 3 IMP phases, with
     m = 1 (plain IMP), 2 and 4 candidates per phase.
"ID" is rot_0's validation split (the fine-tuning target); "OOD" is every other rotation.

  scripts/soup_experiments.py --seeds 0 1 2 --out runs/soup_exp

Finished steps are skipped when rerun. Writes OUT/summary.md, OUT/results.json and the figure
OUT/wise_ft.png / .svg (scripts/oodt_plot.py).
"""
import argparse
import csv
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import oodt_plot  # noqa: E402  (the project's figures; needs python3-matplotlib)
from oodt_metrics import evaluations, summary  # noqa: E402
QUICK = os.path.join(ROOT, "configs/quickstart.yaml")
PRE = os.path.join(ROOT, "bench/experiments/soups_pretrain.yaml")
FT = os.path.join(ROOT, "bench/experiments/soups_finetune.yaml")
BANG = os.path.join(ROOT, "configs/algorithms/bang_finetune.yaml")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def oodtrain(binary, ranks, args, log, done):
    """Runs one command unless `done` exists; output goes to `log`."""
    if os.path.exists(done):
        return
    os.makedirs(os.path.dirname(log), exist_ok=True)
    cmd = (["mpirun", "-np", str(ranks), "--oversubscribe"] if ranks > 1 else []) + [binary] + args
    t0 = time.time()
    with open(log, "w") as f:
        subprocess.run(cmd, check=True, env=ENV, stdout=f, stderr=subprocess.STDOUT)
    print(f"  {time.time() - t0:5.0f} s  {' '.join(args[:1])} -> {os.path.dirname(log)}", file=sys.stderr)


def final_metrics(run_dir):
    """Validation (training domains' out splits) and held-out accuracy of the last evaluation."""
    last = evaluations(run_dir)[-1]
    s = summary(last)
    return {"val": s["val"], "ood": s["held"], "sparsity": last.get("plugins", {}).get("sparsity", 0.0)}


def one_seed(binary, seed, out):
    d = os.path.join(out, f"seed{seed}")
    r = {}
    train = lambda *c: sum([["-c", x] for x in c], ["train"])
    # 1. theta_0
    pre = os.path.join(d, "pretrain")
    oodtrain(binary, 2, train(QUICK, PRE) + ["--set", f"run.dir={pre}", "--set", f"run.seed={seed}"],
             os.path.join(pre, "log.txt"), os.path.join(pre, "ckpt_000001500.h5"))
    theta0 = os.path.join(pre, "ckpt_000001500.h5")
    r["dense"] = final_metrics(pre)
    # 2. fine-tuning, plain and BANG
    for name, cfgs in (("ft", (QUICK, FT)), ("bang", (QUICK, BANG, FT))):
        run = os.path.join(d, name)
        oodtrain(binary, 2, train(*cfgs) + ["--set", f"run.dir={run}", "--set", f"run.seed={seed}", "--init-from", theta0],
                 os.path.join(run, "log.txt"), os.path.join(run, "ckpt_000000500.h5"))
        # 3. WiSE-FT curve
        wise = os.path.join(d, f"wise_{name}")
        oodtrain(binary, 2, ["interpolate", "--zero-shot", theta0, "--finetuned", os.path.join(run, "ckpt_000000500.h5"),
                             "--alphas", "0:1:0.1", "-c", QUICK, "-c", FT, "--out", wise],
                 os.path.join(wise, "log.txt"), os.path.join(wise, "interpolation.csv"))
        with open(os.path.join(wise, "interpolation.csv")) as f:
            r[f"wise_{name}"] = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    # 4. soups: 4 candidates in parallel, greedy in the run, uniform afterwards; candidates that
    #    differ in learning rate (and data order), or in data order and random stream only
    for variant, scales in (("soup", "[0.5, 1, 2, 4]"), ("soup_seeds", "[]")):
        soup = os.path.join(d, variant)
        algo = f"algorithms=[{{soup_ingredients: {{lr_scale: {scales}, merge: greedy}}}}]"
        oodtrain(binary, 4, train(QUICK, FT) + ["--set", f"run.dir={soup}", "--set", f"run.seed={seed}", "--set", algo,
                                                "--init-from", theta0],
                 os.path.join(soup, "log.txt"), os.path.join(soup, "candidates.json"))
        cands = json.load(open(os.path.join(soup, "candidates.json")))["candidates"]
        oodtrain(binary, 2, ["soup", "--method", "uniform", "--checkpoints"] +
                 sorted(glob.glob(os.path.join(soup, "candidate_*.h5"))) + ["-c", QUICK, "-c", FT, "--out",
                                                                           os.path.join(soup, "uniform.h5")],
                 os.path.join(soup, "uniform_log.txt"), os.path.join(soup, "uniform.json"))
        uni = json.load(open(os.path.join(soup, "uniform.json")))
        best = max(cands, key=lambda c: c["val_acc"])
        r[variant] = {"best": {"val": best["val_acc"], "ood": best["heldout_acc"]},
                      "mean": {"val": statistics.mean(c["val_acc"] for c in cands),
                               "ood": statistics.mean(c["heldout_acc"] for c in cands)},
                      "uniform": {"val": uni["val_acc"], "ood": uni["heldout_acc"]},
                      "greedy": final_metrics(soup), "kept": sum(c["kept"] for c in cands)}
    # 5. sparse soups on the pre-training task
    for name, ranks in (("imp", 1), ("sms2", 2), ("sms4", 4)):
        run = os.path.join(d, name)
        oodtrain(binary, ranks, train(QUICK, PRE) + [
            "--set", f"run.dir={run}", "--set", f"run.seed={seed}", "--init-from", theta0,
            "--set", "algorithms=[{sparse_soup: {sparsity: 0.9, phases: 3, merge: uniform}}]",
            "--set", "train.steps=600", "--set", "train.eval_every=600", "--set", "train.checkpoint_every=600",
            "--set", "train.threads=1"], os.path.join(run, "log.txt"), os.path.join(run, "ckpt_000000600.h5"))
        r[name] = final_metrics(run)
    return r


def ms(values):
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def plot_wise_ft(results, stem):
    """ID/OOD accuracy and OOD confidence/ECE against alpha, mean over seeds, plain and BANG
    fine-tuning: STEM.png and STEM.svg."""
    fig = oodt_plot.wiseft_figure({"plain fine-tuning": [r["wise_ft"] for r in results],
                                   "BANG fine-tuning": [r["wise_bang"] for r in results]})
    oodt_plot.save(fig, [stem + ".png", stem + ".svg"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/soup_exp")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/launch/oodtrain"))
    args = ap.parse_args()
    results = []
    for seed in args.seeds:
        print(f"seed {seed}", file=sys.stderr)
        results.append(one_seed(args.binary, seed, args.out))
    lines = [f"seeds {args.seeds}; mean ± std over seeds", ""]
    for variant, title in (("soup", "candidates at lr x 0.5, 1, 2, 4"), ("soup_seeds", "candidates at equal lr")):
        lines += [f"Soups, {title} (fine-tuned on rot_0; ID = rot_0 validation, OOD = rot_15..rot_75):", "",
                  "| model | ID acc | OOD acc |", "|---|---|---|"]
        for key, label in (("mean", "mean individual"), ("best", "best individual (by ID val)"),
                           ("uniform", "uniform soup"), ("greedy", "greedy soup")):
            lines.append(f"| {label} | {ms(r[variant][key]['val'] for r in results)} | "
                         f"{ms(r[variant][key]['ood'] for r in results)} |")
        lines.append(f"\ngreedy soup kept {[r[variant]['kept'] for r in results]} of 4 candidates\n")
    lines += ["WiSE-FT (mean over seeds):", "",
              "| alpha | ID plain | OOD plain | OOD conf plain | ID BANG | OOD BANG | OOD conf BANG |",
              "|---|---|---|---|---|---|---|"]
    for i, row in enumerate(results[0]["wise_ft"]):
        m = lambda name, k: statistics.mean(r[f"wise_{name}"][i][k] for r in results)
        lines.append(f"| {row['alpha']:.1f} | {m('ft', 'id_acc'):.4f} | {m('ft', 'ood_acc'):.4f} | "
                     f"{m('ft', 'ood_confidence'):.4f} | {m('bang', 'id_acc'):.4f} | {m('bang', 'ood_acc'):.4f} | "
                     f"{m('bang', 'ood_confidence'):.4f} |")
    lines += ["", "| endpoint | ID acc | OOD acc | OOD conf | OOD ECE |", "|---|---|---|---|---|"]
    for name, idx, label in (("ft", 0, "theta_0"), ("ft", 10, "plain fine-tune (alpha 1)"),
                             ("bang", 10, "BANG fine-tune (alpha 1)"), ("ft", 5, "WiSE-FT alpha 0.5"),
                             ("bang", 5, "BANG merge alpha 0.5")):
        cell = lambda k: ms(r[f"wise_{name}"][idx][k] for r in results)
        lines.append(f"| {label} | {cell('id_acc')} | {cell('ood_acc')} | {cell('ood_confidence')} | {cell('ood_ece')} |")
    lines += ["", "Sparse soups (pre-training task; val = rotations 30-75, held-out = rot_0, rot_15):", "",
              "| model | sparsity | val acc | held-out acc |", "|---|---|---|---|"]
    for key, label in (("dense", "dense theta_0"), ("imp", "IMP, m = 1"), ("sms2", "SMS, m = 2"), ("sms4", "SMS, m = 4")):
        lines.append(f"| {label} | {statistics.mean(r[key]['sparsity'] for r in results):.4f} | "
                     f"{ms(r[key]['val'] for r in results)} | {ms(r[key]['ood'] for r in results)} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot_wise_ft(results, os.path.join(args.out, "wise_ft"))
    print(text)


if __name__ == "__main__":
    main()
