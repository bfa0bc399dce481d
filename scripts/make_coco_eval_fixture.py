#!/usr/bin/env python3
"""Writes tests/data/coco_eval/ with pycocotools' COCOeval, for tests/test_coco_eval.cpp:
  gt.json             ground truth: 7 images, 3 categories, polygons of all sizes (small, medium,
                      large), crowd regions (uncompressed RLE), an image without objects
  results.json        detections in COCO results format with bbox and segm (compressed RLE): jittered
                      true objects, duplicates, wrong categories, false positives, tied scores, an
                      image with objects but no detections
  expected.json       COCOeval's 12 summary numbers for bbox and for segm, and the pycocotools version
  results_polygons.json, expected_polygons.json
                      results whose segmentation is a list of polygons (one or two parts) with a bbox
                      taken from the polygon's extent (so the areas pycocotools uses, bbox w * h, differ
                      from the masks'), some with uncompressed RLE, some with a bbox only (pycocotools
                      then uses the box as the polygon); COCOeval's numbers on them
Run from the repository root:  pip install numpy pycocotools && python3 scripts/make_coco_eval_fixture.py
(--polygons-only: only the polygon files, from the gt.json already there)
"""
import contextlib
import io
import json
import math
import os
from importlib.metadata import version

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "coco_eval")
rng = np.random.default_rng(11)


def ellipse(cx, cy, rx, ry, n=16):
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        pts += [round(cx + rx * math.cos(a), 2), round(cy + ry * math.sin(a), 2)]
    return pts


def poly_mask(poly, h, w):
    rles = mask_util.frPyObjects([poly], h, w)
    return mask_util.decode(mask_util.merge(rles))


