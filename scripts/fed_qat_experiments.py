#!/usr/bin/python3
"""The FedSpeed and GAQAT experiments behind docs/results.md, for several seeds.

FedSpeed vs FedAvg (bench/experiments/fed_dirichlet.yaml on 2 ranks, fed_domains.yaml in one
process): held-out-free global accuracy per evaluation and client drift.
GAQAT (bench/experiments/qat.yaml): a float CNN trained on Rotated Fashion-MNIST (rot_0 held
out), then fine-tuned 600 steps as full precision, LSQ, LSQ+SAGM and GAQAT at W4A4 and W3A3.

  scripts/fed_qat_experiments.py --seeds 0 1 2 --out runs/fed_qat

Finished runs are skipped when rerun. Writes OUT/summary.md and OUT/fedspeed.svg.
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


def svg(curves, path, title):
    """Validation accuracy against round, one line per method (mean over seeds)."""
    W, H, L, B, R, T = 520, 320, 60, 45, 130, 25
    xs = sorted({x for c in curves.values() for x, _ in c})
    ys = [y for c in curves.values() for _, y in c]
    lo, hi = min(ys) - 0.01, max(ys) + 0.01
    X = lambda v: L + (W - L - R) * (v - xs[0]) / max(1, xs[-1] - xs[0])
    Y = lambda v: T + (H - T - B) * (hi - v) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/><text x="{L}" y="15">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for v in xs:
        out.append(f'<text x="{X(v):.1f}" y="{H - B + 15}" text-anchor="middle">{v}</text>')
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<text x="{L - 5}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">round</text>')
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for k, (name, c) in enumerate(curves.items()):
        pts = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in c)
        dash = "" if k % 2 == 0 else "6,4"
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colours[k // 2]}" stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<line x1="{W - R + 8}" y1="{T + 10 + 18 * k}" x2="{W - R + 30}" y2="{T + 10 + 18 * k}" '
                   f'stroke="{colours[k // 2]}" stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{W - R + 35}" y="{T + 14 + 18 * k}">{name}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def svg_bars(rows, path, title):
    """Held-out accuracy per variant: mean bar with a ±1 std whisker."""
    W, H, L, B, T = 560, 300, 60, 80, 25
    lo = max(0.0, min(m - s for _, m, s in rows) - 0.03)
    hi = max(m + s for _, m, s in rows) + 0.01
    bw = (W - L - 20) / len(rows)
    Y = lambda v: T + (H - T - B) * (hi - v) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/><text x="{L}" y="15" font-size="12">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(f'<text x="{L - 5}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    for k, (name, m, sd) in enumerate(rows):
        x = L + k * bw + bw * 0.15
        colour = "#888" if name == "fp32" else ("#1f77b4" if "LSQ" in name and "SAGM" not in name else
                                              "#ff7f0e" if "SAGM" in name else "#2ca02c")
        out.append(f'<rect x="{x:.1f}" y="{Y(m):.1f}" width="{bw * 0.7:.1f}" height="{H - B - Y(m):.1f}" fill="{colour}"/>')
        cx = x + bw * 0.35
        out.append(f'<line x1="{cx:.1f}" y1="{Y(m - sd):.1f}" x2="{cx:.1f}" y2="{Y(m + sd):.1f}" stroke="black"/>')
        out.append(f'<text x="{cx:.1f}" y="{H - B + 12}" text-anchor="end" transform="rotate(-35 {cx:.1f} {H - B + 12})">{name}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


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
            curves = {}
            for method in ("fedspeed", "fedavg"):
                runs = fed[(split, method)]
                for i in range(len(runs[0])):
                    rnd = int(runs[0][i]["round"])
                    lines.append(f"| {method} | {rnd} | {ms(r[i]['val'] for r in runs)} | {ms(r[i]['held'] for r in runs)} | "
                                 f"{ms(r[i]['drift'] for r in runs)} |")
                curves[method] = [(int(runs[0][i]["round"]), statistics.mean(r[i]["val"] for r in runs))
                                  for i in range(len(runs[0]))]
            lines.append("")
            svg(curves, os.path.join(args.out, f"fedspeed_{split}.svg"), f"FedSpeed vs FedAvg ({split} clients)")
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
        bars = []
        for name, _ in variants:
            rs = qat[name]
            held = [r["held"] for r in rs]
            bars.append((name, statistics.mean(held), statistics.stdev(held) if len(held) > 1 else 0.0))
            frozen = ms(r.get("gaqat.frozen_share", float("nan")) for r in rs) if "GAQAT" in name else ""
            conflict = ms(r.get("gaqat.conflicting_share", float("nan")) for r in rs) if "GAQAT" in name else ""
            lines.append(f"| {name} | {ms(r['val'] for r in rs)} | {ms(r['held'] for r in rs)} | {frozen} | {conflict} |")
        svg_bars(bars, os.path.join(args.out, "qat_heldout.svg"), "held-out (rot_0) accuracy after QAT fine-tuning")
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    open(os.path.join(args.out, f"summary{'_' + args.only if args.only else ''}.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
