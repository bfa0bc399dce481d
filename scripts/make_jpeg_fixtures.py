#!/usr/bin/env python3
"""Writes tests/data/images/jpeg/*: JPEGs as cameras and Pillow write them (4:2:0, 4:4:4,
progressive, grayscale; a noisy gradient with hard edges, where decoders differ most), and what
torchvision.io.decode_jpeg makes of each, RGB and GRAY (libjpeg's luma), as .npy [H, W, C] uint8:
tessera's read_image must give the same pixels (tests/test_image.cpp). Pillow's decode of each is
checked to be the same. Run from the repository root with Debian's python3-torchvision:

    /usr/bin/python3 scripts/make_jpeg_fixtures.py
"""
import os

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg, read_file

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "images", "jpeg")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
H, W = 45, 67  # not multiples of the 16-pixel MCU: partial blocks at the borders
y, x = np.mgrid[0:H, 0:W]
picture = np.stack([(x * 3.5 + 40 * np.sin(y / 5.0)) % 256,
                    (y * 5 + rng.normal(0, 25, (H, W))) % 256,
                    ((x // 8 + y // 8) % 2) * 200 + 20], -1).clip(0, 255).astype(np.uint8)
files = {
    "photo420.jpg": dict(quality=85),
    "photo444.jpg": dict(quality=85, subsampling=0),
    "photo_progressive.jpg": dict(quality=85, progressive=True),
}
for name, options in files.items():
    Image.fromarray(picture).save(os.path.join(out, name), **options)
Image.fromarray(picture[:, :, 1]).save(os.path.join(out, "gray.jpg"), quality=85)
for name in [*files, "gray.jpg"]:
    path = os.path.join(out, name)
    data = read_file(path)
    for mode, suffix in ((ImageReadMode.RGB, "rgb"), (ImageReadMode.GRAY, "gray")):
        pixels = decode_jpeg(data, mode=mode).permute(1, 2, 0).contiguous().numpy()
        with Image.open(path) as im:
            if mode == ImageReadMode.GRAY:
                im.draft("L", im.size)  # libjpeg's own gray output, as torchvision's GRAY
            pil = np.asarray(im.convert("RGB") if mode == ImageReadMode.RGB else im.convert("L")).reshape(pixels.shape)
        assert np.array_equal(pil, pixels), (name, suffix, np.abs(pil.astype(int) - pixels).max())
        np.save(os.path.join(out, f"{os.path.splitext(name)[0]}_{suffix}.npy"), pixels)
# CMYK (Photoshop's Adobe-inverted kind, as Pillow writes it): torchvision 0.14 cannot decode it;
# its newer decode_jpeg converts to RGB and gray with Pillow's arithmetic, so Pillow is the reference.
cmyk = rng.integers(0, 256, (21, 30, 4), dtype=np.uint8)
Image.fromarray(cmyk, "CMYK").save(os.path.join(out, "cmyk.jpg"), quality=90)
with Image.open(os.path.join(out, "cmyk.jpg")) as im:
    assert im.mode == "CMYK" and im.info.get("adobe") is not None
    np.save(os.path.join(out, "cmyk_rgb.npy"), np.asarray(im.convert("RGB")))
    np.save(os.path.join(out, "cmyk_gray.npy"), np.asarray(im.convert("L"))[:, :, None])
with open(os.path.join(out, "VERSION"), "w") as f:
    f.write(f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}\n")
print("wrote", sorted(os.listdir(out)))
