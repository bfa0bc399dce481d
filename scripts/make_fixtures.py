#!/usr/bin/env python3
"""Writes the PyTorch/torchvision peer fixtures of tests/test_fixtures.cpp into tests/data/torch/.

For every op, a folder tests/data/torch/<op>/ holds one sub-folder per configuration with the
inputs, the outputs and the gradients (of sum(output * grad_out) for a random grad_out) as .npy
files, and tests/data/torch/<op>/meta.json lists the configurations with their arguments and the
torch/torchvision versions that produced them. Run from the repository root:

    python3 scripts/make_fixtures.py        # Debian: apt-get install python3-torchvision

The C++ tests only read these files; nothing here is needed to build or test.
"""
import json
import sys
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import MultiScaleRoIAlign, batched_nms, box_iou, nms, roi_align
from torchvision.models.detection._utils import BoxCoder

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch")
VERSIONS = {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}


def arr(t):
    return t.detach().cpu().numpy()


class Op:
    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(ROOT, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.configs = []

    def add(self, config, args, tensors):
        path = os.path.join(self.dir, config)
        os.makedirs(path)
        for key, value in tensors.items():
            value = arr(value) if isinstance(value, torch.Tensor) else np.asarray(value)
            np.save(os.path.join(path, key + ".npy"), np.array(value, order="C"))  # keeps 0-d arrays 0-d
        self.configs.append({"name": config, "args": args})

    def close(self):
        with open(os.path.join(self.dir, "meta.json"), "w") as f:
            json.dump({"versions": VERSIONS, "configs": self.configs}, f, indent=1)


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_()


def backward(out, *inputs):
    """Gradients of sum(out * g) for a random g; returns g and the input gradients."""
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), inputs, allow_unused=True)
    return g, [torch.zeros_like(i) if gr is None else gr for i, gr in zip(inputs, grads)]


def grad_of(loss, x):
    """The gradient of a scalar loss (seeded with 1, as loss.backward())."""
    return torch.autograd.grad(loss, x)[0]


