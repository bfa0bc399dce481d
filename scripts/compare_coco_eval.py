#!/usr/bin/env python3
"""COCO evaluation at the size of COCO val2017, three ways in one run: tessera's `evaluate` driver,
pycocotools' COCOeval, and faster-coco-eval (when it is installed), on the same files: the 12
numbers of bbox and of segm must agree to 1e-9; wall times (loading the files included) and ratios.

The data is generated to COCO's statistics (seeded): --images images of COCO's usual sizes, 7.3
objects an image (Poisson), 80 categories, 41% small / 34% medium / 25% large objects as polygons,
1% crowd regions as RLE; 100 detections an image with compressed-RLE masks and boxes: jittered
copies of the objects (mostly the right category) and false positives, scores spread over [0, 1].

    pip install numpy pycocotools faster-coco-eval
    python3 scripts/compare_coco_eval.py --images 5000 --evaluate build/drivers/evaluate [--markdown docs/performance.md]

--markdown FILE writes (or replaces) the page's section "## COCO evaluation beside pycocotools"
with this run's numbers; scripts/compare_torch.py --markdown keeps that section when it rewrites
the rest of the page.
"""
import argparse
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

SIZES = [(480, 640), (640, 480), (427, 640), (640, 427), (375, 500), (500, 375)]
NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def ellipse(x, y, w, h, rng, n=12):
    t = np.sort(rng.uniform(0, 2 * math.pi, n))
    r = rng.uniform(0.8, 1.0, n)
    px = x + w / 2 + r * np.cos(t) * w / 2
    py = y + h / 2 + r * np.sin(t) * h / 2
    return [float(v) for pair in zip(px, py) for v in pair]


def random_box(rng, H, W):
    u = rng.uniform()
    side = rng.uniform(6, 32) if u < 0.41 else rng.uniform(32, 96) if u < 0.75 else rng.uniform(96, 0.9 * min(H, W))
    aspect = math.exp(rng.normal(0, 0.4))
    w, h = min(side * aspect, W - 1.0), min(side / aspect, H - 1.0)
    return rng.uniform(0, W - w), rng.uniform(0, H - h), w, h


def rle_of(poly, H, W):
    rle = mask_util.merge(mask_util.frPyObjects([poly], H, W))
    return rle


def generate(n_images, folder, seed=0):
    rng = np.random.default_rng(seed)
    cats = sorted(rng.choice(np.arange(1, 91), 80, replace=False).tolist())
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        H, W = SIZES[rng.integers(len(SIZES))]
        images.append({"id": i, "height": H, "width": W, "file_name": f"{i:012d}.jpg"})
        objects = []
        for _ in range(rng.poisson(7.3)):
            x, y, w, h = random_box(rng, H, W)
            cat = cats[rng.integers(80)]
            crowd = rng.uniform() < 0.01
            if crowd:
                rle = rle_of([x, y, x + w, y, x + w, y + h, x, y + h], H, W)
                seg = {"size": [H, W], "counts": rle["counts"].decode()}
            else:
                poly = ellipse(x, y, w, h, rng)
                rle = rle_of(poly, H, W)
                seg = [poly]
            area = float(mask_util.area(rle))
            if area < 1:
                continue
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "iscrowd": int(crowd), "area": area,
                         "bbox": [x, y, w, h], "segmentation": seg})
            objects.append((x, y, w, h, cat))
        dets = []
        for (x, y, w, h, cat) in objects:
            for _ in range(rng.integers(1, 3)):
                j = rng.normal(0, 0.08, 4)
                dx, dy, dw, dh = x + j[0] * w, y + j[1] * h, w * math.exp(j[2]), h * math.exp(j[3])
                c = cat if rng.uniform() < 0.9 else cats[rng.integers(80)]
                dets.append((dx, dy, dw, dh, c, float(rng.uniform(0.3, 1.0))))
        while len(dets) < 100:
            x, y, w, h = random_box(rng, H, W)
            dets.append((x, y, w, h, cats[rng.integers(80)], float(rng.uniform(0.0, 0.7))))
        for (x, y, w, h, c, score) in dets[:100]:
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(W), x + w), min(float(H), y + h)
            if x1 - x0 < 1 or y1 - y0 < 1:
                x0, y0, x1, y1 = 0.0, 0.0, 2.0, 2.0
            rle = rle_of(ellipse(x0, y0, x1 - x0, y1 - y0, rng), H, W)
            results.append({"image_id": i, "category_id": c, "score": round(score, 6), "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "segmentation": {"size": [H, W], "counts": rle["counts"].decode()}})
    gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in cats]}
    gt_path, res_path = os.path.join(folder, "gt.json"), os.path.join(folder, "results.json")
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    with open(res_path, "w") as f:
        json.dump(results, f)
    return gt_path, res_path, len(anns), len(results)


