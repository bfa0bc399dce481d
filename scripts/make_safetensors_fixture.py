#!/usr/bin/env python3
"""Writes tests/data/safetensors/numpy_written.safetensors with the `safetensors` package (PyPI),
for tests/test_io.cpp. Values follow formulas the C++ test recomputes. Run from the repository root:
    pip install numpy safetensors && python3 scripts/make_safetensors_fixture.py
"""
import os

import numpy as np
import safetensors
from safetensors.numpy import save_file

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "safetensors")
os.makedirs(out, exist_ok=True)
tensors = {
    "layer1.0.conv1.weight": (np.arange(24, dtype=np.float32) * 0.25 - 3).reshape(2, 3, 2, 2),  # i/4 - 3
    "bn.running_var": np.arange(3, dtype=np.float64) + 0.5,  # i + 0.5
    "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    "ids": np.arange(4, dtype=np.int32) * 3,  # 3 i
    "mask": np.array([1, 0, 1], dtype=np.uint8),
    "flags": np.array([True, False]),
}
save_file(tensors, os.path.join(out, "numpy_written.safetensors"), metadata={"format": "np", "source": "fixture"})
with open(os.path.join(out, "VERSION"), "w") as f:
    f.write(f"numpy {np.__version__}, safetensors {safetensors.__version__}\n")
print("wrote", sorted(os.listdir(out)))
