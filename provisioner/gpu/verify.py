#!/usr/bin/env python3
"""Prove a GPU host works the way chapter 0 of the book says it should, and say why when it does not.

Shipped to each GPU host and run there with a Python that has CuPy:

    python3 verify.py --json [--sizes 1024,4096] [--repeats N] [--perf-table gpu_perf.json] [--quick]

It prints ONE JSON document on stdout and exits 0 when every check passed, 1 when a check failed and
2 when it could not run at all (the "diagnosis" key then says why and how to fix it).  It needs only
the standard library to start: numpy and cupy are imported inside functions, so the pure functions
(parsers, diagnosis, expected-performance lookup) run and are unit-tested on machines without them.
Keep it Python 3.8 compatible: it runs with whatever python3 the host has.
"""

# The host's python3 may be 3.8: typing.List/Optional stay (the project's py310 target does not apply here).

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

_T0 = time.perf_counter()

SCHEMA_VERSION = 1
EXIT_OK, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 2
MIN_RUST = (1, 75)
ACCEPTED_CUDA_MAJORS = (12, 13)
REL_ERR_LIMIT = 1e-5
SLOW_FRACTION = 0.5  # warn when a GPU gives less than this fraction of what its model should
NVIDIA_VENDOR = "0x10de"
QUERY_FIELDS = (
    "index",
    "name",
    "memory.used",
    "memory.total",
    "utilization.gpu",
    "temperature.gpu",
    "driver_version",
)

# The chapter's kernel, verbatim in spirit: one thread per output element, launched in 16x16 blocks.
# The tiled kernel is the classic 32x32 shared-memory version, there to show what the naive one leaves.
# `fill` is here so that no CuPy-generated kernel (each its own NVRTC compile on a cold host) is needed.
KERNELS_SRC = r"""
extern "C" __global__ void matmul(const float* A, const float* B, float* C, int M, int N, int K) {
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row < M && col < N) {
        float sum = 0.0f;
        for (int i = 0; i < K; i++) {
            sum += A[row * K + i] * B[i * N + col];
        }
        C[row * N + col] = sum;
    }
}

extern "C" __global__ void fill(float* p, float value, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        p[i] = value;
    }
}

#define TILE 32
extern "C" __global__ void matmul_tiled(const float* A, const float* B, float* C, int M, int N, int K) {
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty;
    int col = blockIdx.x * TILE + tx;
    float sum = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        As[ty][tx] = (row < M && t + tx < K) ? A[row * K + t + tx] : 0.0f;
        Bs[ty][tx] = (t + ty < K && col < N) ? B[(t + ty) * N + col] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < TILE; k++) {
            sum += As[ty][k] * Bs[k][tx];
        }
        __syncthreads();
    }
    if (row < M && col < N) {
        C[row * N + col] = sum;
    }
}
"""

# The chapter's single-thread CPU matmul, std only (no ndarray) so rustc alone can build it.  It stops
# after a time budget and reports how many rows it did, so the figure is extrapolated, never waited for.
RUST_MATMUL_SRC = r"""
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let budget_ms: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000.0);
    let a = black_box(vec![1.0f32; n * n]);
    let b = black_box(vec![2.0f32; n * n]);
    let mut c = vec![0.0f32; n * n];
    let start = Instant::now();
    let mut rows = 0;
    for i in 0..n {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..n {
                sum += a[i * n + p] * b[p * n + j];
            }
            c[i * n + j] = sum;
        }
        rows = i + 1;
        if start.elapsed().as_secs_f64() * 1000.0 > budget_ms {
            break;
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let ok = c[..rows * n].iter().all(|&x| x == 2.0 * n as f32);
    println!("rows={} n={} ms={:.3} ok={}", rows, n, ms, ok);
}
"""

Check = Dict[str, Any]
Diagnosis = Dict[str, str]


# --------------------------------------------------------------------------------------------------
# Pure parsers (tested against outputs captured on a real H100 host)
# --------------------------------------------------------------------------------------------------

_FRIENDLY_FIELDS = {
    "memory.total": "memory_total_mib",
    "memory.used": "memory_used_mib",
    "memory.free": "memory_free_mib",
    "utilization.gpu": "utilization_pct",
    "temperature.gpu": "temperature_c",
    "pci.bus_id": "pci_bus_id",
    "clocks.max.sm": "clock_max_sm_mhz",
    "clocks.sm": "clock_sm_mhz",
    "power.limit": "power_limit_w",
    "power.draw": "power_draw_w",
}
_TEXT_FIELDS = {"name", "uuid", "pci.bus_id", "driver_version", "compute_cap"}


def _field_value(field: str, raw: str) -> Any:
    """Turn one nvidia-smi CSV cell into a number or text; '[N/A]' and friends become None."""
    raw = raw.strip()
    if raw in ("", "N/A", "[N/A]", "[Not Supported]", "Not Supported", "[Unknown Error]"):
        return None
    if field in _TEXT_FIELDS:
        return raw
    m = re.match(r"^(-?\d+(?:\.\d+)?)\s*(?:MiB|%|W|MHz|C)?$", raw)
    if not m:
        return raw
    number = float(m.group(1))
    return int(number) if number.is_integer() and "." not in m.group(1) else number


def parse_nvidia_smi_query(text: str, fields: Sequence[str] = QUERY_FIELDS) -> List[Dict[str, Any]]:
    """Parse `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` into one dict per GPU.

    With a header line the columns come from it (units in brackets dropped); without, from `fields`.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    rows = list(csv.reader(lines, skipinitialspace=True))
    columns = list(fields)
    first = [cell.strip() for cell in rows[0]]
    if "name" in first or any(cell.startswith("memory.") for cell in first):
        columns = [re.sub(r"\s*\[.*\]$", "", cell) for cell in first]
        rows = rows[1:]
    gpus = []
    for cells in rows:
        if len(cells) != len(columns):
            continue  # an error line such as 'Field "compute_cap" is not a valid field to query.'
        gpu = {}
        for field, cell in zip(columns, cells):
            gpu[_FRIENDLY_FIELDS.get(field, field.replace(".", "_"))] = _field_value(field, cell)
        gpus.append(gpu)
    return gpus


def parse_nvidia_smi_versions(text: str) -> Dict[str, Optional[str]]:
    """Read driver and CUDA versions from plain `nvidia-smi` (or `-q`): the chapter's 'CUDA Version: 13.0'."""
    driver = re.search(r"Driver Version\s*:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version\s*:\s*([\d.]+)", text)
    return {
        "driver_version": driver.group(1) if driver else None,
        "cuda_version": cuda.group(1) if cuda else None,
    }


def parse_nvcc_release(text: str) -> Optional[str]:
    """'Cuda compilation tools, release 13.0, V13.0.88' → '13.0' (what the checklist compares)."""
    m = re.search(r"release\s+(\d+\.\d+)", text)
    return m.group(1) if m else None


