#!/usr/bin/env python3
"""Writes tests/data/tiff/ for tests/test_tiff.cpp with tifffile (PyPI: pip install tifffile
imagecodecs numpy; imagecodecs gives tifffile its LZW and PackBits encoders).

For every good file <name>.tif, <name>.npy holds what tifffile.imread reads back, as float64
[pages, height, width, samples] (the raw stored values: tessera's readers must give exactly these,
scaled by the type's range). bad_*.tif are malformed files that must be refused with an Error.
"""
import os
import struct
import sys

import numpy as np
import tifffile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tiff")


def good(name, data, **kw):
    path = os.path.join(OUT, name + ".tif")
    tifffile.imwrite(path, data, **kw)
    back = tifffile.imread(path)
    assert np.array_equal(back, data), name
    with tifffile.TiffFile(path) as tf:
        planes = []
        for page in tf.pages:
            a = page.asarray()
            if page.samplesperpixel == 1:
                a = a[..., None]
            elif page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
                a = np.moveaxis(a, 0, -1)
            planes.append(a)
    arr = np.stack(planes).astype(np.float64)
    assert np.array_equal(arr.reshape(-1), np.asarray(back, dtype=np.float64).reshape(-1)) or arr.shape[-1] > 1, name
    pages, h, w, samples = arr.shape
    np.save(os.path.join(OUT, name + ".npy"), arr)
    print(f"{name}.tif: {pages} x {h} x {w} x {samples} {back.dtype} {kw}")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261207)
    u8 = lambda *s: rng.integers(0, 256, size=s, dtype=np.uint8)
    u16 = lambda *s: rng.integers(0, 65536, size=s, dtype=np.uint16)
    good("gray8", u8(13, 21))
    good("gray8_packbits", np.repeat(u8(13, 3), 7, axis=1), compression="packbits")
    good("gray16_lzw", u16(17, 19), compression="lzw")
    good("gray16_lzw_predictor", np.cumsum(u16(17, 19) % 7, axis=1).astype(np.uint16), compression="lzw", predictor=True)
    good("gray16_deflate_tiled", u16(37, 45), compression="zlib", tile=(16, 16))
    good("gray16_bigendian", u16(9, 11), byteorder=">")
    good("gray32", rng.integers(0, 2**32, size=(7, 10), dtype=np.uint32))
    f = rng.normal(0.5, 0.7, size=(11, 14)).astype(np.float32)
    good("float32_deflate", f, compression="zlib")
    good("float32_tiled", rng.random((40, 33), dtype=np.float32), tile=(16, 32))
    good("float64", rng.normal(size=(5, 6)))
    good("rgb8_lzw", u8(12, 15, 3), compression="lzw", photometric="rgb")
    good("rgb16_planar", u16(3, 10, 13), photometric="rgb", planarconfig="separate")
    good("rgba8_tiled", u8(33, 20, 4), photometric="rgb", extrasamples=["unassalpha"], tile=(16, 16))
    # ISBI-like stack: 5 slices; a label stack of 0 (membrane) and 255 (cells).
    good("stack8_deflate", u8(5, 24, 20), compression="zlib", photometric="minisblack")
    good("stack_labels", (rng.random((3, 24, 20)) > 0.2).astype(np.uint8) * 255, photometric="minisblack")
    # CTC-like instance mask: 16-bit ids, some above 255 and one at 65535.
    ids = rng.integers(0, 40, size=(30, 26)).astype(np.uint16) * 1000
    ids[0, 0] = 65535
    good("labels16_lzw", ids, compression="lzw")
    # Pages of different sizes cannot form a stack.
    path = os.path.join(OUT, "bad_mixed_pages.tif")
    with tifffile.TiffWriter(path) as tw:
        tw.write(u8(8, 8))
        tw.write(u8(9, 8))

    # Malformed files, from a good one.
    base = open(os.path.join(OUT, "gray16_lzw.tif"), "rb").read()
    open(os.path.join(OUT, "bad_truncated.tif"), "wb").write(base[: len(base) // 2])
    open(os.path.join(OUT, "bad_header.tif"), "wb").write(b"II*\x00" + struct.pack("<I", 10**9) + b"\x00" * 32)
    # Claims 60000 x 60000 16-bit pixels in a few bytes of uncompressed data.
    tifffile.imwrite(os.path.join(OUT, "_tmp.tif"), u16(4, 4))
    raw = bytearray(open(os.path.join(OUT, "_tmp.tif"), "rb").read())
    os.remove(os.path.join(OUT, "_tmp.tif"))
    with tifffile.TiffFile(io_bytes(raw)) as tf:
        width_at = tf.pages[0].tags["ImageWidth"].valueoffset
        length_at = tf.pages[0].tags["ImageLength"].valueoffset
        fmt = "<H" if tf.pages[0].tags["ImageWidth"].dtype == 3 else "<I"
    struct.pack_into(fmt, raw, width_at, 60000)
    struct.pack_into(fmt, raw, length_at, 60000)
    open(os.path.join(OUT, "bad_huge.tif"), "wb").write(bytes(raw))
    tifffile.imwrite(os.path.join(OUT, "bad_signed16.tif"), rng.integers(-5, 5, size=(4, 4), dtype=np.int16))
    tifffile.imwrite(os.path.join(OUT, "bad_jpeg.tif"), u8(16, 16, 3), compression="jpeg", photometric="rgb")
    print("wrote", OUT)


def io_bytes(b):
    import io
    return io.BytesIO(bytes(b))


if __name__ == "__main__":
    sys.exit(main())
