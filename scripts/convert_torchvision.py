#!/usr/bin/env python3
"""Turns a torchvision Mask R-CNN checkpoint (.pth) into a tessera model file (.safetensors) that
`predict maskrcnn` and `train_maskrcnn --weights` read:

    python3 scripts/convert_torchvision.py maskrcnn_resnet50_fpn_coco-bf9d0ffe.pth maskrcnn_coco.safetensors
    build/drivers/predict maskrcnn --model maskrcnn_coco.safetensors --out pred photo.jpg

The tensors keep torchvision's state_dict names (tessera's are the same); the configuration goes
into the file's metadata: the ResNet depth (read from the number of blocks), the class count (from
the box predictor), torchvision's defaults for the rest (min/max size 800/1333, anchors 32..512,
FrozenBatchNorm), and the class names: COCO's 91 (torchvision's list, "N/A" for the unused ids,
label = COCO category id) when the model has 91 classes, else --class-names or class_<i>.
--dtype float16 or bfloat16 halves the file; tessera widens it to float32 on load.

Needs torch and the safetensors package (pip install safetensors); torchvision for COCO's names.
"""
import argparse
import os
import sys

import torch

try:
    from safetensors.torch import save_file
except ImportError:
    sys.exit("convert_torchvision.py needs the safetensors package: pip install safetensors")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resnet_depth(keys):
    """The ResNet depth from the blocks of layer3 and whether blocks have a third convolution."""
    blocks = {int(k.split(".")[3]) for k in keys if k.startswith("backbone.body.layer3.")}
    bottleneck = any(k.startswith("backbone.body.layer1.0.conv3.") for k in keys)
    table = {(True, 6): 50, (True, 23): 101, (True, 36): 152, (False, 2): 18, (False, 6): 34}
    depth = table.get((bottleneck, len(blocks)))
    if depth is None:
        sys.exit(f"not a ResNet-FPN backbone tessera knows: layer3 has {len(blocks)} blocks")
    return depth


def coco_names():
    try:
        from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
        return list(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    except (ImportError, AttributeError):
        sys.exit("91 classes: COCO's names come from torchvision (apt-get install python3-torchvision), "
                 "or give --class-names")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth", help="torchvision checkpoint: a state_dict, or a dict with 'model' or 'state_dict'")
    ap.add_argument("out", help="the .safetensors to write")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="storage type of the floating tensors")
    ap.add_argument("--class-names", help="a text file, one class name per line, background first")
    ap.add_argument("--min-size", type=float, default=800.0)
    ap.add_argument("--max-size", type=float, default=1333.0)
    args = ap.parse_args()

    state = torch.load(args.pth, map_location="cpu")
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or "roi_heads.mask_predictor.mask_fcn_logits.weight" not in state:
        sys.exit(f"{args.pth}: not a torchvision Mask R-CNN state_dict (no roi_heads.mask_predictor)")
    if any(k.startswith("rpn.head.conv.1.") or k.startswith("roi_heads.box_head.0.") for k in state):
        sys.exit(f"{args.pth}: a maskrcnn_resnet50_fpn_v2 checkpoint (convolutional heads with norms); "
                 "tessera builds the v1 model")
    num_classes = int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
    if args.class_names:
        with open(args.class_names) as f:
            names = [line.strip() for line in f if line.strip()]
    elif num_classes == 91:
        names = coco_names()
    else:
        names = ["background"] + [f"class_{i}" for i in range(1, num_classes)]
    if len(names) != num_classes:
        sys.exit(f"{len(names)} class names for a model of {num_classes} classes")

    # Checkpoints from before torchvision 0.13 (the COCO-trained maskrcnn_resnet50_fpn among them)
    # name the RPN's 3x3 convolution rpn.head.conv; torchvision (and tessera) now call it
    # rpn.head.conv.0.0, and torchvision renames on load exactly so.
    for t in ("weight", "bias"):
        if f"rpn.head.conv.{t}" in state:
            state[f"rpn.head.conv.0.0.{t}"] = state.pop(f"rpn.head.conv.{t}")
    dtype = DTYPES[args.dtype]
    tensors = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            continue
        v = v.detach().contiguous()
        tensors[k] = v.to(dtype) if v.is_floating_point() else v
    metadata = {
        "model": "maskrcnn",
        "maskrcnn.backbone": str(resnet_depth(state.keys())),
        "maskrcnn.num_classes": str(num_classes),
        "maskrcnn.min_size": str(args.min_size),
        "maskrcnn.max_size": str(args.max_size),
        "maskrcnn.anchor_sizes": "32,64,128,256,512",
        "maskrcnn.group_norm": "0",
        "maskrcnn.class_names": "\n".join(names),
        "maskrcnn.category_ids": ",".join(str(i) for i in range(num_classes)),
        "source": os.path.basename(args.pth),
    }
    tmp = args.out + ".tmp"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, args.out)  # atomic: a crash leaves any earlier file whole
    size = os.path.getsize(args.out) / 2 ** 20
    print(f"{args.out}: {len(tensors)} tensors ({args.dtype}), ResNet-{metadata['maskrcnn.backbone']}, "
          f"{num_classes} classes, {size:.1f} MiB")


if __name__ == "__main__":
    main()