def parse_version(text: str) -> Optional[Tuple[int, ...]]:
    """First dotted version in a tool's banner: 'rustc 1.83.0 (90b35a623 2024-11-26)' → (1, 83, 0)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return tuple(int(part) for part in m.groups() if part is not None)


def version_at_least(found: Optional[Sequence[int]], minimum: Sequence[int]) -> bool:
    """Compare versions as integer tuples, so 1.100 > 1.75 (string comparison gets that wrong)."""
    if found is None:
        return False
    width = max(len(found), len(minimum))
    return tuple(found) + (0,) * (width - len(found)) >= tuple(minimum) + (0,) * (width - len(minimum))


def parse_driver_proc_version(text: str) -> Optional[str]:
    """/proc/driver/nvidia/version: 'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04'."""
    m = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else None


def parse_cudnn_version_header(text: str) -> Optional[str]:
    """cudnn_version.h (cuDNN >= 8) or cudnn.h (older) → '9.14.0'."""
    parts = []
    for key in ("CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL"):
        m = re.search(rf"#define\s+{key}\s+(\d+)", text)
        if not m:
            return None
        parts.append(m.group(1))
    return ".".join(parts)


def parse_ldconfig(text: str) -> Dict[str, str]:
    """`ldconfig -p` → {soname: path}; the first entry wins, as it does for the dynamic loader."""
    libs: Dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+\(.*\)\s+=>\s+(\S+)", line)
        if m and m.group(1) not in libs:
            libs[m.group(1)] = m.group(2)
    return libs


def parse_sysfs_pci_listing(text: str) -> List[Dict[str, str]]:
    """Lines 'slot vendor device class' (as captured from /sys/bus/pci/devices/*/{vendor,device,class})."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            entries.append(
                {
                    "slot": parts[0],
                    "vendor": parts[1].lower(),
                    "device": parts[2].lower(),
                    "class": parts[3].lower(),
                }
            )
    return entries


def read_sysfs_pci(root: str = "/sys/bus/pci/devices") -> Optional[List[Dict[str, str]]]:
    """Read every PCI device's vendor/device/class from sysfs; None when sysfs is not there to ask."""
    base = Path(root)
    if not base.is_dir():
        return None
    entries = []
    for dev in sorted(base.iterdir()):
        info = {"slot": dev.name}
        for key in ("vendor", "device", "class"):
            try:
                info[key] = (dev / key).read_text().strip().lower()
            except OSError:
                info[key] = ""
        entries.append(info)
    return entries


def nvidia_gpus_from_pci(entries: Sequence[Dict[str, str]]) -> List[Dict[str, str]]:
    """NVIDIA display controllers only (class 0x03xxxx): a card's HDMI audio function is not a GPU."""
    return [e for e in entries if e.get("vendor") == NVIDIA_VENDOR and e.get("class", "").startswith("0x03")]


def parse_rust_output(text: str) -> Optional[Dict[str, Any]]:
    """'rows=250 n=1024 ms=501.2 ok=true' → the full-matrix time, extrapolated from the rows done."""
    m = re.search(r"rows=(\d+)\s+n=(\d+)\s+ms=([\d.]+)\s+ok=(\w+)", text)
    if not m:
        return None
    rows, n, ms = int(m.group(1)), int(m.group(2)), float(m.group(3))
    if rows == 0:
        return None
    return {"rows": rows, "n": n, "ms": ms * n / rows, "ok": m.group(4) == "true"}


def gflops(n: int, ms: float) -> float:
    """2 n^3 floating-point operations per square matmul, as the chapter counts them."""
    return 2.0 * n**3 / (ms * 1e-3) / 1e9 if ms > 0 else 0.0


def format_cuda_version(value: int) -> str:
    """CUDA's integer versions: 13000 → '13.0', 12080 → '12.8'."""
    return f"{value // 1000}.{(value % 1000) // 10}"


# --------------------------------------------------------------------------------------------------
# Expected performance (the table is controller data, passed in as JSON)
# --------------------------------------------------------------------------------------------------


def load_perf_table(path: str) -> Dict[str, Any]:
    """Read the expected-performance table: JSON always; YAML only if PyYAML happens to be there."""
    text = Path(path).read_text()
    if path.endswith((".yml", ".yaml")):
        import yaml  # optional convenience for manual runs; the controller ships JSON

        return yaml.safe_load(text)
    return json.loads(text)


def lookup_expected_perf(
    gpu_name: str, table: Optional[Union[Dict[str, Any], List[Any]]]
) -> Optional[Dict[str, Any]]:
    """The first table row whose `match` regex finds the GPU's name (case-insensitive); None if unknown."""
    if not table or not gpu_name:
        return None
    rows = table.get("gpus", []) if isinstance(table, dict) else table
    for row in rows:
        pattern = row.get("match")
        if pattern and re.search(pattern, gpu_name, re.IGNORECASE):
            return dict(row)
    return None


def perf_warnings(
    gpu_name: str,
    perf: Sequence[Dict[str, Any]],
    expected: Optional[Dict[str, Any]],
    fraction: float = SLOW_FRACTION,
) -> List[str]:
    """One warning per measured (kernel, n) giving less than `fraction` of the model's expected GFLOP/s."""
    if not expected:
        return []
    warnings = []
    for row in perf:
        want = expected.get(f"{row.get('kernel')}_{row.get('n', 0)}_gflops")
        got = row.get("gflops")
        if not want or got is None or got >= fraction * want:
            continue
        warnings.append(
            f"{gpu_name}: {row['kernel']} at n={row['n']} gave {got / 1000:.1f} TFLOP/s, less than half the "
            f"{want / 1000:.1f} TFLOP/s expected for {expected.get('model', '?')} "
            f"({expected.get('source', 'estimate')}): check clocks and throttling "
            "(nvidia-smi -q -d CLOCK,PERFORMANCE), power limit, cooling, and the PCIe link "
            "(nvidia-smi -q | grep -A2 'Link Width')"
        )
    return warnings


# --------------------------------------------------------------------------------------------------
# Diagnosis: the chapter's troubleshooting list as a pure function
# --------------------------------------------------------------------------------------------------

FIXES = {
    "no_gpu": (
        "This host has no NVIDIA GPU: check `lspci | grep -i nvidia`, that the card is seated and powered "
        "(or passed through to the VM), or take the host out of the inventory's GPU group."
    ),
    "no_driver": (
        "Install the NVIDIA driver (our nvidia_driver role, or `sudo ubuntu-drivers install` on Ubuntu) and "
        "reboot; `nvidia-smi` must print the driver and CUDA versions and /proc/driver/nvidia/version must "
        "exist (if not: `sudo modprobe nvidia`, and check Secure Boot)."
    ),
    "driver_not_built": (
        "The nvidia module is not built for the running kernel {kernel} (a kernel update that DKMS did not "
        "build it for, usually for want of headers): `sudo apt-get install linux-headers-{kernel}` (dnf: "
        "kernel-devel-{kernel}) and `sudo dkms autoinstall -k {kernel}` (our nvidia_driver role does both), "
        "then `sudo modprobe nvidia`; or boot the kernel it is built for ({built})."
    ),
    "no_device_visible": (
        "CUDA sees no device although one is on the PCI bus: check CUDA_VISIBLE_DEVICES, that the nvidia "
        "module is loaded (`lsmod | grep nvidia`) and that the user may open /dev/nvidia*."
    ),
    "nvcc_not_found": (
        "Put the CUDA compiler on PATH: export PATH=/usr/local/cuda/bin:$PATH (our cuda_toolkit role writes "
        "/etc/profile.d/cuda.sh); if /usr/local/cuda/bin/nvcc is absent, install the toolkit "
        "(cuda-toolkit-13-0 from NVIDIA's apt repository)."
    ),
    "libcudart_missing": (
        "Make the CUDA runtime findable: put /usr/local/cuda/lib64 in /etc/ld.so.conf.d/cuda.conf and run "
        "`sudo ldconfig` (our cuda_toolkit role does), or export "
        "LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH."
    ),
    "libnvrtc_missing": (
        "Make NVRTC (the run-time CUDA compiler CuPy and cudarc use) findable: put /usr/local/cuda/lib64 in "
        "/etc/ld.so.conf.d/cuda.conf and run `sudo ldconfig`, or export "
        "LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH."
    ),
    "cuda_lib_missing": (
        "A CUDA library is not on the loader path: put /usr/local/cuda/lib64 in /etc/ld.so.conf.d/cuda.conf "
        "and run `sudo ldconfig`, or set LD_LIBRARY_PATH."
    ),
    "out_of_memory": (
        "Free GPU memory: list who holds it with "
        "`nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv` and stop those jobs, "
        "or rerun with smaller --sizes (e.g. 1024). Do not "
        "`nvidia-smi --gpu-reset` a GPU others are using."
    ),
    "cupy_cuda_mismatch": (
        "Install the CuPy wheel built for this host's CUDA: `pip install cupy-cuda{want}x` (and "
        "`pip uninstall cupy-cuda{have}x`), or upgrade the driver so nvidia-smi's 'CUDA Version' is at least "
        "CuPy's."
    ),
    "cupy_missing": (
        "Install CuPy into the Python that runs this check: `pip install cupy-cuda{want}x` "
        "(the major version of nvidia-smi's 'CUDA Version')."
    ),
    "numpy_missing": "Install NumPy into the Python that runs this check: `pip install numpy`.",
    "nvrtc_compile_error": (
        "The kernel did not compile with NVRTC: read the log; usually NVRTC is older than the GPU "
        "architecture (upgrade the CUDA toolkit or the cupy-cudaNNx wheel)."
    ),
    "cc_link_failed": (
        "Install the C toolchain Rust links with: "
        "`sudo apt-get install build-essential pkg-config libssl-dev` "
        "(dnf: gcc gcc-c++ make pkgconf-pkg-config openssl-devel)."
    ),
    "unknown": "Unrecognised failure: read 'error' in the JSON result and the host's `dmesg` for Xid errors.",
}

_LIB_MISSING = re.compile(r"(lib[\w+.-]*?\.so(?:\.(\d+))?(?:\.[\d.]+)?)\s*:\s*cannot open shared object file")


def _cuda_major(version: Optional[str]) -> Optional[int]:
    if not version:
        return None
    m = re.match(r"(\d+)", str(version))
    return int(m.group(1)) if m else None


def _diag(code: str, reason: str, **fmt: Any) -> Diagnosis:
    fix = FIXES[code]
    if fmt:
        fix = fix.format(**fmt)
    return {"code": code, "reason": reason, "fix": fix}


def _not_built(ctx: Dict[str, Any]) -> Diagnosis:
    kernel = ctx.get("kernel") or "?"
    built = ", ".join(ctx.get("built_kernels") or []) or "none"
    return _diag("driver_not_built", f"driver not built for this kernel: no nvidia module for {kernel} "
                 f"(built for: {built})", kernel=kernel, built=built)


# Where a kernel's nvidia module lives (DKMS, RHEL's extra/, Ubuntu's prebuilt packages, the runfile);
# provisioner/host/kernel_facts.py reads the same places (this file stays standalone).
NVIDIA_MODULE_GLOBS = ("updates/dkms/nvidia.ko*", "extra/nvidia.ko*", "extra/*/nvidia.ko*", "updates/nvidia.ko*",
                       "kernel/nvidia*/nvidia.ko*", "kernel/drivers/video/nvidia.ko*")


