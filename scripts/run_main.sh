#!/usr/bin/env bash
# The main job: trains the 2015 U-Net on built-in synthetic touching cells (no download) on this
# machine's CPU in about five minutes, then runs `predict` on a held-out image. Everything lands in
# runs/unet/: metrics.jsonl, preview_<iter>.png panels, checkpoint.safetensors, model.safetensors,
# summary.json, and predictions/ (label, probability and overlay PNGs).
# Extra arguments go to train_unet (e.g. --iters 2000, --device cuda, --data DIR; the output
# folder stays runs/unet).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build build -j "$(nproc)" --target train_unet predict
# Loader threads share the cores with the OpenMP pool: passive waiting keeps them from fighting.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
out=runs/unet
build/drivers/train_unet --width 16 --tile 316 --iters 1000 --warmup 50 --val-every 250 --log-every 50 --out "$out" "$@"
build/drivers/predict unet --model "$out/model.safetensors" --out "$out/predictions" "$out/val_example.png"
