#!/usr/bin/env python3
"""Writes tests/data/coco/ with pycocotools (PyPI), for tests/test_data.cpp:
  polygons.json    polygons and the RLE (counts and compressed string) pycocotools makes of them
  masks.npz-like   masks as .npy, and their compressed strings (rle_strings.json)
  instances.json   a small COCO instance file over two images (polygons, compressed and
                   uncompressed RLE, iscrowd) whose images are written beside it
Run from the repository root:  pip install numpy pillow pycocotools && python3 scripts/make_coco_fixtures.py
"""
import json
import os

import numpy as np
import pycocotools
from importlib.metadata import version
PYCOCOTOOLS_VERSION = version("pycocotools")
import pycocotools.mask as mask_util
from PIL import Image

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "coco")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
H, W = 23, 31

polygons = [
    [2.0, 3.0, 20.0, 4.5, 11.3, 18.7],                               # triangle
    [0.0, 0.0, 30.0, 0.0, 30.0, 22.0, 0.0, 22.0],                    # the whole image
    [5.5, 5.5, 25.2, 6.1, 24.8, 17.3, 15.0, 9.0, 6.2, 16.9],         # concave
    [-5.0, -3.0, 8.0, 2.0, 3.0, 40.0],                               # partly outside
    [10.2, 10.2, 10.8, 10.3, 10.5, 10.9],                            # tiny
    [28.9, 1.1, 35.0, 12.0, 29.5, 21.7, 26.1, 12.2],                 # crossing the right edge
]
for _ in range(10):
    n = int(rng.integers(3, 9))
    polygons.append([float(v) for v in (rng.random(2 * n) * np.array([W + 6, H + 6] * n) - 3).round(2)])
poly_records = []
for p in polygons:
    rles = mask_util.frPyObjects([p], H, W)
    rle = rles[0]
    m = mask_util.decode(rle)
    poly_records.append({"polygon": p, "counts": rle["counts"].decode(), "area": int(mask_util.area(rle)),
                         "mask_sum": int(m.sum())})
with open(os.path.join(out, "polygons.json"), "w") as f:
    json.dump({"h": H, "w": W, "pycocotools": PYCOCOTOOLS_VERSION, "records": poly_records}, f, indent=1)

# Random masks: compressed strings both ways.
strings = []
for i in range(6):
    m = (rng.random((H, W)) < [0.02, 0.3, 0.5, 0.7, 0.98, 0.5][i]).astype(np.uint8)
    if i == 5:
        m[:] = 0
    np.save(os.path.join(out, f"mask{i}.npy"), m)
    strings.append(mask_util.encode(np.asfortranarray(m))["counts"].decode())
with open(os.path.join(out, "rle_strings.json"), "w") as f:
    json.dump({"h": H, "w": W, "strings": strings}, f, indent=1)

# A small instance file.
for name, (h, w) in {"a.png": (40, 50), "b.png": (30, 20)}.items():
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(os.path.join(out, name))
crowd = np.zeros((40, 50), np.uint8)
crowd[5:15, 30:45] = 1
crowd_rle = mask_util.encode(np.asfortranarray(crowd))
uncompressed = {"size": [40, 50], "counts": []}
flat = crowd.flatten(order="F")
run, value = 0, 0
for v in flat:
    if v != value:
        uncompressed["counts"].append(run)
        run, value = 0, v
    run += 1
uncompressed["counts"].append(run)
instances = {
    "images": [{"id": 7, "file_name": "a.png", "height": 40, "width": 50},
               {"id": 9, "file_name": "b.png", "height": 30, "width": 20}],
    "categories": [{"id": 3, "name": "square"}, {"id": 11, "name": "circle"}, {"id": 18, "name": "triangle"}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 11, "iscrowd": 0, "bbox": [2.0, 3.0, 18.0, 15.7],
         "segmentation": [[2.0, 3.0, 20.0, 4.5, 11.3, 18.7]], "area": 150.0},
        {"id": 2, "image_id": 7, "category_id": 18, "iscrowd": 1, "bbox": [30.0, 5.0, 15.0, 10.0],
         "segmentation": uncompressed, "area": 150.0},
        {"id": 3, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [30.0, 5.0, 15.0, 10.0],
         "segmentation": {"size": [40, 50], "counts": crowd_rle["counts"].decode()}, "area": 150.0},
        {"id": 4, "image_id": 9, "category_id": 3, "iscrowd": 0, "bbox": [1.0, 1.0, 10.0, 12.0],
         "segmentation": [[1.0, 1.0, 11.0, 1.0, 11.0, 13.0, 1.0, 13.0], [14.0, 20.0, 18.0, 20.0, 16.0, 27.0]],
         "area": 120.0},
        {"id": 5, "image_id": 9, "category_id": 11, "iscrowd": 0, "bbox": [5.0, 5.0, 0.0, 3.0],
         "segmentation": [[5.0, 5.0, 5.0, 8.0, 5.0, 6.0]], "area": 0.0},
    ],
}
with open(os.path.join(out, "instances.json"), "w") as f:
    json.dump(instances, f, indent=1)
with open(os.path.join(out, "VERSION"), "w") as f:
    f.write(f"pycocotools {PYCOCOTOOLS_VERSION}, numpy {np.__version__}\n")
print("wrote", sorted(os.listdir(out)))