def conv_fixtures():
    op = Op("conv2d")
    for name, (N, C, H, W, O, k, s, p, d, g) in {
        "basic": (2, 3, 9, 11, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
        "stride2": (1, 4, 10, 9, 6, (3, 3), (2, 2), (0, 0), (1, 1), 1),
        "dilation2": (1, 3, 12, 12, 5, (3, 3), (1, 1), (2, 2), (2, 2), 1),
        "groups2": (1, 6, 8, 8, 4, (3, 3), (1, 1), (1, 1), (1, 1), 2),
        "rect": (1, 2, 7, 9, 3, (2, 5), (2, 1), (1, 2), (1, 1), 1),
        "pointwise": (2, 8, 5, 5, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1),
        "stem_7x7_s2": (1, 3, 16, 16, 4, (7, 7), (2, 2), (3, 3), (1, 1), 1),
    }.items():
        x, w, b = leaf(N, C, H, W), leaf(O, C // g, *k, scale=0.3), leaf(O)
        out = F.conv2d(x, w, b, s, p, d, g)
        go, (gx, gw, gb) = backward(out, x, w, b)
        op.add(name, {"stride": s, "padding": p, "dilation": d, "groups": g},
               {"x": x, "w": w, "b": b, "out": out, "grad_out": go, "grad_x": gx, "grad_w": gw, "grad_b": gb})
    op.close()

    op = Op("conv_transpose2d")
    for name, (N, C, H, W, O, k, s, p, op_, g, d) in {
        "up2x2_s2": (1, 4, 5, 6, 3, (2, 2), (2, 2), (0, 0), (0, 0), 1, (1, 1)),
        "k3_s2_p1_op1": (2, 3, 4, 4, 2, (3, 3), (2, 2), (1, 1), (1, 1), 1, (1, 1)),
        "groups_dilation": (1, 4, 4, 5, 4, (2, 3), (1, 2), (0, 1), (0, 1), 2, (2, 1)),
    }.items():
        x, w, b = leaf(N, C, H, W), leaf(C, O // g, *k, scale=0.3), leaf(O)
        out = F.conv_transpose2d(x, w, b, s, p, op_, g, d)
        go, (gx, gw, gb) = backward(out, x, w, b)
        op.add(name, {"stride": s, "padding": p, "output_padding": op_, "groups": g, "dilation": d},
               {"x": x, "w": w, "b": b, "out": out, "grad_out": go, "grad_x": gx, "grad_w": gw, "grad_b": gb})
    op.close()


def pool_norm_fixtures():
    op = Op("max_pool2d")
    for name, (shape, k, s, p, d, ceil) in {
        "k2": ((2, 3, 8, 10), (2, 2), (2, 2), (0, 0), (1, 1), False),
        "k3_s2_p1": ((1, 2, 9, 9), (3, 3), (2, 2), (1, 1), (1, 1), False),
        "ceil_mode": ((1, 2, 7, 8), (3, 3), (2, 2), (0, 0), (1, 1), True),
        "ceil_mode_pad": ((1, 1, 10, 7), (2, 3), (2, 2), (1, 1), (1, 1), True),
        "dilation": ((1, 2, 9, 9), (2, 2), (1, 1), (0, 0), (2, 2), False),
    }.items():
        x = leaf(*shape)
        out, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
        go, (gx,) = backward(out, x)
        op.add(name, {"kernel": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": ceil},
               {"x": x, "out": out, "indices": idx, "grad_out": go, "grad_x": gx})
    op.close()

    op = Op("batch_norm")
    for name, (shape, training, momentum) in {
        "train": ((4, 3, 5, 6), True, 0.1),
        "train_2d": ((8, 5), True, 0.3),
        "eval": ((2, 3, 4, 4), False, 0.1),
    }.items():
        C = shape[1]
        x, w, b = leaf(*shape) * 2 + 0.5, leaf(C), leaf(C)
        x = x.detach().requires_grad_()
        rm, rv = torch.randn(C), torch.rand(C) + 0.5
        rm0, rv0 = rm.clone(), rv.clone()
        out = F.batch_norm(x, rm, rv, w, b, training, momentum, 1e-5)
        go, (gx, gw, gb) = backward(out, x, w, b)
        op.add(name, {"training": training, "momentum": momentum, "eps": 1e-5},
               {"x": x, "w": w, "b": b, "running_mean": rm0, "running_var": rv0, "running_mean_after": rm,
                "running_var_after": rv, "out": out, "grad_out": go, "grad_x": gx, "grad_w": gw, "grad_b": gb})
    op.close()


def resample_fixtures():
    op = Op("interpolate")
    cases = {
        "bilinear_up_odd": ((1, 2, 5, 7), {"size": (9, 12)}, "bilinear", False),
        "bilinear_down": ((1, 2, 11, 9), {"size": (4, 5)}, "bilinear", False),
        "bilinear_align_up": ((2, 1, 4, 5), {"size": (9, 7)}, "bilinear", True),
        "bilinear_align_down": ((1, 2, 9, 8), {"size": (5, 3)}, "bilinear", True),
        "bilinear_scale_1_7": ((1, 2, 6, 5), {"scale_factor": (1.7, 1.7)}, "bilinear", False),
        "bilinear_scale_0_6": ((1, 1, 10, 9), {"scale_factor": (0.6, 0.6)}, "bilinear", False),
        "nearest_odd": ((1, 2, 5, 7), {"size": (8, 4)}, "nearest", None),
        "nearest_scale_2": ((1, 3, 4, 3), {"scale_factor": (2.0, 2.0)}, "nearest", None),
        "nearest_scale_0_6": ((1, 2, 10, 9), {"scale_factor": (0.6, 0.6)}, "nearest", None),
        "nearest_fpn_like": ((1, 2, 13, 17), {"size": (25, 34)}, "nearest", None),
    }
    for name, (shape, how, mode, align) in cases.items():
        x = leaf(*shape)
        kw = dict(how)
        if mode == "bilinear":
            kw["align_corners"] = align
        out = F.interpolate(x, mode=mode, **kw)
        go, (gx,) = backward(out, x)
        args = {"mode": mode, "align_corners": align}
        args.update({k: list(v) for k, v in how.items()})
        op.add(name, args, {"x": x, "out": out, "grad_out": go, "grad_x": gx})
    op.close()

    op = Op("pad")
    for name, (shape, pads, mode, value) in {
        "reflect_2d": ((1, 2, 5, 6), (2, 3, 1, 4), "reflect", 0.0),
        "reflect_1d": ((2, 3, 7), (3, 6), "reflect", 0.0),
        "constant_2d": ((2, 2, 3, 4), (1, 0, 2, 3), "constant", 0.25),
        "constant_negative": ((1, 2, 6, 6), (-1, 2, 0, -2), "constant", 0.0),
    }.items():
        x = leaf(*shape)
        out = F.pad(x, pads, mode=mode, value=value) if mode == "constant" else F.pad(x, pads, mode=mode)
        go, (gx,) = backward(out, x)
        op.add(name, {"pads": list(pads), "mode": mode, "value": value}, {"x": x, "out": out, "grad_out": go, "grad_x": gx})
    op.close()


def detection_fixtures():
    op = Op("roi_align")
    feats = leaf(2, 3, 10, 12)
    # rois in image coordinates (spatial_scale 0.5 maps a 20x24 image onto the 10x12 map): inside,
    # partly outside, wholly outside, zero-size, large, and tiny ones.
    rois = torch.tensor([[0, 2.0, 3.0, 15.0, 14.0], [1, -4.0, -3.0, 6.0, 5.0], [0, 30.0, 25.0, 40.0, 33.0],
                         [1, 7.0, 7.0, 7.0, 7.0], [0, 0.0, 0.0, 24.0, 20.0], [1, 3.3, 9.1, 4.2, 10.7],
                         [0, 18.0, 1.0, 23.5, 19.5], [1, 11.0, 2.0, 26.0, 8.0]])
    for name, (out_size, sampling, aligned) in {
        "2x2_s2": ((2, 2), 2, False), "2x2_s2_aligned": ((2, 2), 2, True),
        "3x2_adaptive": ((3, 2), 0, False), "3x2_adaptive_aligned": ((3, 2), -1, True),
        "7x7_s2_aligned": ((7, 7), 2, True), "1x1_s1": ((1, 1), 1, False),
    }.items():
        out = roi_align(feats, rois, out_size, 0.5, sampling, aligned)
        go, (gx,) = backward(out, feats)
        op.add(name, {"output_size": out_size, "spatial_scale": 0.5, "sampling_ratio": sampling, "aligned": aligned},
               {"input": feats, "rois": rois, "out": out, "grad_out": go, "grad_input": gx})
    op.close()

    op = Op("multi_scale_roi_align")
    image = (64, 80)
    fmap = {"0": leaf(2, 2, 16, 20), "1": leaf(2, 2, 8, 10), "2": leaf(2, 2, 4, 5)}
    boxes = [torch.tensor([[1.0, 2.0, 9.0, 7.0], [0.0, 0.0, 63.0, 79.0], [10.0, 12.0, 40.0, 50.0]]),
             torch.tensor([[5.0, 5.0, 30.0, 22.0], [2.0, 40.0, 6.0, 44.0], [20.0, 10.0, 79.0, 63.0], [0, 0, 3, 3]])]
    pooler = MultiScaleRoIAlign(["0", "1", "2"], output_size=(3, 3), sampling_ratio=2, canonical_scale=32, canonical_level=3)
    out = pooler(fmap, boxes, [image, image])
    go, grads = backward(out, *fmap.values())
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    op.add("three_levels", {"output_size": [3, 3], "sampling_ratio": 2, "canonical_scale": 32, "canonical_level": 3,
                            "image_size": list(image), "scales": pooler.scales},
           {"f0": fmap["0"], "f1": fmap["1"], "f2": fmap["2"], "rois": rois, "out": out, "grad_out": go,
            "grad_f0": grads[0], "grad_f1": grads[1], "grad_f2": grads[2]})
    op.close()

    op = Op("nms")
    g = torch.Generator().manual_seed(1)
    centres, sizes = torch.rand(500, 2, generator=g) * 40, torch.rand(500, 2, generator=g) * 12 + 1
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
    scores = (torch.rand(500, generator=g) * 20).round() / 20  # many tied scores
    special = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4], [5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 4, 2], [1, 1, 3, 3],
                            [2, 0, 6, 4]], dtype=torch.float32)
    special_scores = torch.tensor([0.9, 0.9, 0.8, 0.8, 0.9, 0.7, 0.9])
    for thr in (0.0, 0.5, 1.0, 0.3, 0.7):
        op.add(f"random_{thr}", {"iou_threshold": thr}, {"boxes": boxes, "scores": scores, "keep": nms(boxes, scores, thr)})
        op.add(f"special_{thr}", {"iou_threshold": thr},
               {"boxes": special, "scores": special_scores, "keep": nms(special, special_scores, thr)})
    idxs = torch.randint(0, 4, (500,), generator=g)
    op.add("batched_0.5", {"iou_threshold": 0.5, "batched": True},
           {"boxes": boxes, "scores": scores, "idxs": idxs, "keep": batched_nms(boxes, scores, idxs, 0.5)})
    op.close()

    op = Op("boxes")
    a, b = boxes[:40], boxes[100:130]
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    codes = torch.randn(40, 8) * 2
    codes[0, 2] = 50.0  # beyond the log(1000/16) clamp
    op.add("iou_and_coder", {"weights": [10.0, 10.0, 5.0, 5.0]},
           {"a": a, "b": b, "iou": box_iou(a, b), "encoded": coder.encode_single(b[:30], a[:30]),
            "codes": codes, "decoded": coder.decode_single(codes, a)})
    op.close()


def loss_fixtures():
    op = Op("losses")
    x = leaf(6, 4)
    t = torch.tensor([0, 3, 1, -1, 2, 3])
    w = torch.tensor([1.0, 2.0, 0.5, 1.5])
    loss = F.cross_entropy(x, t, weight=w, ignore_index=-1)
    gx = grad_of(loss, x)
    op.add("cross_entropy_weight_ignore", {"ignore_index": -1, "reduction": "mean"},
           {"x": x, "target": t, "weight": w, "loss": loss, "grad_x": gx})
    x = leaf(2, 3, 4, 5)
    t = torch.randint(0, 3, (2, 4, 5))
    loss = F.cross_entropy(x, t, reduction="sum")
    gx = grad_of(loss, x)
    op.add("cross_entropy_2d_sum", {"ignore_index": -100, "reduction": "sum"}, {"x": x, "target": t, "loss": loss, "grad_x": gx})
    x, y = leaf(5, 3) * 3, torch.rand(5, 3)
    x = x.detach().requires_grad_()
    pw, wt = torch.tensor([2.0, 0.5, 1.0]), torch.rand(5, 3)
    loss = F.binary_cross_entropy_with_logits(x, y, weight=wt, pos_weight=pw)
    gx = grad_of(loss, x)
    op.add("bce_with_logits", {"reduction": "mean"}, {"x": x, "y": y, "weight": wt, "pos_weight": pw, "loss": loss, "grad_x": gx})
    x, y = leaf(8, 4), torch.randn(8, 4)
    loss = F.smooth_l1_loss(x, y, beta=1.0 / 9, reduction="sum")
    gx = grad_of(loss, x)
    op.add("smooth_l1", {"beta": 1.0 / 9, "reduction": "sum"}, {"x": x, "y": y, "loss": loss, "grad_x": gx})
    loss = F.l1_loss(x, y)
    gx = grad_of(loss, x)
    op.add("l1", {"reduction": "mean"}, {"x": x, "y": y, "loss": loss, "grad_x": gx})
    op.close()


class SmallNet(torch.nn.Module):
    """conv -> BN -> ReLU -> max-pool -> linear: the module-parity fixture of tests/test_layers.cpp."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(64, 5)

    def forward(self, x):
        return self.fc(torch.flatten(F.max_pool2d(F.relu(self.bn(self.conv(x))), 2), 1))


def module_fixtures():
    from safetensors.torch import save_file

    op = Op("modules")
    net = SmallNet()
    with torch.no_grad():  # non-trivial running statistics before the training-mode step
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.path.join(op.dir, "small_net.safetensors"))
    x, target = torch.randn(2, 3, 8, 8), torch.tensor([1, 4])
    net.train()
    logits = net(x)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    tensors = {"x": x, "target": target, "logits": logits, "loss": loss}
    for k, v in net.named_parameters():
        tensors["grad." + k] = v.grad
    for k, v in net.state_dict().items():
        tensors["after." + k] = v
    net.eval()
    tensors["eval_logits"] = net(x)
    op.add("small_net", {"file": "small_net.safetensors"}, tensors)

    # Optimizers: five steps on the same parameters with the same (fixed) gradients per step.
    p0 = torch.randn(4, 3)
    grads = [torch.randn(4, 3) for _ in range(5)]
    for name, make in {
        "sgd": lambda p: torch.optim.SGD([p], lr=0.1),
        "sgd_momentum_wd": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.99, nesterov=True),
        "adam": lambda p: torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.02),
        "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1),
    }.items():
        p = p0.clone().requires_grad_()
        opt = make(p)
        steps = []
        for g in grads:
            p.grad = g.clone()
            opt.step()
            steps.append(p.detach().clone())
        op.add("optim_" + name, {}, {"p0": p0, "grads": torch.stack(grads), "steps": torch.stack(steps)})

    # Schedules: the learning rate at each of 30 iterations.
    def lrs(make):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.5)
        sched = make(opt)
        out = []
        for _ in range(30):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return torch.tensor(out, dtype=torch.float64)

    S = torch.optim.lr_scheduler
    op.add("schedules", {"base_lr": 0.5}, {
        "warmup_linear": lrs(lambda o: S.LinearLR(o, start_factor=0.001, total_iters=10)),
        "multi_step": lrs(lambda o: S.MultiStepLR(o, milestones=[8, 20], gamma=0.1)),
        "cosine": lrs(lambda o: S.CosineAnnealingLR(o, T_max=25, eta_min=0.05)),
        "warmup_then_multi_step": lrs(lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.01, total_iters=5),
                                                                    S.MultiStepLR(o, milestones=[12, 24], gamma=0.5)])),
    })

    # clip_grad_norm
    ps = [torch.randn(3, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    for p in ps:
        p.grad = torch.randn_like(p) * 3
    before = [p.grad.clone() for p in ps]
    norm = torch.nn.utils.clip_grad_norm_(ps, max_norm=2.0)
    op.add("clip_grad_norm", {"max_norm": 2.0}, {"g0": before[0], "g1": before[1], "c0": ps[0].grad, "c1": ps[1].grad,
                                                  "norm": norm})
    op.close()


def transform_fixtures():
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    op = Op("detection_transform")
    t = GeneralizedRCNNTransform(min_size=100, max_size=160, image_mean=[0.485, 0.456, 0.406],
                                 image_std=[0.229, 0.224, 0.225])
    t.eval()
    images = [torch.rand(3, 75, 130), torch.rand(3, 121, 90)]
    targets = []
    for im in images:
        h, w = im.shape[-2:]
        boxes = torch.tensor([[3.0, 4.0, w - 10.0, h - 7.5], [10.5, 2.25, 30.0, 40.0]])
        masks = (torch.rand(2, h, w) > 0.5).to(torch.uint8)
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "masks": masks})
    inputs = {f"image{i}": im for i, im in enumerate(images)}
    for i, tg in enumerate(targets):
        inputs[f"boxes{i}"] = tg["boxes"].clone()
        inputs[f"masks{i}"] = tg["masks"].clone()
    image_list, out_targets = t(images, targets)
    outputs = {"batch": image_list.tensors, "sizes": torch.tensor(image_list.image_sizes)}
    for i, tg in enumerate(out_targets):
        outputs[f"out_boxes{i}"] = tg["boxes"]
        outputs[f"out_masks{i}"] = tg["masks"]
    inputs.update(outputs)
    op.add("min100_max160", {"min_size": 100, "max_size": 160, "mean": [0.485, 0.456, 0.406],
                             "std": [0.229, 0.224, 0.225]}, inputs)
    op.close()


def resize_size_fixtures():
    """The resized sizes GeneralizedRCNNTransform picks for many (h, w, min_size, max_size): the
    float32 arithmetic (a Python number divided by a tensor is a reciprocal and a product) decides
    the last pixel."""
    from torchvision.models.detection.transform import _resize_image_and_masks

    op = Op("detection_resize_sizes")
    rows = []
    for min_size, max_size in [(160, 256), (800, 1333), (100, 160), (512, 512)]:
        for h in list(range(37, 301, 7)) + [480, 500, 640]:
            for w in (50, 99, 100, 128, 150, 333, 427, 640):
                out, _ = _resize_image_and_masks(torch.zeros(1, h, w), float(min_size), float(max_size))
                rows.append([h, w, min_size, max_size, out.shape[-2], out.shape[-1]])
    op.add("grid", {"columns": ["h", "w", "min_size", "max_size", "out_h", "out_w"]},
           {"rows": torch.tensor(rows, dtype=torch.int64)})
    op.close()


def paste_mask_fixtures():
    """torchvision's paste_masks_in_image (expand_boxes, the int64 truncation, interpolate to the
    box, the copy clipped to the image) on boxes narrower than 2 px, boxes across the image border,
    boxes outside it, and boxes whose enlarged edge falls within 1e-3 px of an integer."""
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    op = Op("paste_masks")
    g = torch.Generator().manual_seed(11)

    def masks_for(n):
        # Smooth probability masks, as a mask head gives: sigmoid of upsampled random logits.
        logits = F.interpolate(torch.randn(n, 1, 7, 7, generator=g) * 3, size=(28, 28), mode="bilinear",
                               align_corners=False)
        return torch.sigmoid(logits)

    # tall256x40: the box of a float32 torchvision model that pasted differently (x 1.8 px wide,
    # y over the whole height) and thin boxes in a tall image; wide60x90: everything.
    for name, (h, w) in {"tall256x40": (256, 40), "wide60x90": (60, 90)}.items():
        boxes = [[23.1, 0.0, 24.9, 256.0], [23.14, 0.0, 24.94, 256.0]] if h == 256 else []
        for width in (0.3, 0.9, 1.5, 1.8, 1.99, 2.01) if h == 256 else (0.3, 0.9, 1.2, 1.5, 1.8, 1.99, 2.0, 2.01):
            x0 = float(torch.rand(1, generator=g)) * (w - 3)
            y0 = float(torch.rand(1, generator=g)) * (h / 2)
            boxes.append([x0, y0, x0 + width, y0 + h / 3])  # thin in x
            if h != 256:  # thin in y (torchvision's paste fails on a box that starts right of the image)
                boxes.append([y0 / 2, x0 * h / w, y0 / 2 + h / 4, x0 * h / w + width])
        if h == 256:
            boxes += [[-5.5, -3.2, 20.0, 15.0], [w - 1.4, 200.0, w + 0.3, 258.0]]
            b = torch.tensor(boxes, dtype=torch.float32)
            m = masks_for(len(boxes))
            op.add(name, {"image": [h, w], "padding": 1}, {"masks": m, "boxes": b, "pasted": paste_masks_in_image(m, b, (h, w))})
            continue
        boxes += [[-5.5, -3.2, 20.0, 15.0], [w - 12.3, h - 9.9, w + 4.0, h + 2.5], [-30.0, 10.0, -2.0, 20.0],
                  [w + 1.0, 0.0, w + 9.0, 5.0], [0.0, 0.0, float(w), float(h)], [10.0, 10.0, 10.0, 10.0],
                  [3.0, 4.0, 17.0, 11.0]]
        # The enlarged right edge x1 + (x1 - x0) / 28 within 1e-3 of an integer, from either side.
        for target, eps in ((20.0, 1e-3), (20.0, -1e-3), (41.0, 4e-4), (41.0, -4e-4)):
            x0 = 18.5 if target == 20.0 else 39.2
            x1 = (target + eps + x0 / 28) * 28 / 29
            boxes.append([x0, 5.0, x1, 30.0])
        b = torch.tensor(boxes, dtype=torch.float32)
        m = masks_for(len(boxes))
        op.add(name, {"image": [h, w], "padding": 1}, {"masks": m, "boxes": b, "pasted": paste_masks_in_image(m, b, (h, w))})
    op.close()


def half_cast_fixtures():
    """Tensor.to(torch.bfloat16 / torch.float16) of float32 and float64 special values: zeros,
    float32 subnormals, the halves' subnormal range and its ties, exact ties between two halves on
    either parity, the largest finite halves and the first values that round to inf, infinities,
    NaNs; the halves' bits are stored as int32. A tensor of more than 64 values, so that PyTorch's
    vectorised conversion runs, as the scalar one does for the tail."""
    op = Op("half_casts")
    f32 = []
    for e in range(-30, 17):
        for m in (0.0, 1 / 256, 1 / 128 + 1 / 256, 1 / 512, 1 / 1024 + 1 / 2048, 1 / 2048, 3 / 2048, 0.999):
            f32.append(math.ldexp(1.0 + m, e))
    f32 += [0.0, 65504.0, 65519.0, 65519.996, 65520.0, 65536.0, 3.3895314e38, 3.40e38, 1e-45, 1.1754942e-38,
            1.1754944e-38, 2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -25 * 1.0000001, 3 * 2.0 ** -25,
            2.0 ** -14 - 2.0 ** -25, 2.0 ** -14 - 2.0 ** -24, 5.960464477539063e-08, math.pi, -math.e, 1 / 3]
    f32 = np.array(f32 + [-v for v in f32], dtype=np.float32)
    bits = np.array([0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0x7fffffff,
                     0x00000001, 0x80000001, 0x007fffff, 0x3f808000, 0x3f818000, 0x3f7fffff, 0x477fefff, 0x477ff000,
                     0x7f7f8000, 0x7f7f7fff], dtype=np.uint32).view(np.float32)
    g = np.random.default_rng(5)
    rand_bits = g.integers(0, 2 ** 32, size=200, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = torch.from_numpy(np.concatenate([f32, bits, rand_bits]))
    bf = x.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xffff
    hf = x.to(torch.float16).view(torch.int16).to(torch.int32) & 0xffff
    # float64 values between two floats: a conversion through float32 rounds twice.
    x64 = torch.tensor([1 + 2.0 ** -8 + 2.0 ** -30, 1 + 2.0 ** -8 - 2.0 ** -30, 1 + 2.0 ** -11 + 2.0 ** -40,
                        1 + 2.0 ** -11 - 2.0 ** -40, 65519.99999999, 1e300, -1e300, 1e-300, math.pi, 2.0 ** -25 + 2.0 ** -60],
                       dtype=torch.float64)
    bf64 = x64.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xffff
    hf64 = x64.to(torch.float16).view(torch.int16).to(torch.int32) & 0xffff
    op.add("specials", {"n": int(x.numel())}, {"x": x, "bf16_bits": bf, "f16_bits": hf, "x64": x64,
                                               "bf16_bits_of_x64": bf64, "f16_bits_of_x64": hf64})
    op.close()


def main():
    if sys.argv[1:] == ["--only-half-casts"]:
        half_cast_fixtures()
        return
    if sys.argv[1:] == ["--only-resize-sizes"]:
        resize_size_fixtures()
        return
    if sys.argv[1:] == ["--only-paste-masks"]:
        paste_mask_fixtures()
        return
    torch.manual_seed(0)
    conv_fixtures()
    pool_norm_fixtures()
    resample_fixtures()
    detection_fixtures()
    loss_fixtures()
    module_fixtures()
    transform_fixtures()
    resize_size_fixtures()
    paste_mask_fixtures()
    half_cast_fixtures()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT} ({total / 1024:.0f} KiB) with", VERSIONS)


if __name__ == "__main__":
    main()
