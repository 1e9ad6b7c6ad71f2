"""Reading oodtrain's metrics.jsonl in the experiment scripts: the same count-weighted
summaries the trainer prints (core/evaluate.h, summarize)."""
import json
import os


def summary(entry):
    """One evaluation's validation accuracy (training domains' out splits) and held-out accuracy
    and ECE (held-out domains, both splits); NaN where there is no such split."""
    val = held = held_ece = 0.0
    nv = nh = 0
    for d in entry["domains"].values():
        for split in ("in", "out"):
            m = d[split]
            if d["held_out"]:
                held, held_ece, nh = held + m["acc"] * m["n"], held_ece + m["ece"] * m["n"], nh + m["n"]
            elif split == "out":
                val, nv = val + m["acc"] * m["n"], nv + m["n"]
    nan = float("nan")
    return {"val": val / nv if nv else nan, "held": held / nh if nh else nan, "held_ece": held_ece / nh if nh else nan}


def evaluations(run_dir):
    """Every evaluation of a run, in order, as parsed JSON."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]
