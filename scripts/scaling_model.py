#!/usr/bin/python3
"""A latency-bandwidth (alpha-beta) model of oodtrain's gradient all-reduce, fitted to
bench/multinode.py's measurements, checked on measurements it was not fitted to, and used to
predict data-parallel efficiency at 8-1024 GPUs (issue 22, docs/performance.md):

    scripts/scaling_model.py --in bench-results/multinode.json --plot docs/figures/scaling.png

The model
  all-reduce of n bytes over p ranks in a ring:  T(n, p) = 2 (p - 1) a + 2 (p - 1) / p * n / B
      a: latency per message, B: the bandwidth a rank's link achieves. Fitted per link rate on
      2 hosts (T = 2a + n/B) to the bare MPI_Allreduce sizes: a from the messages of at most
      16 KiB, B by least squares on relative error over those of at least 1 MiB (fit_link).
  a bucketed gradient all-reduce:  k buckets of n/k bytes each, one after the other: k T(n/k, p);
      compressed: half the bytes in transit (the conversion's cost is not modelled).
  a training step:  after backward: t_c + T_grad;  overlapped: t_c + max(T_last, T_grad - t_b),
      t_c the compute time, t_b = 2/3 t_c the part of it that is backward (backward costs
      about twice the forward), T_last the last bucket's all-reduce (the main thread reduces
      it after backward). t_c is measured once per model on the bare link (step time after
      backward minus the measured all-reduce) and reused for the shaped links.

Held out: the 4-host all-reduces (p = 4: the ring's 2(p-1)/p), every bucketed gradient
all-reduce, and every step time. The predictions at scale assume 8 GPUs per node sharing one
NIC of the given line rate, a ring over the nodes (NCCL's inter-node pattern) with the link
efficiency and latency fitted at 10 Gb/s here, and intra-node NVLink traffic as free; compute
times are stated in PREDICT below with their sources.
"""
import argparse
import json
import math
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oodt_plot  # noqa: E402  one look for every figure of the project

GBIT = 1e9 / 8  # bytes per second in 1 Gb/s

# Compute time per step on one GPU, and fp32 gradient bytes.
PREDICT = {
    # NVIDIA DeepLearningExamples, PyTorch ResNet50 v1.5 README, "Training performance: NVIDIA
    # DGX A100 (8x A100 80GB)": 2470 img/s on 1 GPU in mixed precision, at its batch of 256
    # per GPU: 103.6 ms per step. 25.56 M parameters.
    "ResNet-50": {"step_s": 256 / 2470, "grad_bytes": 25.557e6 * 4, "note": "2470 img/s (A100, AMP, batch 256)"},
    # No published single-GPU step time was reachable here; estimated from ResNet-50's at the
    # ratio of forward FLOPs at 224 px (17.6 G against 4.1 G per image, the ViT and ResNet
    # papers' counts) and the same batch: 445 ms. Transformers usually reach a higher share
    # of peak than convolutions, so this likely overstates compute (and efficiency). 86.57 M
    # parameters.
    "ViT-B/16": {"step_s": 256 / 2470 * 17.6 / 4.1, "grad_bytes": 86.567e6 * 4,
                 "note": "ResNet-50's x 17.6/4.1 GFLOPs (batch 256)"},
}
GPUS_PER_NODE = 8
BUCKET_BYTES = 25 * 2**20


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ring(n, p, a, inv_b):
    return 2 * (p - 1) * a + 2 * (p - 1) / p * n * inv_b


def fit_link(rows):
    """(a, 1/B) from 2-rank bare all-reduces, T = 2a + n/B: a from the messages of at most
    16 KiB (latency), 1/B by least squares on T_pred / T - 1 over those of at least 1 MiB
    (bandwidth), each given the other, until they settle. The shaper's token bucket (at least
    256 KiB) lets smaller messages through faster than the line rate, so the bandwidth is
    fitted where the bucket no longer matters."""
    small = [(r["bytes"], r["seconds"]) for r in rows if r["bytes"] <= 16 << 10]
    big = [(r["bytes"], r["seconds"]) for r in rows if r["bytes"] >= 1 << 20]
    if not small or not big:
        raise SystemExit("the sizes need messages of at most 16 KiB and of at least 1 MiB")
    x = np.array([n / t for n, t in big])
    t_big = np.array([t for n, t in big])
    a, inv_b = 0.0, float(x.sum() / (x @ x))
    for _ in range(200):
        a = max(0.0, statistics.median((t - n * inv_b) / 2 for n, t in small))
        inv_b = float(x @ (1 - 2 * a / t_big) / (x @ x))
    return a, inv_b


def bucketed(n, k, p, a, inv_b, compress):
    sent = n / 2 if compress != "none" else n
    return k * ring(sent / k, p, a, inv_b)