def kernels_with_nvidia_module(root: str = "/lib/modules") -> List[str]:
    """The installed kernels an nvidia module is built for."""
    return sorted(os.path.basename(k) for k in glob.glob(os.path.join(root, "*"))
                  if any(glob.glob(os.path.join(k, pattern)) for pattern in NVIDIA_MODULE_GLOBS))


def diagnose(
    exc_or_text: Union[BaseException, str, None], context: Optional[Dict[str, Any]] = None
) -> Diagnosis:
    """Map an exception or an error message to {code, reason, fix}, following the chapter's troubleshooting.

    `context` may hold what is known about the host: driver_cuda ('13.0'), cupy_cuda ('12.8'),
    toolkit_cuda (nvcc's release), pci_gpus (count), driver_loaded (bool), sizes (list of n).
    """
    ctx = context or {}
    if isinstance(exc_or_text, BaseException):
        text = f"{type(exc_or_text).__name__}: {exc_or_text}"
    else:
        text = exc_or_text or ""
    low = text.lower()
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    driver_major = _cuda_major(ctx.get("driver_cuda"))
    host_major = _cuda_major(ctx.get("toolkit_cuda")) or driver_major
    cupy_major = _cuda_major(ctx.get("cupy_cuda"))
    want = host_major or 13

    if "no nvidia gpu" in low:
        return _diag("no_gpu", first_line)
    if "no module named 'cupy" in low or "no module named cupy" in low:
        return _diag(
            "cupy_missing", f"CuPy is not installed for {ctx.get('python', 'this Python')}", want=want
        )
    if "no module named 'numpy" in low:
        return _diag("numpy_missing", first_line)
    not_built = ctx.get("module_built") is False and ctx.get("driver_loaded") is False
    if (
        "nvidia-smi has failed" in low
        or "couldn't communicate with the nvidia driver" in low
        or ("nvidia-smi" in low and ("not found" in low or "no such file" in low))
        or "libcuda.so" in low
        or ("stub library" in low or "cudaerrorstublibrary" in low)
    ):
        if not_built:
            return _not_built(ctx)
        return _diag("no_driver", first_line)
    if "cudaerrornodevice" in low or "no cuda-capable device" in low:
        if ctx.get("pci_gpus") == 0:
            return _diag("no_gpu", "CUDA found no device and there is no NVIDIA GPU on the PCI bus")
        if not_built:
            return _not_built(ctx)
        if ctx.get("driver_loaded") is False:
            return _diag("no_driver", "CUDA found no device: the NVIDIA driver is not loaded")
        return _diag("no_device_visible", first_line)
    if (
        ("insufficient" in low and "driver" in low)
        or "cudaerrorinsufficientdriver" in low
        or ("unsupported_ptx_version" in low or "unsupported toolchain" in low)
    ):
        reason = (
            f"CuPy's CUDA {ctx.get('cupy_cuda', '?')} is newer than the driver supports "
            f"({ctx.get('driver_cuda', '?')}): {first_line}"
        )
        return _diag("cupy_cuda_mismatch", reason, want=driver_major or want, have=cupy_major or "NN")
    lib = _LIB_MISSING.search(text)
    if lib:
        name, lib_major = lib.group(1), int(lib.group(2)) if lib.group(2) else None
        if lib_major and host_major and lib_major != host_major and lib_major >= 10:
            reason = f"CuPy looks for CUDA {lib_major} libraries ({name}) but this host has CUDA {host_major}"
            return _diag("cupy_cuda_mismatch", reason, want=host_major, have=lib_major)
        if name.startswith("libcudart"):
            return _diag("libcudart_missing", f"{name}: cannot open shared object file")
        if name.startswith("libnvrtc"):
            return _diag("libnvrtc_missing", f"{name}: cannot open shared object file")
        return _diag("cuda_lib_missing", f"{name}: cannot open shared object file")
    if "nvcc" in low and ("not found" in low or "no such file" in low):
        return _diag("nvcc_not_found", "nvcc is not on PATH")
    if "outofmemory" in low or "out of memory" in low or "cudaerrormemoryallocation" in low:
        sizes = ctx.get("sizes")
        reason = "CUDA out of memory" + (f" (sizes {','.join(str(s) for s in sizes)})" if sizes else "")
        return _diag("out_of_memory", f"{reason}: {first_line}")
    if (
        "compileexception" in low
        or "nvrtc_error" in low
        or "nvrtc: error" in low
        or ("error: " in low and "nvrtc" in low)
    ):
        errors = [line.strip() for line in text.splitlines() if "error" in line.lower()]
        return _diag("nvrtc_compile_error", "NVRTC could not compile the kernel: " + "; ".join(errors[:3]))
    if "linking with `cc` failed" in low or "linker `cc` not found" in low:
        return _diag("cc_link_failed", first_line)
    if cupy_major and driver_major and cupy_major > driver_major:
        reason = (
            f"CuPy is built for CUDA {ctx.get('cupy_cuda')} but the driver supports only "
            f"CUDA {ctx.get('driver_cuda')}"
        )
        return _diag("cupy_cuda_mismatch", reason, want=driver_major, have=cupy_major)
    return _diag("unknown", first_line or "no error text")


