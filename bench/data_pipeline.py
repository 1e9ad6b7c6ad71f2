#!/usr/bin/python3
"""Image datasets: decoding + augmentation throughput, import throughput, reader memory.

    bench/data_pipeline.py [--images 200] [--rounds 2] [--steps 25]

Generates DomainBed-layout JPEG trees (2 domains x 2 classes, quality 90, smooth random
content: three octaves of upscaled noise, colour gradients, mild pixel noise) at 227x227
(PACS) and 640x480 under --work, then:

1. Decode + augment to 224x224, images/s, 1 and 2 threads, rounds interleaved:
   - oodtrain: the reader alone (build/bench/bench_data --reader-only): training batches of 32
     of the `photo` domain, data.augment.preset domainbed, decoding and augmentation on N
     intra-op threads (ATen's parallel loop), timed over batches 6..N. No model.
   - torchvision 0.14 + PIL: a Dataset over the training domain's files, PIL open +
     convert('RGB') + DomainBed's train transform (RandomResizedCrop(224, scale 0.7-1),
     RandomHorizontalFlip, ColorJitter(0.3 x4), RandomGrayscale(0.1), ToTensor, Normalize),
     DataLoader batch 32, shuffled; num_workers 0 with torch.set_num_threads(1) vs
     num_workers 2. Timed over batches 6..N (no model).
   - where the time goes (1 thread): oodtrain with augment {preset: none, size: 224}
     (decode + resize) and domainbed without colour jitter; PIL decode alone.
2. `oodtrain data import` wall time (images/s, MB/s of the folder) and file sizes, encoded
   and --decode 224x224, --threads 1 and 2.
3. Peak RSS (wait4 of the child) of a training run + final evaluation on the 640x480 import
   against one with 10x the images (the same files hard-linked 10 times), cache_mb 256 and 16.
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOMAINS, CLASSES = ["art", "photo"], ["dog", "house"]


def generate(root, w, h, n, seed):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        d, c = DOMAINS[i % 2], CLASSES[(i // 2) % 2]
        os.makedirs(f"{root}/{d}/{c}", exist_ok=True)
        img = np.zeros((h, w, 3), np.float32)
        for cells, amp in ((4, 0.5), (16, 0.25), (64, 0.12)):
            small = Image.fromarray((rng.random((cells * h // w + 1, cells, 3)) * 255).astype(np.uint8))
            img += amp * (np.asarray(small.resize((w, h), Image.BICUBIC), np.float32) - 128)
        img += 60 * (xx / w)[..., None] * rng.standard_normal(3) + 40 * (yy / h)[..., None] * rng.standard_normal(3)
        img += rng.normal(0, 4, img.shape)
        Image.fromarray(np.clip(img + 128, 0, 255).astype(np.uint8)).save(f"{root}/{d}/{c}/{i:05d}.jpg", quality=90)


def folder_bytes(root):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def run(cmd, env=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr, time.perf_counter() - t


def train_cmd(a, data, run_dir, threads, augment, extra=()):
    sets = [f"run.dir={run_dir}", "run.seed=0", f"data.path={data}", "data.test_domains=[art]", "data.batch_size=32",
            "data.prefetch=0", f"data.augment={augment}",
            "model={name: mlp, hidden: [2]}", "optim={name: sgd, lr: 0.01}", f"train.steps={a.steps}",
            "train.eval_every=0", "train.checkpoint_every=0", f"train.threads={threads}", "train.log_every=5",
            "train.log_every_s=0", *extra]
    cmd = [a.oodtrain, "train"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def oodtrain_rate(a, data, threads, augment):
    out, _ = run([a.bench_data, "--reader-only", "--data", data, "--test-domain", "art", "--augment", augment,
                  "--threads", str(threads), "--steps", str(a.steps), "--batch", "32"],
                 env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    return float(out.strip().splitlines()[-1])


TV_CHILD = r"""
import sys, time, glob, torch
from PIL import Image
from torchvision import transforms as T
files, workers, steps, mode = sorted(glob.glob(sys.argv[1] + "/photo/*/*.jpg")), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(1)
torch.manual_seed(0)
norm = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
full = T.Compose([T.RandomResizedCrop(224, scale=(0.7, 1.0)), T.RandomHorizontalFlip(),
                  T.ColorJitter(0.3, 0.3, 0.3, 0.3), T.RandomGrayscale(), T.ToTensor(), norm])
class Files(torch.utils.data.Dataset):
    def __len__(self): return len(files)
    def __getitem__(self, i):
        img = Image.open(files[i]).convert("RGB")
        if mode == "decode":
            return torch.zeros(1), 0
        return full(img), 0
