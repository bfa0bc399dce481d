#!/usr/bin/env python3
"""Writes tests/data/torch/unet/: a U-Net built in PyTorch with tessera's parameter names (at width 4
so the files stay small), its weights as safetensors, and its output and every parameter gradient
on a fixture input, for tests/test_unet.cpp. Run from the repository root:

    python3 scripts/make_unet_fixture.py     # Debian: python3-torch, plus pip's safetensors
    python3 scripts/make_unet_fixture.py --autocast-only   # only <config>/autocast_bf16/ (below)

Each configuration's autocast_bf16/ holds the same network, weights and input run under
torch.autocast("cpu", dtype=torch.bfloat16) (training mode, as the float32 files): its output and
the cross-entropy against a random target.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch", "unet")


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, bn):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3)
        self.bn1 = nn.BatchNorm2d(cout) if bn else None
        self.conv2 = nn.Conv2d(cout, cout, 3)
        self.bn2 = nn.BatchNorm2d(cout) if bn else None

    def forward(self, x):
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        x = F.relu(x)
        x = self.conv2(x)
        if self.bn2 is not None:
            x = self.bn2(x)
        return F.relu(x)


class Up(nn.Module):
    def __init__(self, cin, cout, bn):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        pair = DoubleConv(2 * cout, cout, bn)
        self.conv1, self.bn1, self.conv2, self.bn2 = pair.conv1, pair.bn1, pair.conv2, pair.bn2
        self.pair = [pair]  # not a registered child: the names stay dec.<l>.conv1 ...

    def forward(self, x, skip):
        u = self.up(x)
        dh, dw = skip.shape[2] - u.shape[2], skip.shape[3] - u.shape[3]
        s = skip[:, :, dh // 2: dh // 2 + u.shape[2], dw // 2: dw // 2 + u.shape[3]]
        return self.pair[0](torch.cat([s, u], 1))


class UNet(nn.Module):
    def __init__(self, cin=1, classes=2, width=4, depth=4, bn=False):
        super().__init__()
        ch, enc = cin, []
        for level in range(depth):
            enc.append(DoubleConv(ch, width << level, bn))
            ch = width << level
        self.enc = nn.Sequential(*enc)
        self.bottom = DoubleConv(ch, 2 * ch, bn)
        ch *= 2
        dec = []
        for _ in range(depth):
            dec.append(Up(ch, ch // 2, bn))
            ch //= 2
        self.dec = nn.Sequential(*dec)
        self.head = nn.Conv2d(ch, classes, 1)

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)  # dropout is inactive in this fixture (p = 0 on the tessera side)
        for i, d in enumerate(self.dec):
            x = d(x, skips[-1 - i])
        return self.head(x)


def autocast_fixture(name, net, x):
    """The forward and the loss under PyTorch's CPU autocast to bfloat16."""
    g = torch.Generator().manual_seed(7)
    path = os.path.join(OUT, name, "autocast_bf16")
    os.makedirs(path, exist_ok=True)
    net.train()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
        target = torch.randint(0, out.shape[1], (out.shape[0], out.shape[2], out.shape[3]), generator=g)
        loss = F.cross_entropy(out, target)
    np.save(os.path.join(path, "out.npy"), out.float().numpy())
    np.save(os.path.join(path, "out_dtype_is_bf16.npy"), np.array(out.dtype == torch.bfloat16))
    np.save(os.path.join(path, "target.npy"), target.numpy())
    np.save(os.path.join(path, "loss.npy"), np.array(loss.float().item(), dtype=np.float32))


def autocast_only():
    from safetensors.torch import load_file
    for name, bn in (("plain", False), ("batchnorm", True)):
        net = UNet(width=2, bn=bn)
        net.load_state_dict(load_file(os.path.join(OUT, name + ".safetensors")))
        x = torch.from_numpy(np.load(os.path.join(OUT, name, "x.npy")))
        autocast_fixture(name, net, x)
    print("wrote", OUT, "*/autocast_bf16 with torch", torch.__version__)


def main():
    if sys.argv[1:] == ["--autocast-only"]:
        autocast_only()
        return
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    configs = {"plain": dict(bn=False, size=188), "batchnorm": dict(bn=True, size=204)}
    meta = {"versions": {"torch": torch.__version__}, "configs": []}
    for name, c in configs.items():
        net = UNet(width=2, bn=c["bn"])
        with torch.no_grad():  # make every parameter non-trivial (biases too)
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, os.path.join(OUT, name + ".safetensors"))
        x = torch.randn(2, 1, c["size"], c["size"])
        net.train()
        out = net(x)
        g = torch.randn_like(out)
        (out * g).sum().backward()
        path = os.path.join(OUT, name)
        os.makedirs(path, exist_ok=True)
        np.save(os.path.join(path, "x.npy"), x.numpy())
        autocast_fixture(name, net, x)
        np.save(os.path.join(path, "out.npy"), out.detach().numpy())
        np.save(os.path.join(path, "grad_out.npy"), g.numpy())
        for k, p in net.named_parameters():
            np.save(os.path.join(path, "grad." + k + ".npy"), p.grad.numpy())
        meta["configs"].append({"name": name, "batch_norm": c["bn"], "size": c["size"], "width": 2, "depth": 4,
                                "parameters": [k for k, _ in net.named_parameters()]})
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