# Failed checks map onto a diagnosis so a result with exit code 1 still says what to do first.
CHECK_CODES = {
    "gpu_present": "no_gpu",
    "driver": "no_driver",
    "nvcc": "nvcc_not_found",
    "libcudart": "libcudart_missing",
    "libnvrtc": "libnvrtc_missing",
    "cupy": "cupy_missing",
    "cupy_cuda": "cupy_cuda_mismatch",
    "kernel_compile": "nvrtc_compile_error",
    "cc": "cc_link_failed",
}
CHECK_FIXES = {
    "rustc": (
        "Install Rust with rustup (our rust role): "
        "`curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && rustup default stable`; "
        "if it is too old: `rustup update stable`."
    ),
    "cargo": "cargo comes with rustup: `rustup update stable` (distro cargo older than 1.75 is too old).",
    "cudnn": (
        "Install cuDNN: libcudnn9-cuda-13 and libcudnn9-dev-cuda-13 from NVIDIA's repository, the tar.xz "
        "archive copied into /usr/local/cuda/{include,lib64}, or `pip install nvidia-cudnn-cu13`."
    ),
    "matmul_exact_2048": (
        "The GPU computed wrong results: look for Xid errors in `dmesg`, ECC errors in "
        "`nvidia-smi -q -d ECC`, and any overclock; if it persists, the card needs service."
    ),
    "matmul_vs_cublas": (
        "The naive kernel disagrees with cuBLAS: check that TF32 is off (CUPY_TF32, "
        "NVIDIA_TF32_OVERRIDE) and look for Xid/ECC errors as for wrong results."
    ),
}


def check(name: str, ok: Optional[bool], detail: str, fix: Optional[str] = None) -> Check:
    """One line of the checklist; `ok` None means not applicable here, and a fix is given only on failure."""
    if ok is False and fix is None:
        fix = CHECK_FIXES.get(name) or FIXES.get(CHECK_CODES.get(name, "unknown"), FIXES["unknown"])
    return {"name": name, "ok": ok, "detail": detail, "fix": fix if ok is False else None}


def cuda_version_check(release: Optional[str], driver_cuda: Optional[str]) -> Check:
    """nvcc's release must be 12.x or 13.x and no newer than what the driver supports."""
    if release is None:
        return check("nvcc", False, "nvcc --version printed no release")
    major = _cuda_major(release)
    if major not in ACCEPTED_CUDA_MAJORS:
        accepted = " or ".join(f"{m}.x" for m in ACCEPTED_CUDA_MAJORS)
        return check(
            "nvcc",
            False,
            f"CUDA release {release}; the checklist accepts {accepted}",
            f"Install a CUDA {ACCEPTED_CUDA_MAJORS[-1]}.x toolkit (our cuda_toolkit role).",
        )
    drv = parse_version(driver_cuda or "")
    if drv is not None and not version_at_least(drv, parse_version(release) or (0,)):
        return check(
            "nvcc",
            False,
            f"CUDA release {release} is newer than the driver supports ({driver_cuda})",
            f"Upgrade the NVIDIA driver to one whose nvidia-smi shows 'CUDA Version: {release}' or later, or "
            f"install the CUDA {driver_cuda} toolkit.",
        )
    return check("nvcc", True, f"release {release}")


def rust_tool_check(name: str, banner: Optional[str]) -> Check:
    """rustc/cargo must exist and be at least 1.75, as the chapter's checklist says."""
    if banner is None:
        return check(name, False, f"{name} not found (PATH, ~/.cargo/bin)")
    version = parse_version(banner)
    shown = ".".join(str(v) for v in version) if version else banner.strip()
    if not version_at_least(version, MIN_RUST):
        return check(name, False, f"{name} {shown} is older than {MIN_RUST[0]}.{MIN_RUST[1]}")
    return check(name, True, f"{name} {shown}")


# --------------------------------------------------------------------------------------------------
# Host probes (subprocesses started early so they overlap the CuPy import)
# --------------------------------------------------------------------------------------------------


def _which(name: str, extra_dirs: Sequence[str] = ()) -> Tuple[Optional[str], bool]:
    """(path, on_PATH): rustup's ~/.cargo/bin and /usr/local/cuda/bin are not on a non-login shell's PATH."""
    found = shutil.which(name)
    if found:
        return found, True
    for directory in extra_dirs:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate, False
    return None, False


class Probe:
    """A command started at once and read later; a missing program reads as rc None plus a reason."""

    def __init__(self, argv: Sequence[str], timeout: float = 15.0) -> None:
        self.timeout = timeout
        self.proc: Optional[subprocess.Popen] = None
        self.error = ""
        env = dict(os.environ, LC_ALL="C")
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=env,
                universal_newlines=True,
            )
        except OSError as exc:
            self.error = f"{argv[0]}: {exc.strerror or exc}"
        self._result: Optional[Tuple[Optional[int], str, str]] = None

    def result(self) -> Tuple[Optional[int], str, str]:
        """(rc, stdout, stderr); rc None when the program could not be started or timed out."""
        if self._result is None:
            if self.proc is None:
                self._result = (None, "", self.error)
            else:
                try:
                    out, err = self.proc.communicate(timeout=self.timeout)
                    self._result = (self.proc.returncode, out, err)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    out, err = self.proc.communicate()
                    self._result = (None, out, f"timed out after {self.timeout:.0f} s")
        return self._result


def _probe_if(path: Optional[str], *args: str) -> Optional[Probe]:
    return Probe([path] + list(args)) if path else None


def _cuda_dirs(sub: str) -> List[str]:
    return sorted(glob.glob("/usr/local/cuda*/" + sub), reverse=True)


