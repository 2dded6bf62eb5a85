"""Skip a GPU test module unless CuPy imports and sees a CUDA device (CI has none); the checks of
verify.py's GPU path, which must pass wherever that path runs (on a GPU, or on the unit tests' FakeCupy)."""

from __future__ import annotations

from typing import Any

import pytest

GPU_CHECKS = (
    "gpu_present",
    "driver",
    "cupy",
    "cupy_cuda",
    "kernel_compile",
    "matmul_exact_2048",
    "matmul_vs_cublas",
)


def require_cuda_device() -> Any:
    """CuPy, or a module-level skip saying what is missing."""
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device", allow_module_level=True)
    except Exception as exc:
        pytest.skip(f"no usable CUDA device: {exc}", allow_module_level=True)
    return cupy
