#!/usr/bin/env python3
"""Exports torchvision's maskrcnn_resnet50_fpn for tessera's parity test (tests/test_mask_rcnn.cpp).

    python3 scripts/export_torchvision_maskrcnn.py --out DIR

Writes DIR/weights.safetensors (the model's state_dict under torchvision's own key names) and
DIR/outputs.safetensors (two fixture images with their targets, the transformed batch, the FPN
features (also under torch.autocast("cpu", torch.bfloat16)), the RPN proposals, the detections
before and after post-processing; then, in training
mode with every anchor and proposal sampled so that nothing is random, the five losses and the
gradients of a few parameters), plus DIR/meta.json.

The model is maskrcnn_resnet50_fpn(weights=None, weights_backbone=None) from a fixed seed, with
min_size/max_size reduced so the run is small. Two changes make the comparison meaningful rather
than vacuous, and neither touches the architecture or the code path:
  * the batch-norm statistics are set from the fixture images (one training-mode pass with a
    cumulative average), so activations have a realistic scale through the 50 layers and some
    classes score above the 0.05 threshold;
  * the objectness layer is scaled up (x20, --rpn-scale), so that anchors are ranked by clearly
    separated scores (freshly initialised, their logits are near-tied everywhere, and the top-k and
    NMS choices would hinge on float rounding).

Without torchvision the script prints why and exits 0 without writing anything; the C++ test then
skips with that reason. Debian: apt-get install python3-torchvision (torch 1.13 / torchvision 0.14).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def save_safetensors(path, tensors, metadata=None):
    """A minimal safetensors writer (the format: u64 header length, JSON header, raw data)."""
    dtypes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64",
              np.dtype("int32"): "I32", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        data = a.tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def fixture_images(torch):
    """Two small pictures of coloured discs (label 1) and rectangles (label 2) on a textured
    background, with their targets (boxes from the masks' extents)."""
    g = torch.Generator().manual_seed(7)
    images, targets = [], []
    for (h, w, n) in [(120, 160, 5), (150, 100, 4)]:
        img = 0.35 + 0.1 * torch.rand(3, h, w, generator=g)
        yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        masks, labels = [], []
        for k in range(n):
            colour = torch.rand(3, 1, 1, generator=g)
            cy, cx = float(torch.randint(15, h - 15, (1,), generator=g)), float(torch.randint(15, w - 15, (1,), generator=g))
            r = float(torch.randint(8, 24, (1,), generator=g))
            if k % 2 == 0:
                inside = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r
            else:
                inside = ((yy - cy).abs() <= r * 0.7) & ((xx - cx).abs() <= r)
            img = torch.where(inside[None], colour.expand(3, h, w), img)
            masks.append(inside.to(torch.uint8))
            labels.append(1 if k % 2 == 0 else 2)
        masks = torch.stack(masks)
        boxes = []
        for m in masks:
            ys, xs = torch.nonzero(m, as_tuple=True)
            boxes.append([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
        images.append(img.clamp(0, 1))
        targets.append({"boxes": torch.tensor(boxes), "labels": torch.tensor(labels), "masks": masks})
    return images, targets


def script_stamp(args):
    """This script's hash, its arguments, and the torch / torchvision versions (read from the
    packages' metadata, without importing them)."""
    import hashlib
    from importlib import metadata
    with open(os.path.abspath(__file__), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    versions = []
    for pkg in ("torch", "torchvision"):
        try:
            versions.append(metadata.version(pkg))
        except metadata.PackageNotFoundError:
            versions.append("none")
    return f"{digest} {args.min_size} {args.max_size} {args.rpn_scale} {args.cls_scale} " + " ".join(versions)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--min-size", type=int, default=160)
    ap.add_argument("--max-size", type=int, default=256)
    ap.add_argument("--rpn-scale", type=float, default=20.0, help="multiplies the objectness weights")
    ap.add_argument("--cls-scale", type=float, default=1.0, help="multiplies the class-score weights")
    args = ap.parse_args()
    # The export is deterministic: a fixture this script already wrote with these arguments and the
    # same torch / torchvision (meta.json is written last, with the script's own hash) is kept
    # (the sanitizer build's tests read the release build's).
    stamp = script_stamp(args)
    meta_path = os.path.join(args.out, "meta.json")
    if os.path.exists(meta_path) and all(os.path.exists(os.path.join(args.out, f)) for f in ("weights.safetensors", "outputs.safetensors")):
        try:
            with open(meta_path) as f:
                if json.load(f).get("stamp") == stamp:
                    print(f"export_torchvision_maskrcnn: {args.out} is up to date ({stamp})")
                    return 0
        except (OSError, ValueError):
            pass
    try:
        import torch
        import torchvision
        from torchvision.models.detection import maskrcnn_resnet50_fpn
    except ImportError as e:
        print(f"export_torchvision_maskrcnn: skipped: torchvision is not importable ({e}); "
              "Debian: apt-get install python3-torchvision")
        return 0

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=args.min_size, max_size=args.max_size)
    images, targets = fixture_images(torch)

    # Batch-norm statistics from the fixture images (cumulative average over one pass).
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        batch, _ = model.transform(images)
        model.backbone(batch.tensors)
    model.eval()
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.mul_(args.rpn_scale)
        model.roi_heads.box_predictor.cls_score.weight.mul_(args.cls_scale)

    with torch.no_grad():
        original_sizes = [tuple(im.shape[-2:]) for im in images]
        batch, _ = model.transform(images)
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        raw, _ = model.roi_heads(features, proposals, batch.image_sizes)
        raw_copy = [{k: v.clone() for k, v in d.items()} for d in raw]
        final = model.transform.postprocess(raw, batch.image_sizes, original_sizes)
        check = model(images)  # the model's own forward gives the same
        for a, b in zip(final, check):
            for k in a:
                assert torch.equal(a[k], b[k]), k
    # The same inference under PyTorch's CPU autocast to bfloat16. torchvision 0.14 registers the
    # autocast of NMS (float32 boxes and scores) and RoIAlign (float32 in, the input's dtype out)
    # for CUDA only, and its CPU kernels of both have no bfloat16: for the export they get the
    # float32 casts its CUDA autocast gives them (tessera always runs them so).
    import torchvision.ops.boxes as tv_boxes
    import torchvision.ops.poolers as tv_poolers
    plain_nms, plain_roi_align = tv_boxes.nms, tv_poolers.roi_align
    tv_boxes.nms = lambda boxes, scores, iou: plain_nms(boxes.float(), scores.float(), iou)
    tv_poolers.roi_align = lambda x, rois, *a, **k: plain_roi_align(
        x.float(), rois.float() if isinstance(rois, torch.Tensor) else [r.float() for r in rois], *a, **k).to(x.dtype)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            amp_features = model.backbone(batch.tensors)
    finally:
        tv_boxes.nms, tv_poolers.roi_align = plain_nms, plain_roi_align

    # Training losses and gradients with every anchor and proposal sampled (so nothing is random),
    # batch norm frozen (tessera's detection backbone uses FrozenBatchNorm2d).
    model.train()
    for m in bns:
        m.eval()
    model.rpn.fg_bg_sampler.batch_size_per_image = 10 ** 7
    model.roi_heads.fg_bg_sampler.batch_size_per_image = 10 ** 7
    model.zero_grad()
    losses = model(images, [{k: v.clone() for k, v in t.items()} for t in targets])
    sum(losses.values()).backward()
    grad_names = ["backbone.body.layer4.2.conv3.weight", "backbone.fpn.layer_blocks.0.0.weight", "rpn.head.conv.0.0.weight",
                  "rpn.head.bbox_pred.weight", "roi_heads.box_head.fc6.weight", "roi_heads.box_predictor.cls_score.weight",
                  "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.mask_head.0.0.weight",
                  "roi_heads.mask_predictor.mask_fcn_logits.weight"]
    params = dict(model.named_parameters())

    os.makedirs(args.out, exist_ok=True)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(args.out, "weights.safetensors"), state,
                     {"source": "torchvision.models.detection.maskrcnn_resnet50_fpn", "torchvision": torchvision.__version__})
    out = {}
    for i, im in enumerate(images):
        out[f"image.{i}"] = im.numpy()
        out[f"image_size.{i}"] = np.array(batch.image_sizes[i], dtype=np.int64)
        out[f"proposals.{i}"] = proposals[i].numpy()
        for k, v in raw_copy[i].items():
            out[f"raw.{i}.{k}"] = v.numpy()
        for k, v in final[i].items():
            out[f"final.{i}.{k}"] = v.numpy()
    for i, t in enumerate(targets):
        for k, v in t.items():
            out[f"target.{i}.{k}"] = v.numpy()
    for k, v in losses.items():
        out[f"loss.{k}"] = np.array(float(v), dtype=np.float64)
    for name in grad_names:
        out[f"grad.{name}"] = params[name].grad.numpy()
    out["batch"] = batch.tensors.numpy()
    for name, f in features.items():
        out[f"features.{name}"] = f.numpy()
    for name, f in amp_features.items():
        out[f"autocast_bf16.features.{name}"] = f.float().numpy()
    save_safetensors(os.path.join(args.out, "outputs.safetensors"), out)
    meta = {"stamp": stamp, "torch": torch.__version__, "torchvision": torchvision.__version__, "min_size": args.min_size,
            "max_size": args.max_size, "detections": [int(d["boxes"].shape[0]) for d in final],
            "proposals": [int(p.shape[0]) for p in proposals], "losses": {k: float(v) for k, v in losses.items()}}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("export_torchvision_maskrcnn:", json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