def find_cudnn(ld_libs: Dict[str, str], site_dirs: Sequence[str]) -> Check:
    """cuDNN headers and libraries, wherever the chapter, the distro packages or pip wheels put them."""
    arch = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(platform.machine(), "")
    header_dirs = _cuda_dirs("include") + ["/usr/include"] + (["/usr/include/" + arch] if arch else [])
    wheel_dirs = [os.path.join(d, "nvidia", "cudnn") for d in site_dirs]
    headers: List[str] = []
    for directory in header_dirs + [os.path.join(w, "include") for w in wheel_dirs]:
        headers += sorted(glob.glob(os.path.join(directory, "cudnn_version*.h")))
        headers += glob.glob(os.path.join(directory, "cudnn.h"))
    version = None
    for header in headers:
        try:
            version = parse_cudnn_version_header(Path(header).read_text(errors="replace"))
        except OSError:
            continue
        if version:
            break
    libs = [path for name, path in ld_libs.items() if name.startswith("libcudnn.so")]
    for directory in _cuda_dirs("lib64") + [os.path.join(w, "lib") for w in wheel_dirs]:
        libs += glob.glob(os.path.join(directory, "libcudnn.so*"))
    if headers and libs:
        return check(
            "cudnn", True, "cuDNN {} (header {}, library {})".format(version or "?", headers[0], libs[0])
        )
    missing = " and ".join(part for part, have in (("headers", headers), ("libraries", libs)) if not have)
    return check("cudnn", False, f"cuDNN {missing} not found")


def find_cuda_library(name: str, ld_libs: Dict[str, str]) -> Check:
    """libcudart and libnvrtc must be found by the dynamic loader (ldconfig or LD_LIBRARY_PATH)."""
    stem = name + ".so"
    for soname, path in ld_libs.items():
        if soname.startswith(stem):
            return check(name, True, f"{path} (ldconfig)")
    for directory in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        hits = glob.glob(os.path.join(directory, stem + "*")) if directory else []
        if hits:
            return check(name, True, f"{hits[0]} (LD_LIBRARY_PATH)")
    on_disk = []
    for directory in _cuda_dirs("lib64") + _cuda_dirs("targets/*/lib"):
        on_disk += glob.glob(os.path.join(directory, stem + "*"))
    where = f" (present at {on_disk[0]} but not registered)" if on_disk else ""
    return check(name, False, f"{stem} not found by the dynamic loader{where}")


def _profile_adds_cuda_path() -> bool:
    for script in glob.glob("/etc/profile.d/*.sh"):
        try:
            text = Path(script).read_text(errors="replace")
        except OSError:
            continue
        if "cuda" in text and "PATH" in text:
            return True
    return False


# --------------------------------------------------------------------------------------------------
# The GPU part (numpy and cupy imported here only)
# --------------------------------------------------------------------------------------------------


def _time_gpu(
    cp: Any, fn: Callable[..., Any], args: Tuple[Any, ...], repeats: Optional[int], budget_ms: float = 60.0
) -> Tuple[float, int]:
    """Median ms per call, timed with CUDA events; repeats adapt so a slow kernel is not run fifty times.

    Short calls are batched between one pair of events so launch latency does not inflate them.
    """
    start, end = cp.cuda.Event(), cp.cuda.Event()
    fn(*args)  # warm-up: first-call costs (cuBLAS heuristics, module load) stay out of the figures
    start.record()
    fn(*args)
    end.record()
    end.synchronize()
    estimate = max(cp.cuda.get_elapsed_time(start, end), 1e-3)
    inner = max(1, min(50, int(1.0 / estimate)))
    count = repeats or max(3, min(30, int(budget_ms / (estimate * inner))))
    events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(count)]
    for begin, finish in events:
        begin.record()
        for _ in range(inner):
            fn(*args)
        finish.record()
    events[-1][1].synchronize()
    per_call = [cp.cuda.get_elapsed_time(begin, finish) / inner for begin, finish in events]
    return statistics.median(per_call), count * inner


def _perf_row(kernel: str, n: int, ms: float, calls: int, **extra: Any) -> Dict[str, Any]:
    row = {"kernel": kernel, "n": n, "ms": round(ms, 4), "gflops": round(gflops(n, ms), 1), "calls": calls}
    row.update(extra)
    return row


