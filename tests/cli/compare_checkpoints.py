#!/usr/bin/python3
"""compare_checkpoints.py A.h5 B.h5: exit 0 when model, optimizer, plugin, trainer and RNG state
and the step are bit-identical; otherwise print what differs and exit 1. The metadata under
/meta (config text, creation time) is not state and is not compared."""
import sys

import h5py
import numpy as np


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                 if isinstance(obj, h5py.Dataset) and not name.startswith("meta/") else None)
    return out


a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
da, db = datasets(a), datasets(b)
bad = sorted(set(da) ^ set(db))
for name in sorted(set(da) & set(db)):
    if da[name].shape != db[name].shape or not np.array_equal(da[name], db[name]):
        diff = np.abs(da[name].astype(np.float64) - db[name].astype(np.float64)).max() if da[name].shape == db[name].shape else "shape"
        bad.append(f"{name} (max diff {diff})")
for attr in ("step", "epoch", "world_size"):
    if a.attrs[attr] != b.attrs[attr]:
        bad.append(f"attribute {attr}: {a.attrs[attr]} vs {b.attrs[attr]}")
if bad:
    print("checkpoints differ:", *bad, sep="\n  ")
    sys.exit(1)
print(f"bit-identical: {len(da)} datasets")