sampler = torch.utils.data.RandomSampler(Files(), replacement=True, num_samples=32 * steps)
loader = torch.utils.data.DataLoader(Files(), batch_size=32, sampler=sampler, num_workers=workers)
it = iter(loader)
for _ in range(5): next(it)
t = time.perf_counter(); n = 0
for x, _ in it: n += x.shape[0]
print(n / (time.perf_counter() - t))
"""


def torchvision_rate(a, tree, workers, mode="full"):
    out, _ = run(["/usr/bin/python3", "-c", TV_CHILD, tree, str(workers), str(a.steps), mode],
                 env=dict(os.environ, OMP_NUM_THREADS="1"))
    return float(out.strip().splitlines()[-1])


def peak_rss_mib(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="2"))
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oodtrain", default=os.path.join(ROOT, "build/launch/oodtrain"))
    ap.add_argument("--bench-data", default=os.path.join(ROOT, "build/bench/bench_data"))
    ap.add_argument("--work", default="/tmp/oodt_data_pipeline")
    ap.add_argument("--images", type=int, default=200, help="JPEGs per size")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=25, help="batches of 32 per throughput run")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: throughput,memory (the import always runs: the other parts read its files)")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} cores", flush=True)
    sizes = {"227x227": (227, 227), "640x480": (640, 480)}
    trees = {}
    for k, (name, (w, h)) in enumerate(sizes.items()):
        trees[name] = f"{a.work}/{name}"
        generate(trees[name], w, h, a.images, seed=k)
        print(f"tree {name}: {a.images} JPEGs, {folder_bytes(trees[name]) / 1e6:.1f} MB", flush=True)

    # 2. import (also makes the files part 1 reads)
    files = {}
    print("\n== import ==")
    # wall: the whole process (startup, listing, writing); own: the time the import reports
    print(f"{'tree':8} {'mode':9} {'threads':>7} {'wall s':>6} {'img/s':>7} {'MB/s':>6} {'own s':>6} {'img/s':>7} "
          f"{'MB/s':>6} {'folder MB':>9} {'file MB':>8}")
    for name, tree in trees.items():
        for mode, flags in (("encoded", []), ("224x224", ["--decode", "224x224"])):
            for threads in (1, 2):
                out_file = f"{a.work}/{name}_{mode}.h5"
                out, s = run([a.oodtrain, "data", "import", tree, "-o", out_file, "--threads", str(threads), "--quiet"] + flags)
                own = float(re.search(r" in ([\d.]+) s \(", out).group(1))
                files[(name, mode)] = out_file
                fb = folder_bytes(tree)
                print(f"{name:8} {mode:9} {threads:>7} {s:6.2f} {a.images / s:7.0f} {fb / 1e6 / s:6.1f} {own:6.2f} "
                      f"{a.images / own:7.0f} {fb / 1e6 / own:6.1f} {fb / 1e6:9.1f} "
                      f"{os.path.getsize(out_file) / 1e6:8.1f}", flush=True)

    if "throughput" not in skip:
        print("\n== decode + augment to 224x224, images/s (rounds interleaved) ==", flush=True)
        res = {}
        domainbed = "{preset: domainbed}"
        for r in range(a.rounds):
            for threads in (1, 2):
                for name in trees:
                    res.setdefault(("oodtrain", name, threads), []).append(
                        oodtrain_rate(a, files[(name, "encoded")], threads, domainbed))
                    res.setdefault(("torchvision", name, threads), []).append(
                        torchvision_rate(a, trees[name], 0 if threads == 1 else threads))
                    if threads == 1:
                        res.setdefault(("oodtrain decode+resize", name, 1), []).append(
                            oodtrain_rate(a, files[(name, "encoded")], 1, "{preset: none, size: 224}"))
                        res.setdefault(("oodtrain no jitter", name, 1), []).append(
                            oodtrain_rate(a, files[(name, "encoded")], 1, "{preset: domainbed, color_jitter: false}"))
                        res.setdefault(("PIL decode only", name, 1), []).append(
                            torchvision_rate(a, trees[name], 0, "decode"))
            print(f"round {r + 1} done, load {os.getloadavg()}", flush=True)
        med = {k: statistics.median(v) for k, v in res.items()}
        print(f"\n{'what':24} {'images':8} {'threads':>7} {'img/s':>8} {'per core':>8} {'ms/img':>7}  runs")
        for k, v in res.items():
            what, name, threads = k
            rate = med[k]
            print(f"{what:24} {name:8} {threads:>7} {rate:8.0f} {rate / threads:8.0f} {1e3 * threads / rate:7.2f}  "
                  f"{', '.join(f'{x:.0f}' for x in v)}")
        print("\nratios oodtrain / torchvision (same threads, so also per core):")
        for name in trees:
            for threads in (1, 2):
                print(f"  {name} {threads} thread(s): "
                      f"{med[('oodtrain', name, threads)] / med[('torchvision', name, threads)]:.2f}x")

    if "memory" not in skip:
        print("\n== reader memory: peak RSS (MiB), train 20 steps + final evaluation of every image, 2 threads ==",
              flush=True)
        big = f"{a.work}/640x480_x10"
        for root, _, fs in os.walk(trees["640x480"]):
            rel = os.path.relpath(root, trees["640x480"])
            os.makedirs(os.path.join(big, rel), exist_ok=True)
            for f in fs:
                for k in range(10):
                    os.link(os.path.join(root, f), os.path.join(big, rel, f"{k}_{f}"))
        big_file = f"{a.work}/640x480_x10.h5"
        run([a.oodtrain, "data", "import", big, "-o", big_file, "--threads", "2", "--quiet"])
        small_file = files[("640x480", "encoded")]
        print(f"files: {os.path.getsize(small_file) / 1e6:.1f} MB ({a.images} images), "
              f"{os.path.getsize(big_file) / 1e6:.1f} MB ({10 * a.images} images)")
        for cache in (256, 16):
            row = []
            for f in (small_file, big_file):
                with tempfile.TemporaryDirectory(dir=a.work) as d:
                    cmd = train_cmd(a, f, f"{d}/run", 2, "{preset: domainbed}",
                                    [f"data.cache_mb={cache}", "train.steps=20", "data.prefetch=2"])
                    row.append(peak_rss_mib(cmd))
            print(f"cache_mb {cache:>3}: {row[0]:.0f} MiB ({a.images} images) vs {row[1]:.0f} MiB ({10 * a.images} images)",
                  flush=True)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
