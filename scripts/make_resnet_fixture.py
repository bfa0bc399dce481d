#!/usr/bin/env python3
"""Writes tests/data/torch/resnets.json: the state_dict names, shapes and order of torchvision's
resnet18 ... resnet152 (classification, 1000 classes), for tests/test_mask_rcnn.cpp's factory test.
Run from the repository root with Debian's python3-torchvision: /usr/bin/python3 scripts/make_resnet_fixture.py
"""
import json
import os

import torch
import torchvision

out = {"torch": torch.__version__, "torchvision": torchvision.__version__}
for depth in (18, 34, 50, 101, 152):
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    out[f"resnet{depth}"] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch", "resnets.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote", path, os.path.getsize(path), "bytes")
