#!/usr/bin/python3
"""The FedSpeed and GAQAT experiments behind docs/results.md, for several seeds.

FedSpeed vs FedAvg (bench/experiments/fed_dirichlet.yaml on 2 ranks, fed_domains.yaml in one
process): held-out-free global accuracy per evaluation and client drift.
GAQAT (bench/experiments/qat.yaml): a float CNN trained on Rotated Fashion-MNIST (rot_0 held
out), then fine-tuned 600 steps as full precision, LSQ, LSQ+SAGM and GAQAT at W4A4 and W3A3.

  scripts/fed_qat_experiments.py --seeds 0 1 2 --out runs/fed_qat

Finished runs are skipped when rerun. Writes OUT/summary.md and the figures (scripts/oodt_plot.py)
OUT/fedspeed_dirichlet, OUT/fedspeed_domain and OUT/qat_heldout, each .png and .svg.
"""
import argparse
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
EXP = os.path.join(ROOT, "bench/experiments")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def train(binary, ranks, run, args):
    if os.path.exists(os.path.join(run, "done")):
        return
    os.makedirs(run, exist_ok=True)
    cmd = (["mpirun", "-np", str(ranks), "--oversubscribe"] if ranks > 1 else []) + [binary, "train"] + args
    cmd += ["--set", f"run.dir={run}"]
    t0 = time.time()
    with open(os.path.join(run, "log.txt"), "w") as f:
        subprocess.run(cmd, check=True, env=ENV, stdout=f, stderr=subprocess.STDOUT)
    open(os.path.join(run, "done"), "w").close()
    print(f"  {time.time() - t0:5.0f} s  {run}", file=sys.stderr)


def per_evaluation(run):
    """Per evaluation: step, validation (training domains' out) and held-out accuracy, plugins."""
    out = []
    for e in evaluations(run):
        s = summary(e)
        out.append({"step": e["step"], "val": s["val"], "held": s["held"], **e.get("plugins", {})})
    return out


def ms(values):
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def plot_rounds(runs_by_method, stem, title):
    """Validation accuracy against the round, one line per method, mean over seeds with a
    ±1 s.e. band: STEM.png and STEM.svg."""
    names = {"fedspeed": "FedSpeed", "fedavg": "FedAvg"}
    series = [{"label": names.get(m, m), "runs": [{int(e["round"]): e["val"] for e in run} for run in runs]}
              for m, runs in runs_by_method.items()]
    fig = oodt_plot.line_figure(series, "round", "validation accuracy (%)", title, integer_x=True)
    oodt_plot.save(fig, [stem + ".png", stem + ".svg"])