def run_cocoeval(coco_cls, eval_cls, gt_path, res_path):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls(gt_path)
        dt = gt.loadRes(res_path)
        stats = {}
        for iou in ("bbox", "segm"):
            e = eval_cls(gt, dt, iou)
            e.evaluate()
            e.accumulate()
            e.summarize()
            stats[iou] = [float(v) for v in e.stats]
    return time.perf_counter() - t0, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--evaluate", default="build/drivers/evaluate")
    ap.add_argument("--keep", help="write the files here instead of a temporary folder")
    ap.add_argument("--markdown", help="write this run as the COCO section of a markdown page (docs/performance.md)")
    args = ap.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="coco_eval_")
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    gt_path, res_path, n_anns, n_res = generate(args.images, folder)
    print(f"data: {args.images} images, {n_anns} objects, {n_res} detections with masks "
          f"({os.path.getsize(res_path) / 2**20:.0f} MiB of results; generated in {time.perf_counter() - t0:.0f} s)")

    timings, all_stats = {}, {}
    t0 = time.perf_counter()
    out = os.path.join(folder, "tessera_ap.json")
    proc = subprocess.run([args.evaluate, "--gt", gt_path, "--results", res_path, "--out", out], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"evaluate failed:\n{proc.stdout}\n{proc.stderr}")
    timings["tessera"] = time.perf_counter() - t0
    ap_json = json.load(open(out))
    all_stats["tessera"] = {iou: [ap_json[f"{iou}_{n}"] for n in NAMES] for iou in ("bbox", "segm")}
    timings["pycocotools"], all_stats["pycocotools"] = run_cocoeval(COCO, COCOeval, gt_path, res_path)
    try:
        from faster_coco_eval import COCO as FCOCO, COCOeval_faster
        timings["faster-coco-eval"], all_stats["faster-coco-eval"] = run_cocoeval(FCOCO, COCOeval_faster, gt_path, res_path)
    except ImportError:
        print("faster-coco-eval is not installed (pip install faster-coco-eval): left out")

    ref = all_stats["pycocotools"]
    ok = True
    for name, stats in all_stats.items():
        worst = max(abs(a - b) for iou in ("bbox", "segm") for a, b in zip(stats[iou], ref[iou]))
        agree = worst <= 1e-9
        ok = ok and (agree or name != "tessera")
        print(f"{name:>17}: {timings[name]:7.1f} s  ({timings['pycocotools'] / timings[name]:5.2f}x pycocotools)  "
              f"largest difference from pycocotools {worst:.1e} {'ok' if agree else 'DIFFERENT'}")
    print("pycocotools segm:", " ".join(f"{n} {v:.4f}" for n, v in zip(NAMES, ref["segm"])))
    print("pycocotools bbox:", " ".join(f"{n} {v:.4f}" for n, v in zip(NAMES, ref["bbox"])))
    if args.markdown:
        write_section(args, all_stats, timings, n_anns, n_res)
        print(f"wrote the COCO section of {args.markdown}")
    sys.exit(0 if ok else 1)


SECTION = "## COCO evaluation beside pycocotools"


def write_section(args, all_stats, timings, n_anns, n_res):
    import datetime
    import platform
    from importlib import metadata
    try:
        cocotools = metadata.version("pycocotools")
    except metadata.PackageNotFoundError:
        cocotools = "?"
    ref = all_stats["pycocotools"]
    model = "unknown CPU"
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [SECTION, "",
             f"`scripts/compare_coco_eval.py --images {args.images} --markdown {args.markdown}` on {datetime.date.today().isoformat()} "
             f"({model}, {os.cpu_count()} logical CPUs; pycocotools {cocotools}, Python "
             f"{platform.python_version()}): generated data at COCO val2017's statistics, {n_anns} objects and {n_res} "
             "detections with masks; wall times include loading the files; the 12 numbers of bbox and of segm compared.",
             "", "| evaluator | seconds | speed-up over pycocotools | largest difference from pycocotools |", "|---|---:|---:|---:|"]
    for name, stats in all_stats.items():
        worst = max(abs(a - b) for iou in ("bbox", "segm") for a, b in zip(stats[iou], ref[iou]))
        lines.append(f"| {name} | {timings[name]:.1f} | {timings['pycocotools'] / timings[name]:.2f} | {worst:.1e} |")
    lines.append("")
    old = open(args.markdown).read() if os.path.exists(args.markdown) else "# Performance\n"
    head, found, rest = old.partition(SECTION)
    tail = ""
    if found:
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
    text = head.rstrip("\n") + "\n\n" + "\n".join(lines) + ("\n" + tail if tail else "")
    tmp = args.markdown + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.markdown)


if __name__ == "__main__":
    main()