def run_gpu(
    cp: Any, np: Any, sizes: Sequence[int], repeats: Optional[int], device: int, stage: Dict[str, str]
) -> Dict[str, Any]:
    """Compile, prove correct and time the chapter's kernel, a tiled one and cuBLAS on one device.

    `stage` records how far it got, so a failure is charged to the right check (device, compile, run).
    """
    out: Dict[str, Any] = {"perf": []}
    stage["at"] = "device"
    dev = cp.cuda.Device(device)
    dev.use()
    props = cp.cuda.runtime.getDeviceProperties(device)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    free, total = cp.cuda.runtime.memGetInfo()
    out["device"] = {
        "index": device,
        "name": name,
        "compute_capability": f"{props['major']}.{props['minor']}",
        "multiprocessors": props.get("multiProcessorCount"),
        "memory_total_mib": total // 2**20,
        "memory_free_mib": free // 2**20,
    }

    stage["at"] = "compile"
    t = time.perf_counter()
    module = cp.RawModule(code=KERNELS_SRC)
    naive_fn = module.get_function("matmul")  # NVRTC runs here (or CuPy's on-disk cache answers)
    tiled_fn = module.get_function("matmul_tiled")
    fill_fn = module.get_function("fill")
    out["compile_s"] = round(time.perf_counter() - t, 4)
    stage["at"] = "run"

    # Only our module and cuBLAS run on the GPU; comparisons happen in NumPy on the host. Each CuPy
    # elementwise or reduction kernel would be one more NVRTC compile on a fresh host's first run.
    def filled(n: int, value: float) -> Any:
        x = cp.empty((n, n), dtype=cp.float32)
        fill_fn(((x.size + 255) // 256,), (256,), (x, np.float32(value), np.int64(x.size)))
        return x

    def naive(a: Any, b: Any, c: Any) -> None:
        m, k = a.shape
        n = b.shape[1]
        naive_fn(((n + 15) // 16, (m + 15) // 16), (16, 16), (a, b, c, np.int32(m), np.int32(n), np.int32(k)))

    def tiled(a: Any, b: Any, c: Any) -> None:
        m, k = a.shape
        n = b.shape[1]
        tiled_fn(((n + 31) // 32, (m + 31) // 32), (32, 32), (a, b, c, np.int32(m), np.int32(n), np.int32(k)))

    def cublas(a: Any, b: Any, c: Any) -> None:
        cp.matmul(a, b, out=c)

    def rel_err(x: Any, ref: Any) -> float:
        return float(np.linalg.norm(x.astype(np.float64) - ref) / np.linalg.norm(ref))

    # The chapter's proof: ones times twos, every element of C exactly 2 * 1024.
    n = 1024
    a, b = filled(n, 1.0), filled(n, 2.0)
    c = cp.empty((n, n), dtype=cp.float32)
    naive(a, b, c)
    mismatches = int(np.count_nonzero(cp.asnumpy(c) != 2.0 * n))
    tiled(a, b, c)
    tiled_mismatches = int(np.count_nonzero(cp.asnumpy(c) != 2.0 * n))

    # Random inputs against cuBLAS in fp32 (TF32 forced off before import) and a float64 reference.
    rng = np.random.default_rng(0)
    a_host = rng.random((n, n), dtype=np.float32) * 2 - 1
    b_host = rng.random((n, n), dtype=np.float32) * 2 - 1
    a, b = cp.asarray(a_host), cp.asarray(b_host)
    ref = cp.empty((n, n), dtype=cp.float32)
    cublas(a, b, ref)
    naive(a, b, c)
    c_tiled = cp.empty((n, n), dtype=cp.float32)
    tiled(a, b, c_tiled)
    ref64 = cp.asnumpy(
        cp.matmul(cp.asarray(a_host.astype(np.float64)), cp.asarray(b_host.astype(np.float64)))
    )
    ref_host, c_host = cp.asnumpy(ref), cp.asnumpy(c)
    ref_host64 = ref_host.astype(np.float64)
    out["correctness"] = {
        "exact_2048": mismatches == 0,
        "mismatches": mismatches,
        "tiled_mismatches": tiled_mismatches,
        "rel_err_vs_cublas": rel_err(c_host, ref_host64),
        "tiled_rel_err_vs_cublas": rel_err(cp.asnumpy(c_tiled), ref_host64),
        "rel_err_vs_fp64": rel_err(c_host, ref64),
        "cublas_rel_err_vs_fp64": rel_err(ref_host, ref64),
        "cublas_compute_type": _cublas_compute_type(np),
    }
    del a, b, c, c_tiled, ref

    for n in sizes:
        a, b = filled(n, 0.5), filled(n, 0.25)
        c = cp.empty((n, n), dtype=cp.float32)
        for kernel, fn in (("naive", naive), ("tiled", tiled), ("cublas", cublas)):
            ms, calls = _time_gpu(cp, fn, (a, b, c), repeats)
            out["perf"].append(_perf_row(kernel, n, ms, calls))
        del a, b, c
        cp.get_default_memory_pool().free_all_blocks()
    return out


def _cublas_compute_type(np: Any) -> Optional[str]:
    """What CuPy will ask cuBLAS for with float32 (private API, so best effort): 'DEFAULT' means true fp32."""
    try:
        from cupy._core import _routines_linalg as linalg

        return str(linalg.compute_type_to_str(linalg.get_compute_type(np.float32)))
    except Exception:
        return None


def time_numpy(np: Any, n: int = 1024) -> Dict[str, Any]:
    """The host CPU's BLAS through NumPy, the chapter's Python comparison."""
    a = np.ones((n, n), dtype=np.float32)
    b = np.full((n, n), 2.0, dtype=np.float32)
    np.dot(a, b)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        np.dot(a, b)
        times.append((time.perf_counter() - t) * 1000)
    return _perf_row("numpy_cpu", n, statistics.median(times), 3)


def rust_benchmark(rustc: str, rustc_banner: str, n: int = 1024, budget_ms: float = 600.0) -> Dict[str, Any]:
    """Build (once, cached by source and compiler) and run the chapter's single-thread CPU matmul in Rust."""
    key = hashlib.sha256((RUST_MATMUL_SRC + rustc_banner).encode()).hexdigest()[:12]
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "provision-verify"
    binary = cache_dir / ("rust-matmul-" + key)
    with tempfile.TemporaryDirectory(prefix="provision-verify-") as tmp:
        if not binary.exists():
            src = Path(tmp) / "main.rs"
            src.write_text(RUST_MATMUL_SRC)
            built = Path(tmp) / "matmul"
            try:
                proc = subprocess.run(
                    [rustc, "-O", "-o", str(built), str(src)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return {"error": "rustc took longer than 60 s"}
            if proc.returncode != 0:
                return {"error": "rustc failed: " + proc.stderr.strip()[-400:]}
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(str(built), str(binary))
            except OSError:
                binary = built  # no writable cache: run it from the temporary directory
        try:
            proc = subprocess.run(
                [str(binary), str(n), str(budget_ms)],
                capture_output=True,
                text=True,
                timeout=budget_ms / 1000 + 10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": f"running the Rust matmul failed: {exc}"}
    parsed = parse_rust_output(proc.stdout)
    if parsed is None:
        return {"error": f"unexpected Rust output: {proc.stdout[-200:]!r}"}
    row = _perf_row("rust_cpu_1thread", n, parsed["ms"], 1, rows_timed=parsed["rows"])
    row["correct"] = parsed["ok"]
    return {"row": row}


# --------------------------------------------------------------------------------------------------
# The program
# --------------------------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The CLI; errors become a JSON diagnosis instead of argparse's usage text."""
    p = _Parser(
        description="Verify an NVIDIA GPU host: checklist, correctness and a matmul performance table."
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--sizes", default="1024,4096", help="matrix sizes to time, comma-separated")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per (kernel, n); adaptive if unset"
    )
    p.add_argument("--perf-table", default=None, help="expected-performance table (JSON) to compare with")
    p.add_argument("--quick", action="store_true", help="n=1024 only, no Rust CPU figure")
    p.add_argument("--device", type=int, default=0, help="CUDA device index to test")
    p.add_argument("--no-rust", action="store_true", help="skip the Rust single-thread CPU figure")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        raise _UsageError(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 16:
        raise _UsageError("--sizes must list sizes of at least 16")
    if args.quick:
        args.sizes = [1024]
    if args.repeats is not None and args.repeats < 1:
        raise _UsageError("--repeats must be at least 1")
    return args


def _site_dirs() -> List[str]:
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]


def _cupy_package(cuda_major: Optional[int]) -> Optional[str]:
    """Which wheel provides cupy ('cupy-cuda13x'), asked of a handful of names rather than a full scan."""
    try:
        from importlib import metadata
    except ImportError:
        return None
    names = [f"cupy-cuda{cuda_major}x"] if cuda_major else []
    names += ["cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"]
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def verify(args: argparse.Namespace) -> Tuple[Dict[str, Any], int]:
    """Everything the program does, as (result, exit code); main() only handles the streams."""
    result: Dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "program": "provision-gpu-verify",
        "ok": False,
        "exit_code": EXIT_CANNOT_RUN,
        "host": {
            "hostname": socket.gethostname(),
            "python": sys.version.split()[0],
            "python_executable": sys.executable,
            "platform": platform.platform(),
        },
        "gpus": [],
        "device": None,
        "checks": [],
        "perf": [],
        "expected": None,
        "correctness": None,
        "warnings": [],
        "diagnosis": None,
        "error": None,
        "timings": {"import_s": None, "compile_s": None, "total_s": None},
    }
    host, checks, warnings = result["host"], result["checks"], result["warnings"]
    home = os.path.expanduser("~")

    # Start every external command now; they finish while CuPy imports.
    smi_path, _ = _which("nvidia-smi", ["/usr/bin", "/usr/local/bin"])
    nvcc_path, nvcc_on_path = _which("nvcc", ["/usr/local/cuda/bin"] + _cuda_dirs("bin"))
    rustc_path, _ = _which("rustc", [os.path.join(home, ".cargo", "bin")])
    cargo_path, _ = _which("cargo", [os.path.join(home, ".cargo", "bin")])
    ldconfig_path, _ = _which("ldconfig", ["/sbin", "/usr/sbin"])
    probes = {
        "smi_query": _probe_if(
            smi_path, "--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"
        ),
        "smi": _probe_if(smi_path),
        "nvcc": _probe_if(nvcc_path, "--version"),
        "rustc": _probe_if(rustc_path, "--version"),
        "cargo": _probe_if(cargo_path, "--version"),
        "ldconfig": _probe_if(ldconfig_path, "-p"),
    }

    def probe_text(key: str) -> Optional[str]:
        probe = probes[key]
        if probe is None:
            return None
        rc, out, _err = probe.result()
        return out if rc == 0 else None

    pci = read_sysfs_pci()
    pci_gpus = nvidia_gpus_from_pci(pci) if pci is not None else None
    proc_version = None
    try:
        proc_version = parse_driver_proc_version(Path("/proc/driver/nvidia/version").read_text())
    except OSError:
        pass
    built_kernels = kernels_with_nvidia_module() if proc_version is None else []
    context: Dict[str, Any] = {
        "pci_gpus": None if pci_gpus is None else len(pci_gpus),
        "driver_loaded": proc_version is not None,
        "kernel": platform.release(),
        "built_kernels": built_kernels,
        # False only when a module is built for some other kernel: none at all means no driver installed
        "module_built": platform.release() in built_kernels if proc_version is None and built_kernels else None,
        "sizes": args.sizes,
        "python": sys.executable,
    }

    can_try_gpu = True
    if pci_gpus == [] and smi_path is None:
        can_try_gpu = False
        result["diagnosis"] = diagnose(
            "No NVIDIA GPU on this host: no PCI device with vendor 0x10de and class 0x03xxxx in "
            "/sys/bus/pci/devices, and no nvidia-smi",
            context,
        )
    elif proc_version is None and smi_path is None:
        can_try_gpu = False
        result["diagnosis"] = diagnose(
            "nvidia-smi: command not found and /proc/driver/nvidia/version is absent"
            + (" although an NVIDIA GPU is on the PCI bus" if pci_gpus else ""),
            context,
        )

    rust_thread: Optional[threading.Thread] = None
    rust_box: Dict[str, Any] = {}
    if can_try_gpu and rustc_path and not (args.quick or args.no_rust):
        banner = probe_text("rustc") or ""
        rust_thread = threading.Thread(
            target=lambda: rust_box.update(rust_benchmark(rustc_path, banner)), daemon=True
        )
        rust_thread.start()

    gpu: Optional[Dict[str, Any]] = None
    np: Any = None
    failed_at = ""
    if can_try_gpu:
        for var in ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE"):
            if os.environ.get(var, "0") not in ("0", ""):
                warnings.append(
                    f"{var}={os.environ[var]} was set; forced to 0 so cuBLAS compares in true fp32"
                )
        os.environ["CUPY_TF32"] = "0"
        os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
        t = time.perf_counter()
        stage = {"at": "import"}
        try:
            import cupy as cp
            import numpy as np

            result["timings"]["import_s"] = round(time.perf_counter() - t, 4)
            host["numpy"] = np.__version__
            host["cupy"] = cp.__version__
            runtime = cp.cuda.runtime.runtimeGetVersion()
            context["cupy_cuda"] = host["cupy_cuda_runtime"] = format_cuda_version(runtime)
            host["cupy_cuda_driver"] = format_cuda_version(cp.cuda.runtime.driverGetVersion())
            host["cupy_package"] = _cupy_package(runtime // 1000)
            try:
                host["nvrtc"] = "{}.{}".format(*cp.cuda.nvrtc.getVersion())
            except Exception:
                host["nvrtc"] = None
            gpu = run_gpu(cp, np, args.sizes, args.repeats, args.device, stage)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            smi_versions = parse_nvidia_smi_versions(probe_text("smi") or "")
            context["driver_cuda"] = smi_versions["cuda_version"]
            context["toolkit_cuda"] = parse_nvcc_release(probe_text("nvcc") or "")
            result["diagnosis"] = diagnose(exc, context)
            result["error"] = f"{type(exc).__name__}: {exc}"[-2000:]
            failed_at = stage["at"]
            if result["timings"]["import_s"] is None:
                result["timings"]["import_s"] = round(time.perf_counter() - t, 4)

    # Host facts and the checklist.
    smi_versions = parse_nvidia_smi_versions(probe_text("smi") or "")
    host["driver_version"] = smi_versions["driver_version"] or proc_version
    host["cuda_driver_version"] = smi_versions["cuda_version"]
    result["gpus"] = parse_nvidia_smi_query(probe_text("smi_query") or "")
    nvcc_release = parse_nvcc_release(probe_text("nvcc") or "")
    host["nvcc_release"] = nvcc_release

    if pci_gpus is None:
        checks.append(check("gpu_present", None, "/sys/bus/pci/devices is not readable here"))
    else:
        listed = ", ".join(f"{g['slot']} [{g['vendor'][2:]}:{g['device'][2:]}]" for g in pci_gpus)
        checks.append(
            check(
                "gpu_present",
                bool(pci_gpus),
                f"{len(pci_gpus)} NVIDIA GPU(s) on the PCI bus" + (": " + listed if listed else ""),
            )
        )
    smi_rc = probes["smi"].result()[0] if probes["smi"] else None
    if smi_rc == 0 and smi_versions["driver_version"]:
        versions = f"driver {smi_versions['driver_version']}, CUDA {smi_versions['cuda_version']}"
        checks.append(check("driver", True, versions + " (nvidia-smi)"))
    elif pci_gpus == []:
        checks.append(check("driver", None, "no NVIDIA GPU, so no driver expected"))
    else:
        why = "nvidia-smi not found"
        if probes["smi"] is not None:
            _rc, out, err = probes["smi"].result()
            why = "nvidia-smi failed: " + ((out + err).strip().splitlines() or ["?"])[0]
        checks.append(
            check("driver", False, why + ("" if proc_version else "; /proc/driver/nvidia/version absent"))
        )

    checks.append(rust_tool_check("rustc", probe_text("rustc")))
    checks.append(rust_tool_check("cargo", probe_text("cargo")))
    cc_path = shutil.which("cc")
    checks.append(check("cc", cc_path is not None, f"C linker for Rust: {cc_path or 'absent'}"))
    if nvcc_path is None:
        checks.append(check("nvcc", False, "nvcc not found on PATH or in /usr/local/cuda*/bin"))
    else:
        nvcc_check = cuda_version_check(nvcc_release, smi_versions["cuda_version"])
        if not nvcc_on_path:
            if _profile_adds_cuda_path():
                nvcc_check["detail"] += f" at {nvcc_path} (login shells get it from /etc/profile.d)"
            else:
                nvcc_check = check("nvcc", False, f"{nvcc_path} exists but is not on PATH")
        checks.append(nvcc_check)
    ld_libs = parse_ldconfig(probe_text("ldconfig") or "")
    checks.append(find_cudnn(ld_libs, _site_dirs()))
    checks.append(find_cuda_library("libcudart", ld_libs))
    checks.append(find_cuda_library("libnvrtc", ld_libs))

    diag = result["diagnosis"]
    if "cupy" in host:
        checks.append(check("cupy", True, f"CuPy {host['cupy']} ({host.get('cupy_package') or '?'})"))
        cupy_major = _cuda_major(host.get("cupy_cuda_runtime"))
        drv_major = _cuda_major(host.get("cupy_cuda_driver"))
        ok = None if cupy_major is None or drv_major is None else cupy_major <= drv_major
        checks.append(
            check(
                "cupy_cuda",
                ok,
                f"CuPy uses CUDA {host.get('cupy_cuda_runtime')}; "
                f"the driver supports CUDA {host.get('cupy_cuda_driver')}",
            )
        )
    elif can_try_gpu and diag:
        checks.append(check("cupy", False, diag["reason"], diag["fix"]))
    else:
        checks.append(check("cupy", None, "not tried: no usable GPU"))

    if gpu is not None:
        result["device"] = gpu["device"]
        if not result["gpus"]:  # no nvidia-smi (some containers): report what CUDA itself says
            keys = ("index", "name", "memory_total_mib")
            result["gpus"] = [{k: gpu["device"][k] for k in keys}]
        result["timings"]["compile_s"] = gpu["compile_s"]
        result["perf"] = gpu["perf"]
        corr = result["correctness"] = gpu["correctness"]
        checks.append(
            check(
                "kernel_compile",
                True,
                f"NVRTC compiled the naive and tiled kernels in {gpu['compile_s']:.3f} s"
                + (" (CuPy kernel cache)" if gpu["compile_s"] < 0.02 else ""),
            )
        )
        checks.append(
            check(
                "matmul_exact_2048",
                corr["exact_2048"] and corr["tiled_mismatches"] == 0,
                f"1024x1024 ones x twos: {corr['mismatches']} naive and {corr['tiled_mismatches']} "
                "tiled elements differ from 2048",
            )
        )
        worst = max(corr["rel_err_vs_cublas"], corr["tiled_rel_err_vs_cublas"])
        checks.append(
            check(
                "matmul_vs_cublas",
                worst < REL_ERR_LIMIT,
                f"||C-ref||/||ref|| = {corr['rel_err_vs_cublas']:.2e} naive, "
                f"{corr['tiled_rel_err_vs_cublas']:.2e} tiled vs cuBLAS fp32 (limit {REL_ERR_LIMIT:.0e}); "
                f"{corr['rel_err_vs_fp64']:.2e} vs fp64",
            )
        )
        if args.perf_table:
            try:
                table = load_perf_table(args.perf_table)
            except Exception as exc:
                table = None
                warnings.append(f"could not read --perf-table {args.perf_table}: {exc}")
            result["expected"] = lookup_expected_perf(gpu["device"]["name"], table)
            if table is not None and result["expected"] is None:
                name = gpu["device"]["name"]
                warnings.append(f"{name} is not in the expected-performance table; no speed comparison")
            warnings.extend(perf_warnings(gpu["device"]["name"], result["perf"], result["expected"]))
        try:
            result["perf"].append(time_numpy(np))
        except Exception as exc:
            warnings.append(f"NumPy CPU timing failed: {exc}")
    elif can_try_gpu and diag and failed_at != "import":
        # Charge the failure to the step that raised it: opening the device, NVRTC, or the run itself.
        name = {"device": "gpu_device", "compile": "kernel_compile"}.get(failed_at, "gpu_run")
        checks.append(check(name, False, diag["reason"], diag["fix"]))

    for g in result["gpus"]:
        used, total = g.get("memory_used_mib"), g.get("memory_total_mib")
        if (
            isinstance(used, (int, float))
            and isinstance(total, (int, float))
            and total
            and used > 0.1 * total
        ):
            warnings.append(
                f"GPU {g.get('index', '?')} had {used} of {total} MiB in use before the run: "
                "other jobs may skew the timings"
            )
        temp = g.get("temperature_c")
        if isinstance(temp, (int, float)) and temp >= 85:
            warnings.append(f"GPU {g.get('index', '?')} is at {temp} C: it may be throttling")

    if rust_thread is not None:
        rust_thread.join(timeout=15)
        if "row" in rust_box:
            result["perf"].append(rust_box["row"])
        elif "error" in rust_box:
            d = diagnose(rust_box["error"], context)
            hint = " -- " + d["fix"] if d["code"] == "cc_link_failed" else ""
            warnings.append(f"Rust CPU matmul skipped: {rust_box['error'][:300]}{hint}")
        else:
            warnings.append("Rust CPU matmul did not finish in time; skipped")

    failed = [c for c in checks if c["ok"] is False]
    if gpu is None:
        code = EXIT_CANNOT_RUN
    else:
        code = EXIT_FAILED if failed else EXIT_OK
        if failed:
            first = failed[0]
            result["diagnosis"] = {
                "code": CHECK_CODES.get(first["name"], first["name"] + "_failed"),
                "reason": f"{first['name']}: {first['detail']}",
                "fix": first["fix"],
            }
    result["ok"] = code == EXIT_OK
    result["exit_code"] = code
    result["timings"]["total_s"] = round(time.perf_counter() - _T0, 4)
    return result, code


def render_text(result: Dict[str, Any]) -> str:
    """A short human report for someone running the program by hand."""
    lines = []
    dev = result.get("device") or {}
    if dev:
        lines.append(
            f"GPU {dev.get('name')} (CC {dev.get('compute_capability')}, {dev.get('memory_total_mib')} MiB)"
        )
    for c in result["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[c["ok"]]
        lines.append(f"[{mark}] {c['name']:<18} {c['detail']}")
        if c["fix"]:
            lines.append(f"       fix: {c['fix']}")
    if result["perf"]:
        lines.append(f"{'kernel':<18} {'n':>6} {'ms':>10} {'GFLOP/s':>12}")
        for row in result["perf"]:
            lines.append(f"{row['kernel']:<18} {row['n']:>6} {row['ms']:>10.3f} {row['gflops']:>12.1f}")
    for w in result["warnings"]:
        lines.append(f"warning: {w}")
    if result["diagnosis"]:
        d = result["diagnosis"]
        lines.append(f"diagnosis [{d['code']}]: {d['reason']}\n  fix: {d['fix']}")
    lines.append(f"{'OK' if result['ok'] else 'NOT OK'} in {result['timings']['total_s'] or 0:.2f} s")
    return "\n".join(lines)



def _cannot_run(diagnosis: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """The result when the program could not run its checks at all."""
    result: Dict[str, Any] = {"schema": SCHEMA_VERSION, "ok": False, "exit_code": EXIT_CANNOT_RUN, "checks": [],
                              "perf": [], "warnings": [], "diagnosis": diagnosis}
    result.update(extra)
    return result

def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run, keeping stdout for the single JSON document (anything native code prints goes to stderr)."""
    given = list(argv if argv is not None else sys.argv[1:])
    if "-h" in given or "--help" in given:
        parse_args(given)  # argparse prints the usage on stdout and exits 0
    want_json = "--json" in given
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        try:
            args = parse_args(argv)
            result, code = verify(args)
        except _UsageError as exc:
            result = _cannot_run({"code": "bad_arguments", "reason": str(exc), "fix": "See `verify.py --help`."})
            code = EXIT_CANNOT_RUN
        except Exception as exc:
            result = _cannot_run(diagnose(exc), error=f"{type(exc).__name__}: {exc}")
            code = EXIT_CANNOT_RUN
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    if want_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
    elif "timings" in result:
        sys.stdout.write(render_text(result) + "\n")
    else:
        sys.stdout.write(f"{result['diagnosis']['reason']}\n  fix: {result['diagnosis']['fix']}\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
