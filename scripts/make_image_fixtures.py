#!/usr/bin/env python3
"""Writes tests/data/images/* with Pillow, for tests/test_data.cpp. Pixel values follow formulas the
C++ test recomputes: value(y, x, c) = (7 * y + 13 * x + 50 * c) % 256 for 8-bit images,
(7 * y + 13 * x) * 257 % 65536 for the 16-bit one. Run from the repository root:

    pip install numpy pillow && python3 scripts/make_image_fixtures.py
"""
import os

import numpy as np
import PIL
from PIL import Image

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "images")
os.makedirs(out, exist_ok=True)
H, W = 6, 9
y, x = np.mgrid[0:H, 0:W]


def plane(c):
    return ((7 * y + 13 * x + 50 * c) % 256).astype(np.uint8)


rgb = np.stack([plane(0), plane(1), plane(2)], -1)
Image.fromarray(rgb, "RGB").save(os.path.join(out, "rgb8.png"))
Image.fromarray(plane(0), "L").save(os.path.join(out, "gray8.png"))
Image.fromarray(np.stack([plane(0), plane(1)], -1), "LA").save(os.path.join(out, "gray_alpha8.png"))
Image.fromarray(np.stack([plane(0), plane(1), plane(2), plane(3)], -1), "RGBA").save(os.path.join(out, "rgba8.png"))
Image.fromarray(((7 * y + 13 * x) * 257 % 65536).astype(np.uint16)).save(os.path.join(out, "gray16.png"))
Image.fromarray(rgb, "RGB").save(os.path.join(out, "rgb.bmp"))
smooth = np.stack([(y * 20 + x * 10).astype(np.uint8)] * 3, -1)  # smooth: JPEG keeps it within a few levels
Image.fromarray(smooth, "RGB").save(os.path.join(out, "smooth.jpg"), quality=100, subsampling=0)
Image.fromarray(rgb, "RGB").save(os.path.join(out, "rgb.gif"))  # unsupported format
labels = (x // 3 + 3 * (y // 2)).astype(np.uint8)  # 9 regions, values 0..8
Image.fromarray(labels, "L").save(os.path.join(out, "labels8.png"))
with open(os.path.join(out, "VERSION"), "w") as f:
    f.write(f"numpy {np.__version__}, Pillow {PIL.__version__}\n")
print("wrote", sorted(os.listdir(out)))
