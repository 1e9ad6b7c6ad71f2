#!/usr/bin/python3
"""Image fixtures for the C++ JPEG/PNG decoder (data/image_codec.cpp), written to
tests/fixtures/images/. Every image is 37x23 (W x H: odd on purpose, so chroma blocks and DCT
scaling round) and a few hundred bytes to a few kB:

    baseline.jpg      RGB, quality 90, PIL's default 4:2:0 subsampling
    sub444.jpg        RGB, quality 90, 4:4:4
    sub422.jpg        RGB, quality 90, 4:2:2
    progressive.jpg   RGB, quality 90, progressive, 4:2:0
    gray.jpg          one component
    cmyk.jpg          CMYK (PIL writes Adobe-inverted values plus an APP14 Adobe marker)
    ycck.jpg          YCCK, compressed from CMYK pixels by libturbojpeg itself (ctypes: PIL
                      cannot write YCCK)
    rgb.png, rgba.png, la.png (gray+alpha), gray.png, gray1.png (1-bit), palette.png,
    palette_trns.png (palette with a tRNS chunk), gray16.png (PIL 'I;16')
    rgb16.png         16-bit RGB, written by hand (PIL cannot write it)
    interlaced.png    8-bit RGB, Adam7, written by hand (PIL cannot write interlaced PNGs)
    truncated.jpg     baseline.jpg cut half-way through its scan (header intact; in a file this
                      small the headers and tables are over half of the bytes)
    corrupt_scan.jpg  baseline.jpg with 8 bytes in the middle of the scan replaced by stuffed
                      0xFF 0x00 pairs: 64 one-bits in a row, which no JPEG Huffman code can
                      match (all-ones codes are reserved), so libjpeg must report "bad Huffman
                      code" however the bits fall
    truncated.png     rgb.png cut inside its IDAT
    bad_crc.png       rgb.png with its IDAT CRC flipped (header intact)
    huge.jpg          baseline.jpg with the SOF0 size patched to 65000x65000 (4.2e9 pixels)
    huge.png          a valid IHDR of 30000x30000 (9e8 pixels), a one-row IDAT, IEND
    not_an_image.jpg  text
    empty.jpg         zero bytes
    expected.h5       uint8 [H, W, 3] per decodable file, named by file:
                        np.asarray(Image.open(f).convert('RGB'))
                      except gray16.png, whose value is the high byte of each sample (v >> 8)
                      replicated to RGB: PIL's convert('RGB') clips 'I' mode instead
                      (min(v, 255)), which is not a useful 16->8 reduction. rgb16.png is PIL's
                      own decode (PIL reads RGB;16B as the high bytes), checked here against
                      the source >> 8.
                      draft2/<name>, draft4/<name>, draft8/<name> for every JPEG: PIL's
                      Image.draft('RGB', (w // s, h // s)) (libjpeg DCT scaling by 1/s) then
                      convert('RGB').

Environment: Debian 12's /usr/bin/python3 with python3-pil 9.4.0 (linked to the system
libjpeg-turbo 2.1.5, the same library the C++ code uses), python3-numpy 1.24.2, python3-h5py
3.7.0, libturbojpeg0 2.1.5. Run from the repository root:
    /usr/bin/python3 tests/golden/make_image_fixtures.py tests/fixtures/images
The output is byte-identical from run to run.
"""
import ctypes
import os
import struct
import sys
import zlib

import h5py
import numpy as np
import PIL
from PIL import Image, features

