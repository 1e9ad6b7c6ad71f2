#!/usr/bin/python3
"""Peak memory of training on a dataset 10x larger, side by side with the original:

    bench/data_memory.py [--steps 200] [--cache-mb 8]

Writes a 10x copy of datasets/rotated_fmnist.h5 (every image ten times, same domains and
classes; chunked like `oodtrain data prepare`'s files) under /tmp, then trains the quickstart
CNN for the same steps and evaluates every split of each file, one process, and compares the
peak resident set size (wait4 of the child). Decoded images are held in an LRU bounded by
data.cache_mb; with a budget below the small file's decoded size (55 MB) both runs use the
same image memory, and what grows is the per-sample bookkeeping (labels, domain ids, split
and shard positions). With the default budget (256 MB) the 10x run also fills its cache.
"""
import argparse
import json
import os
import subprocess
import tempfile

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_copy(src, dst, times):
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        n = f["/images"].shape[0]
        img = f["/images"]
        out = g.create_dataset("/images", (n * times,) + img.shape[1:], dtype=img.dtype,
                               chunks=img.chunks or (256,) + img.shape[1:], compression="gzip", compression_opts=4)
        data = img[:]
        for k in range(times):
            out[k * n:(k + 1) * n] = data
        for name in ("/labels", "/domains"):
            g.create_dataset(name, data=np.tile(f[name][:], times))
        for k, v in f.attrs.items():
            g.attrs[k] = v


def peak_rss_mib(binary, data, steps, run_dir, cache_mb):
    cmd = [binary, "train", "-c", os.path.join(ROOT, "configs/quickstart.yaml"), "--set", f"data.path={data}",
           "--set", f"run.dir={run_dir}", "--set", f"train.steps={steps}", "--set", f"train.eval_every={steps}",
           "--set", "train.checkpoint_every=0", "--set", "train.threads=1", "--set", f"data.cache_mb={cache_mb}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return usage.ru_maxrss / 1024.0  # KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "datasets/rotated_fmnist.h5"))
    ap.add_argument("--oodtrain", default=os.path.join(ROOT, "build/launch/oodtrain"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--times", type=int, default=10)
    ap.add_argument("--cache-mb", type=int, default=8)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        big = os.path.join(d, "big.h5")
        make_copy(a.data, big, a.times)
        small = peak_rss_mib(a.oodtrain, a.data, a.steps, os.path.join(d, "r1"), a.cache_mb)
        large = peak_rss_mib(a.oodtrain, big, a.steps, os.path.join(d, "r2"), a.cache_mb)
        sizes = [os.path.getsize(p) / 2**20 for p in (a.data, big)]
        print(f"1x file {sizes[0]:.0f} MiB: peak RSS {small:.1f} MiB")
        print(f"{a.times}x file {sizes[1]:.0f} MiB: peak RSS {large:.1f} MiB")
        print(f"memory growth for {a.times}x the data (data.cache_mb={a.cache_mb}): {100 * (large / small - 1):+.1f}%")


if __name__ == "__main__":
    main()
