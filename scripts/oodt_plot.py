#!/usr/bin/python3
"""Figures of oodtrain results, drawn with matplotlib (Debian: python3-matplotlib).

  oodt_plot.py bars   --in collect.json      --out accuracy.png --out accuracy.svg [--method oracle]
  oodt_plot.py curves --in collect.json      --out curves.png
  oodt_plot.py wiseft --in interpolation.csv --out interpolation.png
  oodt_plot.py soup   --in soup.json         --out soup.png

bars    held-out accuracy per test domain (groups) and configuration (bars), mean with a
        standard-error whisker, for one model selection of `oodtrain collect`'s JSON;
curves  learning curves from the same JSON: one panel per held-out domain, the held-out
        domain's accuracy and the training domains' validation accuracy per configuration;
wiseft  `oodtrain interpolate`'s interpolation.csv: ID/OOD accuracy and OOD confidence/ECE
        against alpha;
soup    `oodtrain soup`'s .json summary: each candidate alone against the soup.

Each --out's extension (.png, .svg, .pdf) picks its format. oodtrain carries this file inside
its binary and runs it with $OODT_PYTHON or /usr/bin/python3; scripts/soup_experiments.py and
scripts/fed_qat_experiments.py import it, so every figure of the project has one look.
Exit codes: 1 unreadable input, 2 bad command line, 3 matplotlib missing.
"""
import argparse
import csv
import json
import math
import re
import sys

try:
    import matplotlib
    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator
except ImportError as e:  # oodtrain turns exit code 3 into an installation hint
    if __name__ == "__main__":
        print(f"figures need python3-matplotlib: apt-get install python3-matplotlib ({e})", file=sys.stderr)
        sys.exit(3)
    raise

# One look for every figure: sizes fit a paper column (3.3 in) or page (7 in) at these fonts.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "errorbar.capsize": 2.5,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "svg.hashsalt": "oodtrain",  # the same figure gives the same SVG file
}
# Set once for the process: artists read these when they are made, long after a figure is.
matplotlib.rcParams.update(STYLE)
# Okabe & Ito's colour-blind-safe palette, yellow last (weak on white).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
HATCHES = ["", "///", "...", "xxx"]  # beyond 8 series the colours repeat with a hatch
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
WRAP = 28  # legend and tick labels longer than this wrap instead of being clipped
# This file stays ASCII (the build embeds it as a char array): symbols as escapes.
PM, EN_DASH, ALPHA, THETA0, THETA1 = "\u00b1", "\u2013", "\u03b1", "\u03b8\u2080", "\u03b8\u2081"
SE_NOTE = f"mean {PM} 1 s.e. over "


class InputError(Exception):
    """An input file that is not what the subcommand reads (exit 1)."""


def colour(i):
    return PALETTE[i % len(PALETTE)]


def hatch(i):
    return HATCHES[(i // len(PALETTE)) % len(HATCHES)]


def wrap(text, width=WRAP):
    """Breaks a label into lines of at most `width` characters, after a space or a separator
    of configuration strings (`,=:[{`), so `lr_scale` stays whole; longer words are split."""
    pieces = [p for p in re.split(r"(?<=[ ,=:\[{])", str(text)) if p]
    lines, line = [], ""
    for piece in pieces:
        while len(piece) > width:  # a piece that fits no line
            if line:
                lines.append(line)
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if line and len((line + piece).rstrip()) > width:
            lines.append(line)
            line = ""
        line += piece
    lines.append(line)
    return "\n".join(l.rstrip() for l in lines if l.strip()) or str(text)


def natural_key(s):
    """rot_15 after rot_5: numbers in names compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def number(v):
    """A JSON value as a float; None, NaN and non-numbers as None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def mean_se(values):
    """Mean and standard error of the finite values (se None below two values)."""
    xs = [x for x in (number(v) for v in values) if x is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs)), len(xs)


def figure(width, height, ncols=1, nrows=1, **kw):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kw)
    return fig, axes


def styled(ax):
    """The y axis of a percentage: a handful of round ticks."""
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    return ax


