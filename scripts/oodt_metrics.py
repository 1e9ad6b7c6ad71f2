"""Reading oodtrain's metrics.jsonl in the experiment scripts. Every row carries the summary the
trainer computed (core/report.h): nothing here recomputes it."""
import json
import os


def summary(entry):
    """One evaluation's validation accuracy (training domains' out splits) and held-out accuracy
    and ECE (held-out domains, both splits); NaN where there is no such split."""
    s = entry["summary"]

    def number(key):
        v = s.get(key)
        return float("nan") if v is None else v

    return {"val": number("val_acc"), "held": number("heldout_acc"), "held_ece": number("heldout_ece")}


def evaluations(run_dir):
    """Every evaluation of a run, in order, as parsed JSON."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]