W, H = 37, 23
JPEGS = ["baseline.jpg", "sub444.jpg", "sub422.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "ycck.jpg"]
PNGS = ["rgb.png", "rgba.png", "la.png", "gray.png", "gray1.png", "palette.png", "palette_trns.png",
        "gray16.png", "rgb16.png", "interlaced.png"]


def source_rgb():
    """Smooth colour ramps, a hard edge and mild noise: exercises chroma subsampling and the IDCT."""
    rng = np.random.RandomState(20)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 255 * x / (W - 1)
    g = 255 * y / (H - 1)
    b = np.where(x + 2 * y > 30, 220.0, 30.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, size=(H, W, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(ihdr, idat):
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def raw_rows(arr):
    """Filter type 0 (None) before every row of a [h, w, c] big-endian array."""
    h = arr.shape[0]
    flat = arr.reshape(h, -1).tobytes() if arr.size else b""
    row = len(flat) // h if h else 0
    return b"".join(b"\x00" + flat[i * row:(i + 1) * row] for i in range(h))


def write_rgb16(path, arr16):
    ihdr = struct.pack(">IIBBBBB", W, H, 16, 2, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(png_bytes(ihdr, zlib.compress(raw_rows(arr16.astype(">u2")), 9)))


def write_adam7(path, arr):
    """8-bit RGB, interlace method 1: the seven passes' sub-images one after the other."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    data = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:  # empty passes carry no bytes at all
            data += raw_rows(sub)
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 1)
    with open(path, "wb") as fh:
        fh.write(png_bytes(ihdr, zlib.compress(data, 9)))


def write_ycck(path, cmyk):
    """tjCompress2 with TJPF_CMYK writes a YCCK JPEG (libturbojpeg's documented behaviour) with an
    Adobe marker (transform 2); the values go in as given."""
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
                               ctypes.c_int, ctypes.c_int, ctypes.c_int]
    tj.tjFree.argtypes = [ctypes.c_void_p]
    tj.tjDestroy.argtypes = [ctypes.c_void_p]
    handle = tj.tjInitCompress()
    out, size = ctypes.c_void_p(), ctypes.c_ulong(0)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = tj.tjCompress2(handle, cmyk.tobytes(), W, 0, H, TJPF_CMYK, ctypes.byref(out), ctypes.byref(size),
                        TJSAMP_420, 90, 0)
    assert rc == 0
    with open(path, "wb") as fh:
        fh.write(ctypes.string_at(out, size.value))
    tj.tjFree(out)
    tj.tjDestroy(handle)


def scan_range(data):
    """[start, end) of the entropy-coded data after the first SOS marker."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]
    end = data.rindex(b"\xff\xd9")
    return start, end


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    rgb = source_rgb()
    im = Image.fromarray(rgb, "RGB")
    gray = np.asarray(im.convert("L"))
    rng = np.random.RandomState(7)

    im.save(p("baseline.jpg"), quality=90)
    im.save(p("sub444.jpg"), quality=90, subsampling=0)
    im.save(p("sub422.jpg"), quality=90, subsampling=1)
    im.save(p("progressive.jpg"), quality=90, progressive=True)
    Image.fromarray(gray, "L").save(p("gray.jpg"), quality=90)
    # Black (K) varies across the image so K and CMY both matter in the conversion.
    cmyk = np.concatenate([255 - rgb, np.round(np.linspace(0, 200, W))[None, :, None].repeat(H, 0)
                           .astype(np.uint8)], axis=-1)
    cmyk[:, :, :3] = (cmyk[:, :, :3] * 0.8).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(p("cmyk.jpg"), quality=90)
    # Adobe files store CMYK inverted (0 = full ink), as PIL's writer does; readers invert back.
    write_ycck(p("ycck.jpg"), np.ascontiguousarray(255 - cmyk))

    im.save(p("rgb.png"))
    alpha = rng.randint(0, 256, size=(H, W, 1)).astype(np.uint8)
    alpha[0, :3, 0] = [0, 128, 255]
    Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA").save(p("rgba.png"))
    Image.fromarray(np.stack([gray, alpha[:, :, 0]], axis=-1), "LA").save(p("la.png"))
    Image.fromarray(gray, "L").save(p("gray.png"))
    Image.fromarray(gray > 128).save(p("gray1.png"))  # mode '1': a 1-bit gray PNG
    pal = im.quantize(colors=13)
    pal.save(p("palette.png"))
    pal.save(p("palette_trns.png"), transparency=3)
    g16 = (rng.randint(0, 65536, size=(H, W))).astype(np.uint16)
    g16[0, :4] = [0, 255, 256, 65535]
    Image.fromarray(g16, "I;16").save(p("gray16.png"))
    rgb16 = rng.randint(0, 65536, size=(H, W, 3)).astype(np.uint16)
    rgb16[0, 0] = [0x00ff, 0xff00, 0x7f80]
    write_rgb16(p("rgb16.png"), rgb16)
    write_adam7(p("interlaced.png"), rgb)

    base = open(p("baseline.jpg"), "rb").read()
    s, e = scan_range(base)
    mid = (s + e) // 2
    with open(p("truncated.jpg"), "wb") as fh:
        fh.write(base[:mid])
    with open(p("corrupt_scan.jpg"), "wb") as fh:
        fh.write(base[:mid] + b"\xff\x00" * 8 + base[mid + 8:])
    sof = base.index(b"\xff\xc0")
    with open(p("huge.jpg"), "wb") as fh:  # SOF0: length(2) precision(1) height(2) width(2)
        fh.write(base[:sof + 5] + struct.pack(">HH", 65000, 65000) + base[sof + 9:])
    png = open(p("rgb.png"), "rb").read()
    idat = png.index(b"IDAT")
    idat_len = struct.unpack(">I", png[idat - 4:idat])[0]
    with open(p("truncated.png"), "wb") as fh:
        fh.write(png[:idat + 4 + idat_len // 2])
    crc_at = idat + 4 + idat_len
    with open(p("bad_crc.png"), "wb") as fh:
        fh.write(png[:crc_at] + bytes(b ^ 0xFF for b in png[crc_at:crc_at + 4]) + png[crc_at + 4:])
    with open(p("huge.png"), "wb") as fh:
        fh.write(png_bytes(struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0),
                           zlib.compress(b"\x00" * 30001)))
    with open(p("not_an_image.jpg"), "w") as fh:
        fh.write("This is a text file with a .jpg name.\n")
    open(p("empty.jpg"), "wb").close()

    with h5py.File(p("expected.h5"), "w") as f:
        for name in JPEGS + PNGS:
            if name == "gray16.png":
                hi = (np.asarray(Image.open(p(name))).astype(np.uint16) >> 8).astype(np.uint8)
                arr = np.repeat(hi[:, :, None], 3, axis=-1)
            else:
                arr = np.asarray(Image.open(p(name)).convert("RGB"))
            f.create_dataset(name, data=arr)
        for name in JPEGS:
            for s in (2, 4, 8):
                with Image.open(p(name)) as img:
                    img.draft("RGB", (W // s, H // s))
                    f.create_dataset("draft%d/%s" % (s, name), data=np.asarray(img.convert("RGB")))
        gen = "tests/golden/make_image_fixtures.py (Pillow %s, libjpeg-turbo %s, numpy %s)" % (
            PIL.__version__, features.version("libjpeg_turbo"), np.__version__)
        f.create_dataset("generator", data=np.frombuffer(gen.encode(), dtype=np.uint8))

    self_check(out, rgb, gray, rgb16, cmyk)


def pil_cmyk_to_rgb(cmyk):
    """Pillow 9.4's cmyk2rgb (libImaging/Convert.c): nk = 255 - k; out = nk - round(c * nk / 255)."""
    c = cmyk.astype(np.int64)
    nk = 255 - c[..., 3:4]
    t = c[..., :3] * nk + 128
    return (nk - (((t >> 8) + t) >> 8)).astype(np.uint8)


def self_check(out, rgb, gray, rgb16, cmyk):
    """The fixtures are what their names say, and the expectations agree with the sources."""
    p = lambda name: os.path.join(out, name)
    with h5py.File(p("expected.h5"), "r") as f:
        for name in JPEGS + PNGS:
            assert f[name].shape == (H, W, 3) and f[name].dtype == np.uint8, name
        for name in ("rgb.png", "rgba.png", "interlaced.png"):
            assert np.array_equal(f[name][()], rgb), name  # alpha dropped, not composited
        for name in ("gray.png", "la.png"):
            assert np.array_equal(f[name][()], np.repeat(gray[:, :, None], 3, -1)), name
        assert np.array_equal(f["gray1.png"][()][:, :, 0], np.where(gray > 128, 255, 0))
        assert np.array_equal(f["palette.png"][()], f["palette_trns.png"][()])
        assert np.array_equal(f["rgb16.png"][()], (rgb16 >> 8).astype(np.uint8))
        assert list(f["gray16.png"][()][0, :4, 0]) == [0, 0, 1, 255]
        # Lossy, but close to the source: the JPEGs really hold these pictures.
        for name in ("baseline.jpg", "sub444.jpg", "sub422.jpg", "progressive.jpg"):
            assert np.abs(f[name][()].astype(int) - rgb).mean() < 12, name
        assert np.abs(f["cmyk.jpg"][()].astype(int) - pil_cmyk_to_rgb(cmyk)).mean() < 4
        assert np.abs(f["ycck.jpg"][()].astype(int) - pil_cmyk_to_rgb(cmyk)).mean() < 6
        assert f["draft2/baseline.jpg"].shape == (12, 19, 3)
        assert f["draft4/baseline.jpg"].shape == (6, 10, 3)
        assert f["draft8/baseline.jpg"].shape == (3, 5, 3)
    kinds = {"baseline.jpg": ("RGB", "JPEG"), "progressive.jpg": ("RGB", "JPEG"), "gray.jpg": ("L", "JPEG"),
             "cmyk.jpg": ("CMYK", "JPEG"), "ycck.jpg": ("CMYK", "JPEG"), "rgba.png": ("RGBA", "PNG"),
             "la.png": ("LA", "PNG"), "palette.png": ("P", "PNG"), "gray16.png": ("I", "PNG"),
             "rgb16.png": ("RGB", "PNG"), "gray1.png": ("1", "PNG")}
    for name, (mode, fmt) in kinds.items():
        with Image.open(p(name)) as img:
            assert (img.mode, img.format) == (mode, fmt), (name, img.mode, img.format)
    with Image.open(p("progressive.jpg")) as img:
        assert img.info.get("progressive")
    with Image.open(p("interlaced.png")) as img:
        assert img.info.get("interlace")
    with Image.open(p("palette_trns.png")) as img:
        assert img.info.get("transparency") == 3
    # Adobe APP14 transform byte: 0 (CMYK) for PIL's file, 2 (YCCK) for libturbojpeg's.
    for name, transform in (("cmyk.jpg", 0), ("ycck.jpg", 2)):
        data = open(p(name), "rb").read()
        app14 = data.index(b"\xff\xee")  # marker, length(2), "Adobe", version(2), flags(4), transform
        assert data[app14 + 4:app14 + 9] == b"Adobe" and data[app14 + 15] == transform, name
    # PIL never checks IDAT CRCs (it decodes bad_crc.png happily); libpng treats a CRC error in a
    # critical chunk as an error. So check the CRC by hand: IHDR's is right, IDAT's is wrong.
    data = open(p("bad_crc.png"), "rb").read()
    pos, crc_ok = 8, {}
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        crc_ok[kind] = zlib.crc32(data[pos + 4:pos + 8 + n]) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        pos += 12 + n
    assert crc_ok == {b"IHDR": True, b"IDAT": False, b"IEND": True}, crc_ok
    # The reference refuses the other broken files.
    for name in ("truncated.jpg", "truncated.png", "not_an_image.jpg", "empty.jpg"):
        try:
            Image.open(p(name)).load()
        except Exception:  # noqa: BLE001: any refusal will do
            continue
        raise AssertionError(name + " decoded in PIL")


if __name__ == "__main__":
    main()