def legend_right(ax, handles, labels, title=None):
    """A legend beside the axes, outside the data, its top level with the axes' top."""
    leg = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False,
                    title=title)
    # The title over the entries' left edge (a public setter from matplotlib 3.6 on).
    if hasattr(leg, "set_alignment"):
        leg.set_alignment("left")
    else:
        leg._legend_box.align = "left"
    return leg


def legend_below(ax, handles, labels, ncol=2, title=None):
    """A legend under the axes' tick labels and x label (measured, so nothing overlaps)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    bottom = ax.get_tightbbox(renderer).y0
    y = ax.transAxes.inverted().transform((0, bottom))[1]
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, y - 0.03), borderaxespad=0.0,
                     ncol=ncol, frameon=False, title=title)


def save(fig, paths):
    """Writes the figure to every path (format from the extension) and closes it."""
    try:
        for p in paths:
            meta = {"Date": None} if p.lower().endswith(".svg") else {}
            fig.savefig(p, metadata=meta)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Bars: groups along x, one bar per series in each group.

def grouped_bars(ax, groups, series, cell, mark_missing=True, separate_last=False):
    """Draws bars of cell(series_index, group_index) -> (mean, err[, note]) or None.

    mark_missing: a missing cell keeps its slot and shows an x at the axis (a table's empty
    cell); otherwise the group's present bars close up (series that do not apply to a group).
    err None draws no whisker. Returns the legend handles of the series, whether a cell was
    marked missing, and (x, mean, err) of every bar."""
    n = max(1, len(series))
    width = 0.8 / n
    missing_x, drawn = [], []
    for g in range(len(groups)):
        present = [s for s in range(len(series)) if cell(s, g) is not None]
        slots = list(range(len(series))) if mark_missing else present
        for k, s in enumerate(slots):
            x = g + (k - (len(slots) - 1) / 2) * width
            c = cell(s, g)
            if c is None:
                missing_x.append((x, s))
                continue
            mean, err = c[0], c[1]
            drawn.append((x, mean, err))
            if len(c) > 2 and c[2]:  # e.g. "n=1": why this bar has no whisker
                ax.annotate(c[2], (x, mean), xytext=(0, 1.5), textcoords="offset points", ha="center", va="bottom",
                            fontsize=6, color="#444444")
            ax.bar(x, mean, width * 0.92, color=colour(s), hatch=hatch(s), edgecolor="white" if not hatch(s) else "#333333",
                   linewidth=0.4, zorder=2)
            if err is not None:
                ax.errorbar(x, mean, yerr=err, fmt="none", ecolor="#222222", elinewidth=0.9, capsize=2.5, zorder=3)
    for x, s in missing_x:
        # Blended transform: x in data, y just above the axis whatever the y range.
        ax.plot([x], [0.035], transform=ax.get_xaxis_transform(), marker="x", markersize=5, markeredgewidth=1.4,
                color=colour(s), linestyle="none", zorder=3, clip_on=False)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([wrap(g, 14) for g in groups])
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.tick_params(axis="x", length=0)
    if separate_last and len(groups) > 1:
        ax.axvline(len(groups) - 1.5, color="#888888", linestyle=":", linewidth=0.9)
    handles = [Patch(facecolor=colour(s), hatch=hatch(s), edgecolor="white" if not hatch(s) else "#333333")
               for s in range(len(series))]
    if missing_x:
        handles.append(Line2D([], [], marker="x", color="#555555", linestyle="none", markeredgewidth=1.4))
    return handles, bool(missing_x), drawn


def bar_ylim(ax, tops, floor=0.0, cap=100.0):
    """y from `floor` to a little above the highest bar or whisker, at most `cap` when the
    data stay below it (accuracies in percent)."""
    hi = max([t for t in tops if t is not None] or [1.0])
    top = hi + 0.08 * max(hi - floor, 1e-9)
    if cap is not None and hi <= cap:
        top = min(top, cap)
    ax.set_ylim(floor, top)
    styled(ax)


def bar_figure(groups, series, cell, ylabel, title, xlabel=None, err_note=None, mark_missing=True,
               separate_last=False, ymin=0.0, values=False):
    """A grouped bar chart with its legend to the right. cell as in grouped_bars; values: the
    mean written above each bar (for a few bars)."""
    width = min(13.0, max(3.6, 1.2 + 0.24 * len(groups) * (len(series) + 1)))
    fig, axes = figure(width, 3.0)
    ax = axes[0][0]
    handles, any_missing, drawn = grouped_bars(ax, groups, series, cell, mark_missing=mark_missing,
                                        separate_last=separate_last)
    tops = []
    for s in range(len(series)):
        for g in range(len(groups)):
            c = cell(s, g)
            if c is not None:
                tops.append(c[0] + (c[1] or 0.0))
    if values:
        for x, mean, err in drawn:
            ax.annotate(f"{mean:.1f}", (x, mean + (err or 0.0)), xytext=(0, 1.5), textcoords="offset points",
                        ha="center", va="bottom", fontsize=6.5)
        tops = [t * 1.04 for t in tops]  # room for the numbers
    bar_ylim(ax, tops, floor=ymin)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, loc="left")
    labels = [wrap(s) for s in series]
    if any_missing:
        labels.append("no result")
    if len(series) > 1 or any_missing:
        legend_right(ax, handles, labels, title=err_note)
    elif err_note:
        ax.text(1.02, 1.0, err_note, transform=ax.transAxes, va="top", fontsize=8)
    return fig


def collect_selection(data, method=None):
    sels = data.get("selections") if isinstance(data, dict) else None
    if not isinstance(sels, list) or not sels:
        raise InputError("no 'selections' (expected oodtrain collect's JSON)")
    if method is None:
        return sels[0]
    for s in sels:
        if s.get("method") == method:
            return s
    raise InputError(f"no selection '{method}' (have: {', '.join(str(s.get('method')) for s in sels)})")


def bars_figure(data, method=None, ymin=0.0):
    """Held-out accuracy per test domain and configuration for one model selection of the
    collect JSON (the first unless `method`), with the 'Avg' group last."""
    sel = collect_selection(data, method)
    domains = list(sel.get("domains") or [])
    rows = sel.get("rows") or []
    if not rows:
        raise InputError(f"selection '{sel.get('method')}' has no rows")
    groups = domains + ["Avg"]
    # The Avg bar is the table's Avg column (X unless every domain has a value, as DomainBed
    # prints it); its whisker is the averages table's standard error over seeds.
    spread = {}
    for av in (data.get("averages") or []):
        if av.get("method") == sel.get("method"):
            for r in av.get("rows") or []:
                c = (r.get("cells") or {}).get(sel.get("dataset"))
                if isinstance(c, dict):
                    spread[r.get("config")] = c

    def cell(s, g):
        row = rows[s]
        if g == len(domains):
            c = row.get("avg")
            if number(c) is not None:
                sp = spread.get(row.get("config")) or {}
                c = {"mean": c, "se": sp.get("se"), "n": sp.get("n")}
        else:
            c = (row.get("cells") or {}).get(domains[g])
        if not isinstance(c, dict):
            return None
        mean = number(c.get("mean"))
        if mean is None:
            return None
        se, n = number(c.get("se")), number(c.get("n"))
        # A whisker needs a spread: no se, or one seed (se 0), draws none.
        if se is None or (n is not None and n < 2):
            return mean, None, f"n={int(n)}" if n is not None else None
        return mean, se

    ns = [number(c.get("n")) for r in rows for c in list((r.get("cells") or {}).values()) + [r.get("avg")]
          if isinstance(c, dict) and number(c.get("n")) is not None]
    note = SE_NOTE + "seeds"
    if ns:
        lo, hi = int(min(ns)), int(max(ns))
        note += f" (n = {lo})" if lo == hi else f" (n = {lo}{EN_DASH}{hi})"
    title = f"model selection: {sel.get('method', '?')}"
    if sel.get("dataset"):
        title = f"{sel['dataset']}, {title}"
    return bar_figure(groups, config_labels([r.get("config", "?") for r in rows]), cell, "held-out accuracy (%)",
                      title, xlabel="test domain", err_note=note, separate_last=True, ymin=ymin)


def config_labels(configs):
    """Legend labels of collect's configurations: when every one is only an `algorithms=`
    list, the lists alone, and the empty one named as what it is (plain ERM)."""
    if all(c.startswith("algorithms=[") and c.endswith("]") and "], " not in c for c in configs):
        return ["ERM (no plugin)" if c == "algorithms=[]" else c[len("algorithms="):] for c in configs]
    return list(configs)


# ---------------------------------------------------------------------------------------------
# Lines: x against the mean over runs, with a +-1 s.e. band when there are several.

def aggregate(runs):
    """runs: one {x: y} per run. Returns xs, means, ses (None without a spread), ns."""
    xs = sorted({x for r in runs for x, y in r.items() if number(y) is not None})
    means, ses, ns = [], [], []
    for x in xs:
        m, se, n = mean_se([r.get(x) for r in runs])
        means.append(m)
        ses.append(se)
        ns.append(n)
    return xs, means, ses, ns


def draw_line(ax, runs, scale=1.0, band=True, **kw):
    """Plots the mean of the runs ({x: y} each) times `scale`; a shaded +-1 s.e. band where
    at least two runs have a value. Returns the line."""
    xs, means, ses, _ = aggregate(runs)
    if not xs:
        return None
    ys = [m * scale for m in means]
    if len(xs) > 25:  # markers would merge into a thick line
        kw["marker"] = None
    (line,) = ax.plot(xs, ys, **kw)
    if band and any(se is not None for se in ses):
        lo = [(m - (se or 0.0)) * scale for m, se in zip(means, ses)]
        hi = [(m + (se or 0.0)) * scale for m, se in zip(means, ses)]
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0, zorder=line.get_zorder() - 1)
    return line


def line_figure(series, xlabel, ylabel, title=None, scale=100.0, integer_x=False, band_note=True):
    """One panel of lines, legend to the right. series: dicts with 'label', 'runs' (one {x: y}
    per seed) and optional 'colour', 'linestyle', 'marker'. Used by the experiment scripts."""
    fig, axes = figure(4.2, 2.8)
    ax = styled(axes[0][0])
    handles, labels = [], []
    several = False
    for i, s in enumerate(series):
        line = draw_line(ax, s["runs"], scale=scale, color=s.get("colour", colour(i)),
                         linestyle=s.get("linestyle", "-"), marker=s.get("marker", MARKERS[i % len(MARKERS)]))
        several |= len(s["runs"]) > 1
        if line is not None:
            handles.append(line)
            labels.append(wrap(s["label"]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title, loc="left")
    note = SE_NOTE + "seeds" if several and band_note else None
    legend_right(ax, handles, labels, title=note)
    return fig


def curves_figure(data, ncols=3):
    """Learning curves of the collect JSON: one panel per held-out domain; per configuration
    the held-out domain's accuracy (its `in` split, the test accuracy of the tables; `out` when
    there is no `in`) solid and the training domains' validation accuracy dashed, each the mean
    over the runs holding that domain out (band: +-1 s.e.). Domains never share a line."""
    curves = data.get("curves") if isinstance(data, dict) else None
    if not isinstance(curves, list) or not curves:
        raise InputError("no 'curves' (expected oodtrain collect's JSON)")
    order = [d for s in data.get("selections") or [] for d in s.get("domains") or []]
    held = {d for c in curves for d in c.get("held_out") or []}
    domains = [d for d in dict.fromkeys(order) if d in held] + sorted(held - set(order), key=natural_key)
    # The tables' order (and so the bar figure's colours) first.
    table = [r.get("config") for s in data.get("selections") or [] for r in s.get("rows") or []]
    configs = list(dict.fromkeys([c for c in table if c] + [c.get("config", "?") for c in curves]))
    panels = domains or ["(none held out)"]
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = figure(2.7 * ncols, 2.2 * nrows, ncols=ncols, nrows=nrows, sharex=True, sharey=True)
    several = False
    for p, d in enumerate(panels):
        ax = styled(axes[p // ncols][p % ncols])
        for i, cfg in enumerate(configs):
            runs = [c for c in curves if c.get("config", "?") == cfg and (d in (c.get("held_out") or []) or not domains)]
            several |= len(runs) > 1
            held_runs, val_runs = [], []
            for r in runs:
                h, v = {}, {}
                for pt in r.get("points") or []:
                    step = number(pt.get("step"))
                    if step is None:
                        continue
                    v[step] = number(pt.get("val_acc"))
                    dom = (pt.get("domains") or {}).get(d) or {}
                    h[step] = number(dom.get("in")) if number(dom.get("in")) is not None else number(dom.get("out"))
                held_runs.append(h)
                val_runs.append(v)
            if domains:
                draw_line(ax, held_runs, scale=100.0, color=colour(i), linestyle="-", marker="o", markersize=3,
                          label=f"{cfg} | held-out {d}")
            draw_line(ax, val_runs, scale=100.0, color=colour(i), linestyle="--", marker=None, linewidth=1.2,
                      label=f"{cfg} | validation")
        ax.set_title(f"held out: {d}" if domains else d, loc="left")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        if p // ncols == nrows - 1 or p + ncols >= len(panels):
            ax.set_xlabel("step")
            ax.xaxis.set_tick_params(labelbottom=True)
        if p % ncols == 0:
            ax.set_ylabel("accuracy (%)")
    for p in range(len(panels), nrows * ncols):
        axes[p // ncols][p % ncols].set_visible(False)
    handles = [Line2D([], [], color=colour(i), linewidth=4) for i in range(len(configs))]
    labels = [wrap(c) for c in config_labels(configs)]
    handles += [Line2D([], [], color="#444444", linestyle="-", marker="o", markersize=3),
                Line2D([], [], color="#444444", linestyle="--", linewidth=1.2)]
    labels += ["held-out domain", "training-domain\nvalidation (mean)"]
    legend_right(axes[0][ncols - 1], handles, labels, title=SE_NOTE + "runs" if several else None)
    return fig


# ---------------------------------------------------------------------------------------------
# WiSE-FT: accuracy and calibration against the interpolation coefficient.

def read_interpolation(path):
    """interpolation.csv as a list of rows of floats, sorted by alpha."""
    want = ["alpha", "id_acc", "ood_acc", "ood_confidence", "ood_ece"]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or any(k not in reader.fieldnames for k in want):
            raise InputError(f"expected the columns {','.join(want)} (oodtrain interpolate's interpolation.csv)")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append({k: float(row[k]) for k in want})
            except (TypeError, ValueError):
                raise InputError(f"line {line}: not a number in {row}") from None
    if not rows:
        raise InputError("no rows")
    return sorted(rows, key=lambda r: r["alpha"])


def alpha_ticks(ax, alphas):
    """Major ticks at the alphas used (every k-th when there are many, the rest minor)."""
    k = max(1, math.ceil(len(alphas) / 11))
    major = alphas[::k]
    ax.set_xticks(major)
    ax.set_xticklabels([f"{a:g}" for a in major])
    if k > 1:
        ax.set_xticks(alphas, minor=True)
    pad = 0.04 * max(alphas[-1] - alphas[0], 1e-9)
    ax.set_xlim(alphas[0] - pad, alphas[-1] + pad)


def wiseft_figure(methods, title=None, mark_best=True):
    """methods: {name: [rows of one seed, ...]} with rows as read_interpolation gives them.
    Panel 1: ID and OOD accuracy; panel 2: OOD confidence and ECE; mean over seeds with a
    +-1 s.e. band. One method: a colour per quantity; several: a colour per method and a line
    style per quantity."""
    names = list(methods)
    alphas = sorted({r["alpha"] for runs in methods.values() for rows in runs for r in rows})
    fig, axes = figure(7.0, 2.9, ncols=2, gridspec_kw={"wspace": 0.32})
    panels = [(axes[0][0], [("id_acc", "ID (validation)"), ("ood_acc", "OOD (held-out)")], "accuracy (%)", "accuracy"),
              (axes[0][1], [("ood_confidence", "OOD confidence"), ("ood_ece", "OOD ECE")], "OOD confidence / ECE (%)",
               "calibration on held-out domains")]
    one = len(names) == 1
    several = any(len(runs) > 1 for runs in methods.values())
    for p, (ax, keys, ylabel, ptitle) in enumerate(panels):
        styled(ax)
        handles, labels = [], []
        for m, name in enumerate(names):
            for q, (key, label) in enumerate(keys):
                runs = [{r["alpha"]: r[key] for r in rows} for rows in methods[name]]
                c = colour(2 * p + q) if one else colour(m)
                line = draw_line(ax, runs, scale=100.0, color=c, linestyle="-" if q == 0 or one else "--",
                                 marker=MARKERS[q + 2 * p] if one else MARKERS[q])
                if one:
                    handles.append(line)
                    labels.append(label)
        if not one:
            handles = [Line2D([], [], color=colour(m), linewidth=4) for m in range(len(names))]
            labels = [wrap(n) for n in names]
            handles += [Line2D([], [], color="#444444", linestyle="-", marker=MARKERS[0]),
                        Line2D([], [], color="#444444", linestyle="--", marker=MARKERS[1])]
            labels += [keys[0][1], keys[1][1]]
        if p == 0 and mark_best and one:
            runs = methods[names[0]]
            _, ood, _, _ = aggregate([{r["alpha"]: r["ood_acc"] for r in rows} for rows in runs])
            best = alphas[max(range(len(alphas)), key=lambda i: ood[i] if ood[i] is not None else -1)]
            handles.append(ax.axvline(best, color="#888888", linestyle=":", linewidth=1.0, zorder=1))
            labels.append(f"best OOD: {ALPHA} = {best:g}")
        alpha_ticks(ax, alphas)
        ax.set_xlabel(f"{ALPHA}   (0: zero-shot {THETA0}, 1: fine-tuned {THETA1})")
        ax.set_ylabel(ylabel)
        ax.set_title(ptitle, loc="left")
        ax.grid(True, axis="x", alpha=0.15)
        # Two columns fit under a panel: the methods, then the quantities' line styles.
        legend_below(ax, handles, labels, ncol=2, title=SE_NOTE + "seeds" if several else None)
    if title:
        fig.suptitle(title, x=0.07, ha="left")
    return fig


# ---------------------------------------------------------------------------------------------
# Soups: each candidate alone against the soup.

def wrap_path(path, width=18):
    """A path on lines of whole components (a line breaks after a '/')."""
    lines = [""]
    for part in path.split("/"):
        piece = part if not lines[-1] else "/" + part
        if lines[-1] and len(lines[-1] + piece) > width:
            lines[-1] += "/"
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def short_names(paths):
    """Paths without their shared leading folders and the .h5 extension."""
    parts = [str(p).split("/") for p in paths]
    common = 0
    while all(len(q) > common + 1 for q in parts) and len({q[common] for q in parts}) == 1:
        common += 1
    return [re.sub(r"\.h5$", "", "/".join(q[common:])) for q in parts]


def soup_figure(summary):
    """A greedy soup: the candidates in the order tried, each one's own validation accuracy
    against the soup's when it was tried (filled: kept, open: rejected) and the final soup.
    A uniform soup (no candidate scored alone): the soup's validation and held-out accuracy."""
    if not isinstance(summary, dict) or "method" not in summary:
        raise InputError("expected oodtrain soup's .json summary (a 'method' field)")
    method = summary.get("method")
    val, held = number(summary.get("val_acc")), number(summary.get("heldout_acc"))
    kept = summary.get("kept") or []
    cands = summary.get("candidates") or []
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"
    head = f"{method} soup of {len(kept)}"
    if not cands:
        fig, axes = figure(3.4, 2.6)
        ax = axes[0][0]
        vals = [val, held]
        ax.bar([0, 1], [100 * (v or 0.0) for v in vals], 0.6, color=[colour(0), colour(3)], zorder=2)
        for x, v in enumerate(vals):
            ax.text(x, 100 * (v or 0.0), pct(v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["validation\n(training domains)", "held-out\ndomains"])
        ax.tick_params(axis="x", length=0)
        bar_ylim(ax, [100 * (v or 0.0) for v in vals] + [100 * max(v or 0.0 for v in vals) * 1.06])
        ax.set_ylabel("soup accuracy (%)")
        ax.set_title(f"{head} candidates (none scored alone)", loc="left")
        return fig
    n = len(cands)
    names = short_names([c.get("path", f"candidate {i + 1}") for i, c in enumerate(cands)])
    ticks = [f"{i + 1}\n{wrap_path(nm, 12)}" for i, nm in enumerate(names)]
    # Room per candidate for its longest label line (about 0.065 in a character at 8 pt).
    longest = max(len(line) for t in ticks for line in t.split("\n"))
    per = max(0.6, 0.065 * longest + 0.15)
    rotate = 1.6 + per * n > 12.0
    fig, axes = figure(min(12.0, max(4.0, 1.6 + (0.45 if rotate else per) * n)), 2.9)
    ax = styled(axes[0][0])
    xs = list(range(1, n + 1))
    own = [number(c.get("val_acc")) for c in cands]
    trial = [number(c.get("soup_val_acc")) for c in cands]
    ok = [bool(c.get("kept")) for c in cands]
    h_own = ax.scatter([x for x, v in zip(xs, own) if v is not None], [100 * v for v in own if v is not None],
                       s=28, color="#999999", marker="D", zorder=3)
    pts = [(x, 100 * v, k) for x, v, k in zip(xs, trial, ok) if v is not None]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour(0), linewidth=1.4, zorder=2)
    h_kept = ax.scatter([p[0] for p in pts if p[2]], [p[1] for p in pts if p[2]], s=36, color=colour(0), zorder=4)
    h_rej = ax.scatter([p[0] for p in pts if not p[2]], [p[1] for p in pts if not p[2]], s=36, facecolor="white",
                       edgecolor=colour(0), linewidth=1.4, zorder=4)
    handles, labels = [h_own, h_kept, h_rej], ["candidate alone", "soup with it: kept", "soup with it: rejected"]
    if val is not None:
        handles.append(ax.axhline(100 * val, color=colour(3), linestyle="--", linewidth=1.2, zorder=1))
        labels.append(f"final soup ({pct(val)})")
    ax.set_xticks(xs)
    if rotate:  # too many to stand side by side
        ax.set_xticklabels([f"{i + 1}: {nm}" for i, nm in enumerate(names)], rotation=35, ha="right",
                           rotation_mode="anchor", fontsize=7)
    else:
        ax.set_xticklabels(ticks, fontsize=8)
    ax.set_xlim(0.5, n + 0.5)
    ax.margins(y=0.15)
    ax.set_xlabel("candidate, in the order tried (best alone first)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{head} of {n} candidates\nheld-out accuracy of the soup: {pct(held)}", loc="left")
    legend_right(ax, handles, labels)
    return fig


