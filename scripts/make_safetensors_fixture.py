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

# Half precision (F16, BF16), written by safetensors' torch API (numpy has no bfloat16): values on
# formulas plus every special case of the formats. Needs torch as well:
#     pip install torch safetensors (or Debian's python3-torch) && python3 scripts/make_safetensors_fixture.py
try:
    import torch
    from safetensors.torch import save_file as save_torch
except ImportError as e:  # the float32 fixture above does not need torch
    print("skipped half_written.safetensors:", e)
else:
    specials16 = [65504.0, -65504.0, 2.0 ** -24, -(2.0 ** -24), 2.0 ** -14, 1023 * 2.0 ** -24, -0.0,
                  float("inf"), float("-inf"), float("nan")]
    specials_bf = [2.0 ** 127 * 1.5, -(2.0 ** -133), 2.0 ** -126, 1.0 + 2.0 ** -7, -0.0, float("inf"), float("nan")]
    half = {
        "conv.weight": (torch.arange(24, dtype=torch.float32) / 8 - 1.5).reshape(2, 3, 2, 2).to(torch.float16),  # i/8 - 1.5
        "conv.bias": (torch.arange(2, dtype=torch.float32) * 0.75 - 0.25).to(torch.bfloat16),  # 0.75 i - 0.25
        "f16_specials": torch.tensor(specials16, dtype=torch.float32).to(torch.float16),
        "bf16_specials": torch.tensor(specials_bf, dtype=torch.float32).to(torch.bfloat16),
    }
    save_torch(half, os.path.join(out, "half_written.safetensors"), metadata={"source": "torch half fixture"})
    with open(os.path.join(out, "VERSION"), "a") as f:
        f.write(f"half_written: torch {torch.__version__}, safetensors {safetensors.__version__}\n")
    print("wrote half_written.safetensors")
