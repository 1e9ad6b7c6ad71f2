#!/root/.cache/oodt/golden-venv/bin/python
"""Weight-file format fixtures for the C++ safetensors / torch.save readers, written to
tests/fixtures/weights/ (every file a few hundred bytes):
    tensors.safetensors         safetensors.torch.save_file, metadata {"format": "pt"}
    tensors.pt                  torch.save (zipfile format) of the same tensors plus two views
                                of `a`: t = a.t() (non-contiguous) and s = a[1] (storage offset)
    tensors_legacy.pt           the same with _use_new_zipfile_serialization=False (to be refused)
    nested.pt                   {'state_dict': OrderedDict(a, b), 'epoch': 3}, a checkpoint wrapper
    expected.h5                 float64 values of every tensor in tensors.pt, plus uint8 text
                                `dtypes` = JSON {name: "F32" | "F16" | "BF16" | "F64" | "I64" | "U8" | "I32"}
    corrupt_header.safetensors  header length larger than the file
    bad_offsets.safetensors     a tensor's data_offsets run past the end of the data area
    truncated.safetensors       a valid file cut short inside its data area
Every value is exactly representable in its dtype, so expected.h5 is exact. All files but
tensors_legacy.pt come out byte-identical on every run; the legacy format names its storages by
their memory addresses (str(storage._cdata)), so that file differs in those keys.

Environment (the same virtualenv as make_backbone_golden.py: Debian's python3 with torch 1.13,
h5py 3.7.0, numpy 1.24.2, plus safetensors 0.8.0 from PyPI):
    /usr/bin/python3 -m venv --system-site-packages /root/.cache/oodt/golden-venv
    /root/.cache/oodt/golden-venv/bin/pip install safetensors==0.8.0
    /root/.cache/oodt/golden-venv/bin/python tests/golden/make_weight_format_fixtures.py tests/fixtures/weights
"""
import json
import os
import struct
import sys
from collections import OrderedDict

import h5py
import numpy as np
import safetensors
import safetensors.torch
import torch

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
               torch.int64: "I64", torch.uint8: "U8", torch.int32: "I32"}


def base_tensors():
    return OrderedDict([
        ("a", torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1),  # -1 .. 1.5
        ("b", torch.tensor([0.5, -1.25, 3.0, -2048.0], dtype=torch.float16)),
        ("c", torch.tensor([[0.5, -1.25], [3.0, 1024.0], [-0.0078125, 2.5]], dtype=torch.bfloat16)),
        ("d", torch.tensor(1.0 / 3.0, dtype=torch.float64)),  # 0-dim; not representable in float32
        ("e", torch.tensor([-3, 0, 7, 2**40, -(2**33)], dtype=torch.int64)),
        ("f", torch.zeros(0, 3, dtype=torch.float32)),
        ("g", torch.tensor([[0, 1], [128, 255]], dtype=torch.uint8)),
        ("h", torch.tensor([-(2**31), 0, 123456], dtype=torch.int32)),
        ("layer.0.weight", torch.tensor([[1.5, -2.0], [0.25, 8.0]], dtype=torch.float32)),
    ])


def with_views(base):
    d = OrderedDict(base)
    d["t"] = d["a"].t()
    d["s"] = d["a"][1]
    assert not d["t"].is_contiguous() and d["s"].storage_offset() == 3
    assert d["t"].storage().data_ptr() == d["a"].storage().data_ptr()
    return d


def safetensors_bytes(header, data):
    """A safetensors file: u64 little-endian header length, JSON header padded with spaces to a
    multiple of 8 (as the safetensors package does), data area."""
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    base = base_tensors()
    full = with_views(base)

    safetensors.torch.save_file(base, os.path.join(out, "tensors.safetensors"), metadata={"format": "pt"})
    torch.save(full, os.path.join(out, "tensors.pt"))
    torch.save(full, os.path.join(out, "tensors_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save({"state_dict": OrderedDict(a=base["a"], b=base["b"]), "epoch": 3}, os.path.join(out, "nested.pt"))

    with h5py.File(os.path.join(out, "expected.h5"), "w") as f:
        for name, t in full.items():
            f.create_dataset(name, data=t.to(torch.float64).numpy())
        dtypes = {name: DTYPE_NAMES[t.dtype] for name, t in full.items()}
        f.create_dataset("dtypes", data=np.frombuffer(json.dumps(dtypes).encode(), dtype=np.uint8))
        gen = "tests/golden/make_weight_format_fixtures.py (torch %s, safetensors %s)" % (
            torch.__version__, safetensors.__version__)
        f.create_dataset("generator", data=np.frombuffer(gen.encode(), dtype=np.uint8))

    # Header length 4096, but the file is far shorter.
    good = safetensors_bytes({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "__metadata__": {"format": "pt"}}, struct.pack("<2f", 1.0, 2.0))
    with open(os.path.join(out, "corrupt_header.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", 4096) + good[8:])
    # x is consistent with its own offsets ([4] F32 = 16 bytes), but the data area has 8 bytes.
    with open(os.path.join(out, "bad_offsets.safetensors"), "wb") as fh:
        fh.write(safetensors_bytes({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                    "__metadata__": {"format": "pt"}}, struct.pack("<2f", 1.0, 2.0)))
    # A file from the safetensors package with its 64-byte data area cut to 20 bytes.
    path = os.path.join(out, "truncated.safetensors")
    safetensors.torch.save_file({"x": torch.arange(16, dtype=torch.float32).reshape(4, 4)}, path,
                                metadata={"format": "pt"})
    with open(path, "rb") as fh:
        data = fh.read()
    n = struct.unpack("<Q", data[:8])[0]
    assert len(data) == 8 + n + 64
    with open(path, "wb") as fh:
        fh.write(data[:8 + n + 20])

    self_check(out, full)


def self_check(out, full):
    """Reads everything back through the reference libraries (and fails where they fail)."""
    from safetensors import safe_open

    with safe_open(os.path.join(out, "tensors.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        for name in f.keys():
            t = f.get_tensor(name)
            assert t.dtype == full[name].dtype and torch.equal(t, full[name]), name
        assert set(f.keys()) == set(full) - {"t", "s"}
    for fname in ("tensors.pt", "tensors_legacy.pt"):
        got = torch.load(os.path.join(out, fname))
        assert list(got) == list(full)
        for name, t in full.items():
            assert got[name].dtype == t.dtype and got[name].shape == t.shape and torch.equal(got[name], t), name
        assert got["t"].stride() == (1, 3) and got["s"].storage_offset() == 3
    nested = torch.load(os.path.join(out, "nested.pt"))
    assert nested["epoch"] == 3 and list(nested["state_dict"]) == ["a", "b"]
    with h5py.File(os.path.join(out, "expected.h5"), "r") as f:
        for name, t in full.items():
            assert np.array_equal(f[name][()], t.to(torch.float64).numpy()) and f[name].shape == tuple(t.shape)
        assert f["d"][()] == 1.0 / 3.0
    for bad in ("corrupt_header", "bad_offsets", "truncated"):
        try:
            safetensors.torch.load_file(os.path.join(out, bad + ".safetensors"))
        except Exception as e:  # the reference must refuse each of them too
            print(f"{bad}.safetensors refused by safetensors: {type(e).__name__}: {e}")
        else:
            raise AssertionError(bad + " was accepted")
    for fname in sorted(os.listdir(out)):
        print(f"{fname}: {os.path.getsize(os.path.join(out, fname))} bytes")


if __name__ == "__main__":
    main()
