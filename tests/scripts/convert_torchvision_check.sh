#!/usr/bin/env bash
# ctest convert_torchvision: a torchvision maskrcnn_resnet50_fpn checkpoint (random weights from a
# fixed seed, saved with the pre-0.13 RPN names of the COCO-trained file) goes through
# scripts/convert_torchvision.py in bfloat16 and float16, and predict runs on both files: COCO's
# class names are in the model and both give detections of COCO categories. (Loading F16/BF16 exactly
# is tests/test_io.cpp's; the model against torchvision is the parity tests'.)
# Skips (exit 77, with the reason) when the Python lacks torch, torchvision or safetensors.
set -euo pipefail
python="$1" predict="$2" image="$3" work="$4"
if ! "$python" -c 'import torch, torchvision, safetensors' 2>/dev/null; then
  echo "skipped: $python lacks torch, torchvision or safetensors (pip install safetensors)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
"$python" - "$work/old.pth" <<'PY'
import sys, torch, torchvision
torch.manual_seed(0)
s = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
for t in ("weight", "bias"):
    s[f"rpn.head.conv.{t}"] = s.pop(f"rpn.head.conv.0.0.{t}")
torch.save({"model": s}, sys.argv[1])
PY
for dtype in bfloat16 float16; do
  "$python" scripts/convert_torchvision.py "$work/old.pth" "$work/$dtype.safetensors" --dtype "$dtype"
  "$predict" maskrcnn --model "$work/$dtype.safetensors" --out "$work/pred_$dtype" --score-threshold 0 \
    --detections-per-image 5 "$image" >"$work/predict_$dtype.log" 2>&1 || { cat "$work/predict_$dtype.log"; exit 1; }
  tail -1 "$work/predict_$dtype.log"
done
"$python" - "$work" <<'PY'
import json, sys
from safetensors import safe_open
work = sys.argv[1]
with safe_open(f"{work}/bfloat16.safetensors", "pt") as f:
    meta = f.metadata()
    names = meta["maskrcnn.class_names"].split("\n")
    assert names[1] == "person" and names[18] == "dog" and len(names) == 91, names[:20]
    assert "rpn.head.conv.0.0.weight" in f.keys()
a = json.load(open(f"{work}/pred_bfloat16/results.json"))
b = json.load(open(f"{work}/pred_float16/results.json"))
assert len(a) == 5 and len(b) == 5, (len(a), len(b))
assert all(1 <= r["category_id"] <= 90 and "segmentation" in r for r in a + b)
print("convert_torchvision: ok,", len(a), "detections each; top scores", a[0]["score"], b[0]["score"])
PY
