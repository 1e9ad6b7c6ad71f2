#!/usr/bin/python3
"""Redraws docs/results.md's FedSpeed, GAQAT and WiSE-FT figures from the tables printed next to
them, with the project's plotting module (scripts/oodt_plot.py), as PNG and SVG in docs/figures/.

  scripts/results_figures.py [--results docs/results.md] [--out docs/figures]

The experiment scripts (scripts/soup_experiments.py, scripts/fed_qat_experiments.py) draw the
same figures from their per-seed results when they run; this script is for the shipped copies,
so a figure never shows numbers other than its table's. It reads the markdown tables under the
headings named below (mean ± standard deviation over seeds, as the tables report them) and
fails, naming the heading, when a table is missing or malformed.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oodt_plot as P  # noqa: E402

PM = re.compile(r"^\s*\**\s*([-+0-9.]+)\s*(?:±\s*([0-9.]+))?\s*\**\s*$")


def tables_after(text, heading):
    """The markdown tables (lists of row cell lists, header first) after `heading` up to the
    next heading of the same or a higher level."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == heading), None)
    if start is None:
        sys.exit(f"results_figures: no heading '{heading}'")
    level = len(heading) - len(heading.lstrip("#"))
    tables, cur = [], None
    for line in lines[start + 1:]:
        if line.startswith("#") and len(line) - len(line.lstrip("#")) <= level:
            break
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = []
                tables.append(cur)
            if not all(set(c) <= set("-: ") for c in cells):
                cur.append(cells)
        else:
            cur = None
    return tables


def value(cell, where):
    """'0.769 ± 0.022' or '**0.8641 ± 0.0006**' -> (mean, sd or None)."""
    m = PM.match(cell)
    if not m:
        sys.exit(f"results_figures: {where}: '{cell}' is not 'mean ± sd'")
    return float(m.group(1)), (float(m.group(2)) if m.group(2) else None)


def mean_sd_lines(ax, xs, series, scale=100.0):
    """One line per (label, [(mean, sd)]) with a ±1 sd band; returns the handles."""
    handles = []
    for i, (label, points) in enumerate(series):
        ys = [m * scale for m, _ in points]
        (line,) = ax.plot(xs, ys, color=P.colour(i), marker=P.MARKERS[i % len(P.MARKERS)], label=label)
        if all(sd is not None for _, sd in points):
            ax.fill_between(xs, [(m - sd) * scale for m, sd in points], [(m + sd) * scale for m, sd in points],
                            color=line.get_color(), alpha=0.18, linewidth=0)
        handles.append(line)
    return handles


def fedspeed(tables, heading, stem):
    """FedSpeed and FedAvg validation accuracy against the round."""
    for t in tables:
        head = t[0]
        if head[0] != "round":
            continue
        acc = [i for i, h in enumerate(head) if h.endswith(" acc") or h.endswith(" val")]
        rounds = [int(r[0]) for r in t[1:]]
        series = [(head[i].split()[0], [value(r[i], f"{heading}, {head[i]}") for r in t[1:]]) for i in acc]
        fig, axes = P.figure(4.2, 2.8)
        ax = P.styled(axes[0][0])
        handles = mean_sd_lines(ax, rounds, series)
        ax.set_xticks(rounds)
        ax.set_xlabel("round")
        ax.set_ylabel("validation accuracy (%)")
        P.legend_right(ax, handles, [s[0] for s in series], title="mean ± 1 s.d. over 3 seeds")
        P.save(fig, [stem + ".png", stem + ".svg"])
        yield stem


def qat(tables, heading, stem):
    """Held-out accuracy per variant, grouped by bit width."""
    t = next(t for t in tables if t[0][0] == "variant")
    col = next(i for i, h in enumerate(t[0]) if h.startswith("held-out acc"))
    per = {r[0]: value(r[col], f"{heading}, {r[0]}") for r in t[1:]}
    groups, methods = [], []
    for name in per:
        group, _, method = name.partition(" ") if name != "full precision" else ("fp32", "", "")
        method = method or "full precision"
        groups += [group] if group not in groups else []
        methods += [method] if method not in methods else []

    def cell(s, g):
        key = "full precision" if methods[s] == "full precision" else f"{groups[g]} {methods[s]}"
        if key not in per or (methods[s] == "full precision") != (groups[g] == "fp32"):
            return None
        m, sd = per[key]
        return 100 * m, None if sd is None else 100 * sd

    fig = P.bar_figure(groups, methods, cell, "held-out accuracy (%)", "held-out rot_0 after QAT",
                       xlabel="bit width", err_note="mean ± 1 s.d. over 3 seeds", mark_missing=False, values=True)
    P.save(fig, [stem + ".png", stem + ".svg"])
    yield stem


def wiseft(tables, heading, stem):
    """ID and OOD accuracy and OOD confidence against alpha, plain and BANG fine-tuning."""
    t = next(t for t in tables if t[0][0] == "α")
    head = t[0]
    alphas = [float(re.match(r"[0-9.]+", r[0]).group(0)) for r in t[1:]]
    fig, axes = P.figure(7.0, 2.9, ncols=2, gridspec_kw={"wspace": 0.32})
    for p, (quantities, ylabel, title) in enumerate(
            [(("ID", "OOD"), "accuracy (%)", "accuracy"), (("OOD conf.",), "OOD confidence (%)", "OOD confidence")]):
        ax = P.styled(axes[0][p])
        handles, labels = [], []
        for m, method in enumerate(("plain", "BANG")):
            for q, qname in enumerate(quantities):
                i = head.index(f"{qname}, {method}")
                ys = [100 * value(r[i], f"{heading}, {head[i]}")[0] for r in t[1:]]
                (line,) = ax.plot(alphas, ys, color=P.colour(m), linestyle="-" if q == 0 else "--",
                                  marker=P.MARKERS[q])
                handles.append(line)
                labels.append(f"{qname}, {'WiSE-FT of plain fine-tuning' if method == 'plain' else 'BANG'}")
        P.alpha_ticks(ax, alphas)
        ax.set_xlabel(f"{P.ALPHA}   (0: {P.THETA0}, 1: fine-tuned)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        P.legend_below(ax, handles, labels, ncol=1, title="mean over 3 seeds")
    P.save(fig, [stem + ".png", stem + ".svg"])
    yield stem


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--results", default=os.path.join(root, "docs/results.md"))
    ap.add_argument("--out", default=os.path.join(root, "docs/figures"))
    a = ap.parse_args()
    text = open(a.results, encoding="utf-8").read()
    os.makedirs(a.out, exist_ok=True)
    jobs = [
        ("### WiSE-FT and BANG", wiseft, "wise_ft_bang"),
        ("## FedSpeed vs FedAvg", fedspeed, None),
        ("## GAQAT: quantization-aware training on Rotated Fashion-MNIST", qat, "qat_heldout"),
    ]
    for heading, draw, stem in jobs:
        tables = tables_after(text, heading)
        if draw is fedspeed:
            fed = [t for t in tables if t[0][0] == "round"]
            if len(fed) != 2:
                sys.exit(f"results_figures: {heading}: expected 2 round tables, found {len(fed)}")
            for t, name in zip(fed, ("fedspeed_dirichlet", "fedspeed_domain")):
                for s in fedspeed([t], heading, os.path.join(a.out, name)):
                    print("wrote", s + ".png", s + ".svg")
            continue
        for s in draw(tables, heading, os.path.join(a.out, stem)):
            print("wrote", s + ".png", s + ".svg")


if __name__ == "__main__":
    main()
