#!/usr/bin/env python3
"""Writes tests/data/npy/*.npy with NumPy, for tests/test_io.cpp.

Every array's values follow a formula that the C++ test recomputes independently, so the test
checks the bytes NumPy wrote, not numbers copied from here. Run from the repository root:
    python3 scripts/make_npy_fixtures.py
The NumPy version used is written to tests/data/npy/VERSION.
"""
import os

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "npy")
os.makedirs(out, exist_ok=True)


def save(name, array, **kw):
    path = os.path.join(out, name)
    if kw:
        with open(path, "wb") as f:
            np.lib.format.write_array(f, array, **kw)
    else:
        np.save(path, array)


# value(i) = i * 0.5 - 1 over the flat C-order index i
save("f32_2x3.npy", (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3))
save("f64_scalar.npy", np.array(3.25, dtype=np.float64))
save("i64_5.npy", np.arange(5, dtype=np.int64) * -7 + 3)  # 3 - 7 i
save("i32_2x2x3.npy", (np.arange(12, dtype=np.int32) - 6).reshape(2, 2, 3))  # i - 6
save("u8_4.npy", np.array([0, 1, 128, 255], dtype=np.uint8))
save("bool_2x2.npy", np.array([[True, False], [False, True]]))  # i % 3 == 0
save("f32_empty_0x4.npy", np.zeros((0, 4), dtype=np.float32))
save("f64_v2_3.npy", np.arange(3, dtype=np.float64) / 4, version=(2, 0))  # i / 4, format 2.0
save("f16_3.npy", np.arange(3, dtype=np.float16))
# Rejected by tessera, each for its own reason:
save("fortran_2x3.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
save("bigendian_3.npy", np.arange(3, dtype=">f4"))
save("u16_3.npy", np.arange(3, dtype=np.uint16))

with open(os.path.join(out, "VERSION"), "w") as f:
    f.write(f"numpy {np.__version__}\n")
print("wrote", sorted(os.listdir(out)))