def plot_qat(per_variant, stem, title):
    """Held-out accuracy per variant, grouped by bit width, mean with a ±1 s.e. whisker over
    seeds: STEM.png and STEM.svg. per_variant: {name: [held-out accuracy per seed]}."""
    groups, methods = [], []
    for name in per_variant:  # "W4A4 LSQ+SAGM" -> group "W4A4", method "LSQ+SAGM"; "fp32" alone
        group, _, method = name.partition(" ")
        groups += [group] if group not in groups else []
        methods += [method or "full precision"] if (method or "full precision") not in methods else []
    def cell(s, g):
        key = groups[g] + (" " + methods[s] if methods[s] != "full precision" else "")
        if key not in per_variant:
            return None
        m, se, _ = oodt_plot.mean_se(per_variant[key])
        return None if m is None else (100 * m, None if se is None else 100 * se)
    n = max(len(v) for v in per_variant.values())
    fig = oodt_plot.bar_figure(groups, methods, cell, "held-out accuracy (%)", title, xlabel="bit width",
                               err_note=f"mean ± 1 s.e. over {n} seeds" if n > 1 else None, mark_missing=False,
                               values=True)
    oodt_plot.save(fig, [stem + ".png", stem + ".svg"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/fed_qat")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/launch/oodtrain"))
    ap.add_argument("--only", choices=["fed", "qat"], default=None)
    args = ap.parse_args()
    lines = [f"seeds {args.seeds}; mean ± std over seeds", ""]
    if args.only in (None, "fed"):
        fed = {}
        for split, cfg, ranks, clients, rounds_per_eval in (("dirichlet", "fed_dirichlet.yaml", 2, 4, 4),
                                                             ("domain", "fed_domains.yaml", 1, 5, 5)):
            for method in ("fedspeed", "fedavg"):
                for seed in args.seeds:
                    run = os.path.join(args.out, f"{split}_{method}_seed{seed}")
                    sets = ["--set", f"run.seed={seed}"]
                    if method == "fedavg":
                        algo = (f"algorithms=[{{fedavg: {{clients: {clients}, split: {split}, local_steps: 20"
                                + (", dirichlet_alpha: 0.3" if split == "dirichlet" else "") + "}}]")
                        sets += ["--set", algo]
                    train(args.binary, ranks, run, ["-c", QUICK, "-c", os.path.join(EXP, cfg)] + sets)
                    fed.setdefault((split, method), []).append(per_evaluation(run))
        for split, title in (("dirichlet", "4 clients, Dirichlet(0.3) labels, 2 ranks; accuracy on rot_0 (the clients' domain)"),
                             ("domain", "5 clients, one per rotation 15-75; validation = their out splits, held-out = rot_0")):
            lines += [f"FedSpeed vs FedAvg, {title}:", "",
                      "| method | round | val acc | held-out acc | drift |", "|---|---|---|---|---|"]
            for method in ("fedspeed", "fedavg"):
                runs = fed[(split, method)]
                for i in range(len(runs[0])):
                    rnd = int(runs[0][i]["round"])
                    lines.append(f"| {method} | {rnd} | {ms(r[i]['val'] for r in runs)} | {ms(r[i]['held'] for r in runs)} | "
                                 f"{ms(r[i]['drift'] for r in runs)} |")
            lines.append("")
            plot_rounds({m: fed[(split, m)] for m in ("fedspeed", "fedavg")}, os.path.join(args.out, f"fedspeed_{split}"),
                        f"FedSpeed vs FedAvg ({split} clients)")
    if args.only in (None, "qat"):
        qat = {}
        variants = [("fp32", "[]")]
        for wb in (4, 3):
            lsq = f"{{lsq: {{weight_bits: {wb}, input_bits: {wb}}}}}"
            variants += [(f"W{wb}A{wb} LSQ", f"[{lsq}]"), (f"W{wb}A{wb} LSQ+SAGM", f"[{lsq}, sagm]"),
                         (f"W{wb}A{wb} GAQAT", f"[{lsq}, gaqat]")]
        # The freezing threshold: at the default tau = 0.3 nearly every scale freezes here.
        variants.append(("W4A4 GAQAT tau=0.1", "[{lsq: {weight_bits: 4, input_bits: 4}}, {gaqat: {tau: 0.1}}]"))
        for seed in args.seeds:
            base = os.path.join(args.out, f"qat_float_seed{seed}")
            train(args.binary, 2, base, ["-c", QUICK, "--set", f"run.seed={seed}", "--set", "train.steps=1500",
                                         "--set", "train.eval_every=1500", "--set", "train.checkpoint_every=1500"])
            for name, algos in variants:
                tag = name.replace(' ', '_').replace('+', '_').replace('=', '')
                run = os.path.join(args.out, f"qat_{tag}_seed{seed}")
                train(args.binary, 2, run, ["-c", QUICK, "-c", os.path.join(EXP, "qat.yaml"), "--set", f"run.seed={seed}",
                                            "--set", f"algorithms={algos}", "--init-from",
                                            os.path.join(base, "ckpt_000001500.h5")])
                qat.setdefault(name, []).append(per_evaluation(run)[-1])
        lines += ["GAQAT (fine-tuned 600 steps from a float CNN; held-out = rot_0):", "",
                  "| variant | val acc | held-out acc | frozen share | conflicting share |", "|---|---|---|---|---|"]
        for name, _ in variants:
            rs = qat[name]
            held = [r["held"] for r in rs]
            frozen = ms(r.get("gaqat.frozen_share", float("nan")) for r in rs) if "GAQAT" in name else ""
            conflict = ms(r.get("gaqat.conflicting_share", float("nan")) for r in rs) if "GAQAT" in name else ""
            lines.append(f"| {name} | {ms(r['val'] for r in rs)} | {ms(r['held'] for r in rs)} | {frozen} | {conflict} |")
        plot_qat({name: [r["held"] for r in qat[name]] for name, _ in variants}, os.path.join(args.out, "qat_heldout"),
                 "held-out (rot_0) accuracy after QAT fine-tuning")
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    open(os.path.join(args.out, f"summary{'_' + args.only if args.only else ''}.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
