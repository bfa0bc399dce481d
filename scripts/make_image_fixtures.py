#!/usr/bin/env python3
"""Writes tests/data/images/* with Pillow, for tests/test_data.cpp. Pixel values follow formulas the
C++ test recomputes: value(y, x, c) = (7 * y + 13 * x + 50 * c) % 256 for 8-bit images,
(7 * y + 13 * x) * 257 % 65536 for the 16-bit one; label images hold x // 3 + 3 * (y // 2); the large
low-bit-depth masks a checkerboard of 512-pixel squares (a 1-bit 4096 x 4096 PNG is a few KB: more
pixels per file byte than any 8-bit image). Run from the repository root:

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
# Label images as datasets store them: a palette PNG whose indices are the labels (PASCAL VOC's
# SegmentationClass: colours for people, 255 = "void" at object borders), and a 1-bit mask.
voc = labels.copy()
voc[0, 0] = 255
pal = Image.fromarray(voc, "P")
colours = [0] * 768
for i in range(9):
    colours[3 * i : 3 * i + 3] = [(37 * i) % 256, (91 * i) % 256, (151 * i) % 256]
colours[765:768] = [224, 224, 192]
pal.putpalette(colours)
pal.save(os.path.join(out, "labels_palette.png"))
big_y, big_x = np.mgrid[0:4096, 0:4096]
checker = ((big_x // 512 + big_y // 512) % 2).astype(np.uint8)
Image.fromarray(checker.astype(bool)).save(os.path.join(out, "mask1bit_4096.png"))  # mode "1": a 1-bit gray PNG
small = ((big_x[:48, :64] // 8 + big_y[:48, :64] // 8) % 2).astype(bool)  # 8-pixel squares: a seed for fuzz_image
Image.fromarray(small).save(os.path.join(out, "mask1bit_small.png"))
pal2 = Image.fromarray(checker, "P")
pal2.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
pal2.save(os.path.join(out, "palette1bit_4096.png"), bits=1)
with open(os.path.join(out, "VERSION"), "w") as f:
    f.write(f"numpy {np.__version__}, Pillow {PIL.__version__}\n")
print("wrote", sorted(os.listdir(out)))
