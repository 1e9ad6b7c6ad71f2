#!/usr/bin/python3
"""Gradient communication over emulated network links (issue 22, docs/performance.md):

    bench/multinode.py [--rates 1gbit,10gbit,off] [--out bench-results/multinode.json]

Hosts are network namespaces (scripts/netns_cluster.sh, root), one rank each, Open MPI over
TCP between them; `shape RATE` caps what every host sends (tc tbf), like a full-duplex NIC of
that line rate; `off` is the bare veth (as fast as the 2 cores move bytes). Per rate:

  sizes       bare MPI_Allreduce of 4 KiB - 64 MiB on 2 hosts and on 4 hosts (bench_comm --sizes):
              what scripts/scaling_model.py fits (2 hosts) and checks (4 hosts, held out);
  gradients   oodtrain's bucketed all-reduce of the CNN's, the MLP's and resnet18's gradients
              against one bare MPI_Allreduce of the same bytes, buckets of 1, 25 and 100 MB,
              fp16 and bf16 compression at 25 MB (bench_comm);
  steps       training steps of resnet18 (also with fp16 compression), the MLP and the CNN, 25 MB
              buckets, reduced during backward (overlap) and after it: step time, the
              communication thread's time and the main thread's wait for it, so the hidden
              share is 1 - wait / comm;
  anchor      the same MLP trained by `oodtrain train` and by PyTorch DDP (gloo, 25 MB
              buckets, bench/ddp_baseline.py) over the same link, samples/s.

Ranks are not pinned (--bind-to none): each host's Open MPI daemon would pin its rank 0 to
core 0, putting every host on the same core. One thread per rank. Writes every measurement to
--out as JSON (one object per line); prints a line per run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts/netns_cluster.sh")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
MLP = "{name: mlp, hidden: [1024, 1024]}"  # bench_comm's MLP: 7.4 MB of gradients


def cluster(*args):
    r = subprocess.run(["bash", CLUSTER, *args], env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"netns_cluster.sh {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


def across(hosts, cmd, timeout=900):
    """cmd on `hosts` ranks, one per host; its stdout."""
    r = subprocess.run(["bash", CLUSTER, "run", "--", "-np", str(hosts), "--bind-to", "none", *cmd],
                       env=ENV, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed on {hosts} hosts:\n{r.stdout}{r.stderr}")
    return r.stdout


def json_lines(out, **extra):
    return [dict(json.loads(l[5:]), **extra) for l in out.splitlines() if l.startswith("json ")]


def up(hosts, rate):
    cluster("down")
    cluster("up", str(hosts))
    cluster("shape", rate)


def anchor(a, rate):
    """samples/s of `oodtrain train` and of PyTorch DDP, same MLP, batch, optimizer, link."""
    with tempfile.TemporaryDirectory() as d:
        sets = [f"run.dir={d}/run", f"model={MLP}", f"train.steps={a.anchor_steps}", f"train.eval_every={a.anchor_warmup}",
                "train.checkpoint_every=0", "train.threads=1", "data.eval_train_in=false", f"data.path={a.data}",
                "data.batch_size=32", "dist.overlap=true"]
        cmd = [a.oodtrain, "train", "-c", os.path.join(ROOT, "configs/quickstart.yaml")]
        for s in sets:
            cmd += ["--set", s]
        across(2, cmd)
        with open(f"{d}/run/metrics.jsonl") as f:
            ours = [json.loads(l) for l in f if l.strip()][-1]["samples_per_s"]
    out = across(2, ["-x", "MASTER_ADDR=10.231.0.10", "-x", "MASTER_PORT=29541", "-x", "GLOO_SOCKET_IFNAME=eth0",
                     "/usr/bin/python3", os.path.join(ROOT, "bench/ddp_baseline.py"), "--data", a.data, "--model", "mlp",
                     "--hidden", "1024,1024", "--batch", "32", "--steps", str(a.anchor_steps),
                     "--warmup", str(a.anchor_warmup)])
    theirs = float(next(l for l in out.splitlines() if l.startswith("samples_per_s")).split()[1])
    return {"kind": "anchor", "model": "mlp", "ranks": 2, "rate": rate, "oodtrain_samples_per_s": ours,
            "ddp_samples_per_s": theirs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="1gbit,10gbit,off", help="tc rates (kbit/mbit/gbit) or off, comma-separated")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data", default=os.path.join(ROOT, "build/testdata/rotated_fmnist.h5"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results/multinode.json"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--anchor-steps", type=int, default=80)
    ap.add_argument("--anchor-warmup", type=int, default=20)
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: sizes4,gradients,steps,anchor")
    ap.add_argument("--sizes-only", default="", help="further rates measured with the 2-host sizes alone (e.g. 25gbit)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    a.oodtrain = os.path.join(a.build, "launch/oodtrain")
    comm = os.path.join(a.build, "bench/bench_comm")
    for f in (a.oodtrain, comm, a.data):
        if not os.path.exists(f):
            raise SystemExit(f"missing {f} (build first; the data is ctest's cli.prepare_data file)")
    skip = set(filter(None, a.skip.split(",")))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    os.environ["OODT_NETNS_DIR"] = ENV["OODT_NETNS_DIR"] = tempfile.mkdtemp(prefix="oodt-netns-")
    results = []

    def keep(rows, what):
        results.extend(rows)
        with open(a.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
        print(f"{time.strftime('%H:%M:%S')} {what}: {len(rows)} measurement(s)", flush=True)

    try:
        for rate in filter(None, a.sizes_only.split(",")):
            up(2, rate)
            keep(json_lines(across(2, [comm, "--reps", str(a.reps), "--sizes"]), rate=rate), f"{rate} sizes, 2 hosts")
        for rate in a.rates.split(","):
            up(2, rate)
            base = [comm, "--reps", str(a.reps)]
            keep(json_lines(across(2, base + ["--sizes"]), rate=rate), f"{rate} sizes, 2 hosts")
            if "gradients" not in skip or "steps" not in skip:
                # (model, bucket MB, compression, training steps too): each run measures the
                # all-reduce of all three models' gradients; steps at the default buckets only.
                runs = [("resnet18", 1, "none", False), ("resnet18", 100, "none", False),
                        ("resnet18", 25, "bf16", False), ("resnet18", 25, "none", True),
                        ("resnet18", 25, "fp16", True), ("mlp", 25, "none", True), ("cnn", 25, "none", True)]
                for model, bucket, compress, train in runs:
                    rounds = a.rounds if train and "steps" not in skip else 0
                    out = across(2, base + ["--model", model, "--bucket-mb", str(bucket), "--compress", compress,
                                            "--rounds", str(rounds), "--steps", str(a.steps)])
                    rows = json_lines(out, rate=rate)
                    if "gradients" in skip or model != "resnet18":  # each run measures all three models'
                        rows = [r for r in rows if r["kind"] != "gradients"]  # bandwidth: keep one of each
                    keep(rows, f"{rate} {model} buckets {bucket} MB compression {compress}")
            if "anchor" not in skip:
                keep([anchor(a, rate)], f"{rate} oodtrain and PyTorch DDP")
            if "sizes4" not in skip:
                up(4, rate)
                keep(json_lines(across(4, base + ["--sizes"]), rate=rate), f"{rate} sizes, 4 hosts")
    finally:
        cluster("down")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