def err(pred, meas):
    return pred / meas - 1


def summary(errors):
    e = [abs(x) for x in errors]
    return f"median abs. error {100 * statistics.median(e):.0f}%, max {100 * max(e):.0f}% ({len(e)} points)"


def rate_label(rate):
    return "bare veth" if rate == "off" else rate.replace("gbit", " Gb/s").replace("mbit", " Mb/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--in", dest="inp", default="bench-results/multinode.json")
    ap.add_argument("--plot", action="append", default=[], help="figure file(s): .png, .svg")
    ap.add_argument("--fit-rate", default="10gbit", help="the link whose fit the predictions at scale use")
    a = ap.parse_args()
    rows = load(a.inp)
    rates = list(dict.fromkeys(r["rate"] for r in rows))
    links, out = {}, []
    p = out.append

    p("### Fitted links (2 hosts, bare MPI_Allreduce 4 KiB - 64 MiB)\n")
    p("| link | latency a | bandwidth B | B / line rate | fit error (2 hosts) | held out: 4 hosts |")
    p("|---|---|---|---|---|---|")
    for rate in rates:
        two = [r for r in rows if r["rate"] == rate and r["kind"] == "allreduce" and r["ranks"] == 2]
        if len(two) < 3:
            continue
        al, inv_b = fit_link(two)
        links[rate] = (al, inv_b)
        fit_e = [err(ring(r["bytes"], 2, al, inv_b), r["seconds"]) for r in two]
        four = [r for r in rows if r["rate"] == rate and r["kind"] == "allreduce" and r["ranks"] == 4]
        held = [err(ring(r["bytes"], 4, al, inv_b), r["seconds"]) for r in four]
        line = float(rate[:-4]) * GBIT if rate.endswith("gbit") else None
        p(f"| {rate_label(rate)} | {al * 1e6:.0f} us | {1 / inv_b / GBIT:.2f} Gb/s | "
          f"{'%.2f' % (1 / inv_b / line) if line else '-'} | {summary(fit_e)} | "
          f"{summary(held) if held else 'not measured'} |")
    if not links:
        raise SystemExit(f"{a.inp}: no 2-host all-reduce sizes to fit")

    p("\n### Held out: bucketed gradient all-reduces (2 hosts)\n")
    p("| link | model | MB | buckets (MB) | compression | measured | predicted | error |")
    p("|---|---|---|---|---|---|---|---|")
    grad_e = []
    for r in rows:
        if r["kind"] != "gradients" or r["rate"] not in links:
            continue
        pred = bucketed(r["bytes"], r["buckets"], r["ranks"], *links[r["rate"]], r["compress"])
        grad_e.append(err(pred, r["seconds"]))
        p(f"| {rate_label(r['rate'])} | {r['model']} | {r['bytes'] / 1e6:.1f} | {r['buckets']} ({r['bucket_mb']:g}) | "
          f"{r['compress']} | {r['seconds'] * 1e3:.1f} ms | {pred * 1e3:.1f} ms | {100 * grad_e[-1]:+.0f}% |")
    if grad_e:
        p(f"\nAll: {summary(grad_e)}.")

    # Compute per model: the bare link's step after backward minus its measured all-reduce.
    steps = [r for r in rows if r["kind"] == "steps" and r["rate"] in links]
    grads = {(r["rate"], r["model"], r["bucket_mb"], r["compress"]): r for r in rows if r["kind"] == "gradients"}
    fastest = "off" if "off" in links else rates[-1]
    compute = {}
    for r in steps:
        g = grads.get((fastest, r["model"], r["bucket_mb"], r["compress"]))
        if r["rate"] == fastest and r["compress"] == "none" and g:
            compute.setdefault(r["model"], []).append(r["after_backward_s"] - g["seconds"])
    compute = {m: statistics.median(v) for m, v in compute.items()}
    if steps:
        p(f"\n### Held out: training steps (2 hosts; compute t_c from the {rate_label(fastest)} run)\n")
        p("| link | model | buckets (MB) | compression | t_c | after backward: measured / predicted | "
          "overlapped: measured / predicted | hidden (measured) |")
        p("|---|---|---|---|---|---|---|---|")
        step_e = []
        for r in steps:
            g = grads.get((r["rate"], r["model"], r["bucket_mb"], r["compress"]))
            if r["model"] not in compute or not g:
                continue
            tc = compute[r["model"]]
            al, inv_b = links[r["rate"]]
            k = g["buckets"]
            t_grad = bucketed(g["bytes"], k, 2, al, inv_b, r["compress"])
            t_last = t_grad / k
            off_pred = tc + t_grad
            on_pred = tc + max(t_last, t_grad - 2 / 3 * tc)
            hidden = 1 - r["wait_s"] / r["comm_s"] if r["comm_s"] > 0 else float("nan")
            if r["rate"] != fastest:
                step_e += [err(off_pred, r["after_backward_s"]), err(on_pred, r["overlapped_s"])]
            p(f"| {rate_label(r['rate'])} | {r['model']} | {r['bucket_mb']:g} | {r['compress']} | {tc * 1e3:.0f} ms | "
              f"{r['after_backward_s'] * 1e3:.0f} / {off_pred * 1e3:.0f} ms | "
              f"{r['overlapped_s'] * 1e3:.0f} / {on_pred * 1e3:.0f} ms | {100 * hidden:.0f}% |")
        if step_e:
            p(f"\nShaped links (the bare link's rows gave t_c): {summary(step_e)}.")

    anchors = [r for r in rows if r["kind"] == "anchor"]
    if anchors:
        p("\n### Anchor: the MLP (7.4 MB of gradients, batch 32 per rank) by oodtrain and by PyTorch DDP (gloo)\n")
        p("| link | oodtrain samples/s | PyTorch DDP samples/s | ratio |")
        p("|---|---|---|---|")
        for r in anchors:
            p(f"| {rate_label(r['rate'])} | {r['oodtrain_samples_per_s']:.0f} | {r['ddp_samples_per_s']:.0f} | "
              f"{r['oodtrain_samples_per_s'] / r['ddp_samples_per_s']:.2f} |")

    # Predictions at scale.
    fit = a.fit_rate if a.fit_rate in links else next(r for r in links if r != "off")
    al, inv_b = links[fit]
    nominal = float(fit[:-4]) * GBIT
    efficiency = (1 / inv_b) / nominal  # what the fitted link achieves of its line rate
    nics = [10, 25, 100]
    gpus = [8 * 2**i for i in range(8)]  # 8 .. 1024

    def eff(model, g, nic, overlap, compress):
        m = PREDICT[model]
        nodes = g // GPUS_PER_NODE
        tc = m["step_s"]
        if nodes < 2:
            return 1.0
        ib = 1 / (nic * GBIT * efficiency)
        n = m["grad_bytes"] / (2 if compress else 1)
        k = max(1, math.ceil(m["grad_bytes"] / BUCKET_BYTES))
        t_grad = k * ring(n / k, nodes, al, ib)
        exposed = max(t_grad / k, t_grad - 2 / 3 * tc) if overlap else t_grad
        return tc / (tc + exposed)

    variants = [("after backward", False, False), ("overlapped", True, False), ("overlapped + fp16", True, True)]
    p(f"\n### Predicted efficiency at scale (8 GPUs per node, one NIC; a = {al * 1e6:.0f} us and "
      f"{100 * efficiency:.0f}% of line rate from the {rate_label(fit)} fit)\n")
    for model in PREDICT:
        p(f"{model}: {PREDICT[model]['note']}, {PREDICT[model]['grad_bytes'] / 1e6:.0f} MB of fp32 gradients.\n")
        p("| NIC | variant | " + " | ".join(str(g) for g in gpus) + " |")
        p("|---|---|" + "---|" * len(gpus))
        for nic in nics:
            for name, ov, cp in variants:
                p(f"| {nic} Gb/s | {name} | " + " | ".join(f"{eff(model, g, nic, ov, cp):.2f}" for g in gpus) + " |")
        p("")
    print("\n".join(out))

    if a.plot:
        fig, axes = oodt_plot.figure(7.0, 2.8, ncols=2, sharey=True)
        axes = axes[0]
        styles = ["--", "-", ":"]
        for ax, model in zip(axes, PREDICT):
            for i, nic in enumerate(nics):
                for (name, ov, cp), ls in zip(variants, styles):
                    ax.plot(gpus, [eff(model, g, nic, ov, cp) for g in gpus], ls, color=oodt_plot.colour(i),
                            marker=oodt_plot.MARKERS[i], label=f"{nic} Gb/s, {name}")
            ax.set_xscale("log", base=2)
            ax.set_xticks(gpus)
            ax.set_xticklabels([str(g) for g in gpus])
            ax.set_xlabel("GPUs (8 per node)")
            ax.set_title(f"{model} ({PREDICT[model]['step_s'] * 1e3:.0f} ms compute per step)")
            ax.set_ylim(0, 1.05)
            oodt_plot.styled(ax)
        axes[0].set_ylabel("predicted efficiency (compute / step)")
        handles, labels = axes[0].get_legend_handles_labels()
        oodt_plot.legend_right(axes[1], handles, labels, title="NIC per node, all-reduce")
        oodt_plot.save(fig, a.plot)


if __name__ == "__main__":
    sys.exit(main())