# ---------------------------------------------------------------------------------------------

def load_json(path):
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise InputError(f"not JSON ({e})") from None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="kind", required=True)
    for kind, what in (("bars", "collect JSON"), ("curves", "collect JSON"), ("wiseft", "interpolation.csv"),
                       ("soup", "soup .json summary")):
        p = sub.add_parser(kind)
        p.add_argument("--in", dest="input", required=True, help=what)
        p.add_argument("--out", action="append", required=True, help="figure file(s): .png, .svg or .pdf")
        p.add_argument("--title", default=None)
        if kind == "bars":
            p.add_argument("--method", default=None, help="model selection to plot (default: the first)")
            p.add_argument("--ymin", type=float, default=0.0, help="lower end of the accuracy axis (default 0)")
    args = ap.parse_args(argv)
    for o in args.out:
        if not re.search(r"\.(png|svg|pdf)$", o, re.I):
            ap.error(f"--out {o}: the extension must be .png, .svg or .pdf")
    try:
        if args.kind == "bars":
            fig = bars_figure(load_json(args.input), method=args.method, ymin=args.ymin)
        elif args.kind == "curves":
            fig = curves_figure(load_json(args.input))
        elif args.kind == "wiseft":
            fig = wiseft_figure({"WiSE-FT": [read_interpolation(args.input)]})
        else:
            fig = soup_figure(load_json(args.input))
    except (OSError, InputError) as e:
        print(f"oodt_plot {args.kind}: {args.input}: {e}", file=sys.stderr)
        return 1
    if args.title:
        fig.suptitle(args.title, x=0.02, ha="left", fontsize=10)
    try:
        save(fig, args.out)
    except OSError as e:
        print(f"oodt_plot {args.kind}: cannot write {e.filename or ' '.join(args.out)}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