def main():
    os.makedirs(OUT, exist_ok=True)
    images, annotations, results = [], [], []
    sizes = [(160, 200), (120, 150), (200, 180), (96, 128), (150, 150), (110, 170), (140, 140)]
    ann_id = 1
    for image_id, (h, w) in enumerate(sizes, start=1):
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.png"})
        n = 0 if image_id == 4 else int(rng.integers(3, 7))
        for k in range(n):
            cat = int(rng.integers(1, 4))
            r = float(rng.choice([4, 8, 14, 22, 40, 60]))  # small to large
            rx, ry = r * float(rng.uniform(0.7, 1.3)), r * float(rng.uniform(0.7, 1.3))
            cx, cy = float(rng.uniform(rx, w - rx)) if w > 2 * rx else w / 2, float(rng.uniform(ry, h - ry)) if h > 2 * ry else h / 2
            poly = ellipse(cx, cy, rx, ry)
            m = poly_mask(poly, h, w)
            crowd = k == 0 and image_id in (2, 6)
            if crowd:
                rle = mask_util.encode(np.asfortranarray(m))
                counts = []
                # uncompressed RLE for crowd regions, as COCO stores them
                flat = m.flatten(order="F")
                cur, run = 0, 0
                for v in flat:
                    if v == cur:
                        run += 1
                    else:
                        counts.append(run)
                        cur, run = v, 1
                counts.append(run)
                seg = {"size": [h, w], "counts": counts}
                area = float(mask_util.area(rle))
                bbox = [float(v) for v in mask_util.toBbox(rle)]
            else:
                seg = [poly]
                rle = mask_util.merge(mask_util.frPyObjects([poly], h, w))
                area = float(mask_util.area(rle))
                bbox = [float(v) for v in mask_util.toBbox(rle)]
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": cat, "segmentation": seg, "area": area,
                                "bbox": bbox, "iscrowd": int(crowd)})
            ann_id += 1
            if image_id == 5:
                continue  # objects without detections
            # Detections of this object: usually one jittered copy, sometimes a duplicate or the
            # wrong category.
            copies = 1 + int(rng.random() < 0.3)
            for c in range(copies):
                if rng.random() < 0.15:
                    continue
                j = max(0.5, r * 0.08)
                dpoly = ellipse(cx + rng.normal(0, j), cy + rng.normal(0, j), rx * rng.uniform(0.9, 1.1), ry * rng.uniform(0.9, 1.1))
                dm = poly_mask(dpoly, h, w)
                if dm.sum() == 0:
                    continue
                drle = mask_util.encode(np.asfortranarray(dm))
                dcat = cat if rng.random() > 0.1 else int(rng.integers(1, 4))
                score = round(float(rng.uniform(0.05, 1.0)), 3)  # 3 decimals: some scores tie
                results.append({"image_id": image_id, "category_id": dcat, "score": score,
                                "bbox": [round(float(v), 2) for v in mask_util.toBbox(drle)],
                                "segmentation": {"size": [h, w], "counts": drle["counts"].decode()}})
        # False positives.
        for _ in range(int(rng.integers(0, 4))):
            r = float(rng.choice([5, 12, 30]))
            dpoly = ellipse(float(rng.uniform(r, w - r)), float(rng.uniform(r, h - r)), r, r * 0.8)
            dm = poly_mask(dpoly, h, w)
            drle = mask_util.encode(np.asfortranarray(dm))
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 4)),
                            "score": round(float(rng.uniform(0.05, 0.9)), 3),
                            "bbox": [round(float(v), 2) for v in mask_util.toBbox(drle)],
                            "segmentation": {"size": [h, w], "counts": drle["counts"].decode()}})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "disc"}, {"id": 2, "name": "square"}, {"id": 3, "name": "blob"}]}
    with open(os.path.join(OUT, "gt.json"), "w") as f:
        json.dump(gt, f)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f)

    expected = {"pycocotools": version("pycocotools"), "numpy": np.__version__}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(OUT, "gt.json"))
        for iou_type in ("bbox", "segm"):
            dets = coco.loadRes(os.path.join(OUT, "results.json"))
            ev = COCOeval(coco, dets, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            expected[iou_type] = [float(v) for v in ev.stats]
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {OUT}: {len(annotations)} annotations, {len(results)} detections;", json.dumps(expected))


def polygon_results():
    prng = np.random.default_rng(23)
    with open(os.path.join(OUT, "gt.json")) as f:
        gt = json.load(f)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    results = []
    for a in gt["annotations"]:
        if a["iscrowd"] or prng.random() < 0.15:
            continue
        h, w = sizes[a["image_id"]]
        poly = np.array(a["segmentation"][0], dtype=float).reshape(-1, 2)
        shift = prng.normal(0, max(0.5, 0.05 * a["bbox"][2]), size=2)
        scale = prng.uniform(0.9, 1.1)
        c = poly.mean(axis=0)
        dpoly = (c + (poly - c) * scale + shift).round(2)
        parts = [dpoly.flatten().tolist()]
        if prng.random() < 0.25:  # a second, small part
            q = c + prng.uniform(-20, 20, size=2)
            parts.append([q[0], q[1], q[0] + 4, q[1], q[0] + 2, q[1] + 3])
        xs = np.concatenate([np.array(p[0::2]) for p in parts])
        ys = np.concatenate([np.array(p[1::2]) for p in parts])
        bbox = [round(float(xs.min()), 2), round(float(ys.min()), 2), round(float(xs.max() - xs.min()), 2),
                round(float(ys.max() - ys.min()), 2)]
        cat = a["category_id"] if prng.random() > 0.1 else int(prng.integers(1, 4))
        r = {"image_id": a["image_id"], "category_id": cat, "score": round(float(prng.uniform(0.05, 1.0)), 3), "bbox": bbox}
        kind = prng.random()
        if kind < 0.7:
            r["segmentation"] = parts
        elif kind < 0.85:  # uncompressed RLE
            m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(parts, h, w)))
            flat = m.flatten(order="F")
            counts, cur, run = [], 0, 0
            for v in flat:
                if v == cur:
                    run += 1
                else:
                    counts.append(run)
                    cur, run = v, 1
            counts.append(run)
            r["segmentation"] = {"size": [h, w], "counts": counts}
        # else: a bbox only
        results.append(r)
    for image_id, (h, w) in sizes.items():  # false positives, polygons
        for _ in range(int(prng.integers(0, 3))):
            x, y = float(prng.uniform(5, w - 30)), float(prng.uniform(5, h - 30))
            s = float(prng.choice([4, 12, 25]))
            results.append({"image_id": image_id, "category_id": int(prng.integers(1, 4)),
                            "score": round(float(prng.uniform(0.05, 0.9)), 3), "bbox": [x, y, s, s * 0.8],
                            "segmentation": [[x, y, x + s, y, x + s, y + s * 0.8, x, y + s * 0.8]]})
    with open(os.path.join(OUT, "results_polygons.json"), "w") as f:
        json.dump(results, f)
    expected = {"pycocotools": version("pycocotools"), "numpy": np.__version__}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(OUT, "gt.json"))
        for iou_type in ("bbox", "segm"):
            dets = coco.loadRes(os.path.join(OUT, "results_polygons.json"))
            ev = COCOeval(coco, dets, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            expected[iou_type] = [float(v) for v in ev.stats]
    with open(os.path.join(OUT, "expected_polygons.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {OUT}/results_polygons.json: {len(results)} detections;", json.dumps(expected))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--polygons-only"]:
        main()
    polygon_results()
