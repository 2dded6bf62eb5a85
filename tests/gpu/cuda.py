"""Skip a GPU test module's tests unless CuPy imports and sees a CUDA device (CI has none); the
checks of verify.py's GPU path, which must pass wherever that path runs (on a GPU, or on the unit
tests' FakeCupy)."""

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


def missing_cuda_device() -> str | None:
    """None when CuPy imports and sees a CUDA device, else what is missing."""
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError as exc:
        return f"CuPy does not import: {exc}"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:
        return f"no usable CUDA device: {exc}"
    return None


def gpu_module_marks() -> list[Any]:
    """`pytestmark` of a GPU test module: the `gpu` marker, and every test skipped (collected and
    counted, each with the reason) where there is no CUDA device."""
    missing = missing_cuda_device()
    return [pytest.mark.gpu, pytest.mark.skipif(missing is not None, reason=f"no GPU: {missing}")]
