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


class _Kernels:
    """The compiled module's three functions on the current device, launched with the chapter's geometry."""

    def __init__(self, cp: Any, np: Any) -> None:
        self.cp, self.np = cp, np
        module = cp.RawModule(code=KERNELS_SRC)
        self.naive_fn = module.get_function("matmul")  # NVRTC runs here (or CuPy's on-disk cache answers)
        self.tiled_fn = module.get_function("matmul_tiled")
        self.fill_fn = module.get_function("fill")

    def filled(self, n: int, value: float) -> Any:
        # Only our module and cuBLAS run on the GPU: each CuPy elementwise kernel would be one more NVRTC
        # compile on a fresh host's first run.
        x = self.cp.empty((n, n), dtype=self.cp.float32)
        self.fill_fn(((x.size + 255) // 256,), (256,), (x, self.np.float32(value), self.np.int64(x.size)))
        return x

    def _dims(self, a: Any, b: Any) -> Tuple[int, int, int]:
        return a.shape[0], b.shape[1], a.shape[1]

    def naive(self, a: Any, b: Any, c: Any) -> None:
        m, n, k = self._dims(a, b)
        i32 = self.np.int32
        self.naive_fn(((n + 15) // 16, (m + 15) // 16), (16, 16), (a, b, c, i32(m), i32(n), i32(k)))

    def tiled(self, a: Any, b: Any, c: Any) -> None:
        m, n, k = self._dims(a, b)
        i32 = self.np.int32
        self.tiled_fn(((n + 31) // 32, (m + 31) // 32), (32, 32), (a, b, c, i32(m), i32(n), i32(k)))

    def cublas(self, a: Any, b: Any, c: Any) -> None:
        self.cp.matmul(a, b, out=c)


def _device_info(cp: Any, device: int) -> Dict[str, Any]:
    dev = cp.cuda.Device(device)
    dev.use()
    props = cp.cuda.runtime.getDeviceProperties(device)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    free, total = cp.cuda.runtime.memGetInfo()
    return {"index": device, "name": name, "compute_capability": f"{props['major']}.{props['minor']}",
            "multiprocessors": props.get("multiProcessorCount"), "memory_total_mib": total // 2**20,
            "memory_free_mib": free // 2**20}


def prove_correct(cp: Any, np: Any, k: _Kernels) -> Dict[str, Any]:
    """The chapter's proof (ones x twos: every element exactly 2 * 1024), then random inputs against cuBLAS
    in fp32 (TF32 forced off before import) and a float64 reference; comparisons in NumPy on the host."""
    n = 1024
    a, b = k.filled(n, 1.0), k.filled(n, 2.0)
    c = cp.empty((n, n), dtype=cp.float32)
    k.naive(a, b, c)
    mismatches = int(np.count_nonzero(cp.asnumpy(c) != 2.0 * n))
    k.tiled(a, b, c)
    tiled_mismatches = int(np.count_nonzero(cp.asnumpy(c) != 2.0 * n))
    rng = np.random.default_rng(0)
    a_host = rng.random((n, n), dtype=np.float32) * 2 - 1
    b_host = rng.random((n, n), dtype=np.float32) * 2 - 1
    a, b = cp.asarray(a_host), cp.asarray(b_host)
    ref = cp.empty((n, n), dtype=cp.float32)
    k.cublas(a, b, ref)
    k.naive(a, b, c)
    c_tiled = cp.empty((n, n), dtype=cp.float32)
    k.tiled(a, b, c_tiled)
    ref64 = cp.asnumpy(cp.matmul(cp.asarray(a_host.astype(np.float64)), cp.asarray(b_host.astype(np.float64))))
    ref_host, c_host = cp.asnumpy(ref), cp.asnumpy(c)
    ref_host64 = ref_host.astype(np.float64)

    def rel_err(x: Any, want: Any) -> float:
        return float(np.linalg.norm(x.astype(np.float64) - want) / np.linalg.norm(want))

    return {
        "exact_2048": mismatches == 0,
        "mismatches": mismatches,
        "tiled_mismatches": tiled_mismatches,
        "rel_err_vs_cublas": rel_err(c_host, ref_host64),
        "tiled_rel_err_vs_cublas": rel_err(cp.asnumpy(c_tiled), ref_host64),
        "rel_err_vs_fp64": rel_err(c_host, ref64),
        "cublas_rel_err_vs_fp64": rel_err(ref_host, ref64),
        "cublas_compute_type": _cublas_compute_type(np),
    }


def time_kernels(cp: Any, k: _Kernels, sizes: Sequence[int], repeats: Optional[int]) -> List[Dict[str, Any]]:
    """Median ms of each kernel at each size (inputs 0.5 and 0.25, filled on the GPU)."""
    rows = []
    for n in sizes:
        a, b = k.filled(n, 0.5), k.filled(n, 0.25)
        c = cp.empty((n, n), dtype=cp.float32)
        for kernel, fn in (("naive", k.naive), ("tiled", k.tiled), ("cublas", k.cublas)):
            ms, calls = _time_gpu(cp, fn, (a, b, c), repeats)
            rows.append(_perf_row(kernel, n, ms, calls))
        del a, b, c
        cp.get_default_memory_pool().free_all_blocks()
    return rows


def run_gpu(
    cp: Any, np: Any, sizes: Sequence[int], repeats: Optional[int], device: int, stage: Dict[str, str]
) -> Dict[str, Any]:
    """Compile, prove correct and time the chapter's kernel, a tiled one and cuBLAS on one device.

    `stage` records how far it got, so a failure is charged to the right check (device, compile, run).
    """
    stage["at"] = "device"
    out: Dict[str, Any] = {"device": _device_info(cp, device)}
    stage["at"] = "compile"
    t = time.perf_counter()
    kernels = _Kernels(cp, np)
    out["compile_s"] = round(time.perf_counter() - t, 4)
    stage["at"] = "run"
    out["correctness"] = prove_correct(cp, np, kernels)
    out["perf"] = time_kernels(cp, kernels, sizes, repeats)
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


RUST_PROJECT_KERNELS = {"plain": "rust_plain", "rayon": "rust_rayon", "cuda": "rust_gpu"}


def rust_project_rows(directory: str, warnings: List[str]) -> List[Dict[str, Any]]:
    """Perf rows from the rust_project role's timing lines (its cargo-built matmul, per user): they come
    from the build step, so a GPU-less build box still reports its CPU figures."""
    rows: List[Dict[str, Any]] = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return rows
    for name in names:
        try:
            line = json.loads(Path(directory, name).read_text())
            for form, timing in (line.get("forms") or {}).items():
                row = _perf_row(RUST_PROJECT_KERNELS.get(form, "rust_" + form), int(line["n"]),
                                float(timing["ms"]), 1)
                row.update(correct=bool(timing.get("ok")), user=line.get("user"), source="rust_project",
                           threads=line.get("threads"))
                rows.append(row)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.append(f"unreadable Rust project timing {name}: {exc}")
    return rows


# --------------------------------------------------------------------------------------------------
# Health: nvidia-smi -q, the kernel log (Xid), PCIe links, clock event reasons (pure, tested from captures)
# --------------------------------------------------------------------------------------------------

_SMI_Q_LINE = re.compile(r"^(\s*)(\S.*?)\s+:\s?(.*)$")


def parse_smi_tree(text: str) -> Dict[str, Any]:
    """`nvidia-smi -q` as nested dicts by indentation: {'GPU 00000000:00:06.0': {'Product Name': ...}}."""
    root: Dict[str, Any] = {}
    stack: List[Tuple[int, Dict[str, Any]]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("=", "$")):
            continue
        m = _SMI_Q_LINE.match(line)
        indent = len(line) - len(line.lstrip())
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if m:
            parent[m.group(2).strip()] = m.group(3).strip()
        else:
            child: Dict[str, Any] = {}
            parent[line.strip()] = child
            stack.append((indent, child))
    return root


def normalize_bus_id(bus_id: Optional[str]) -> Optional[str]:
    """'00000000:3B:00.0' (nvidia-smi), '0000:3b:00.0' (sysfs, CuPy) → '0000:3b:00.0'."""
    if not bus_id:
        return None
    m = re.match(r"^(?:([0-9a-fA-F]+):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$", bus_id.strip())
    if not m:
        return bus_id.strip().lower()
    domain = int(m.group(1) or "0", 16)
    return f"{domain:04x}:{int(m.group(2), 16):02x}:{int(m.group(3), 16):02x}.{m.group(4)}"


def _num(value: Any) -> Optional[float]:
    m = re.match(r"^\s*(-?\d+(?:\.\d+)?)", str(value)) if value is not None else None
    return float(m.group(1)) if m else None


def _int(value: Any) -> Optional[int]:
    number = _num(value)
    return int(number) if number is not None else None


def _sub(tree: Dict[str, Any], *path: str) -> Dict[str, Any]:
    for key in path:
        tree = tree.get(key) if isinstance(tree.get(key), dict) else {}  # type: ignore[assignment]
    return tree


def _counts(section: Dict[str, Any]) -> Dict[str, Optional[int]]:
    return {k.lower().replace(" ", "_").replace("-", "_"): _int(v) for k, v in section.items() if not isinstance(v, dict)}


def _active(section: Dict[str, Any]) -> List[str]:
    """Names whose value is 'Active' anywhere in a (nested) section of clock event reasons."""
    found = []
    for key, value in section.items():
        if isinstance(value, dict):
            found += _active(value)
        elif value == "Active":
            found.append(key)
    return found


def gpu_health_from_smi_q(text: str) -> List[Dict[str, Any]]:
    """Per GPU in `nvidia-smi -q`: ids, PCIe link, clocks, clock event reasons, ECC, retired/remapped pages."""
    gpus = []
    for key, gpu in parse_smi_tree(text).items():
        if not key.startswith("GPU ") or not isinstance(gpu, dict):
            continue
        link = _sub(gpu, "PCI", "GPU Link Info")
        ecc_errors = _sub(gpu, "ECC Errors")
        remapped = _sub(gpu, "Remapped Rows")
        retired = _sub(gpu, "Retired Pages")
        gpus.append({
            "bus_id": normalize_bus_id(key[4:]),
            "name": gpu.get("Product Name"),
            "uuid": gpu.get("GPU UUID"),
            "minor": _int(gpu.get("Minor Number")),
            "link": {
                "gen_current": _int(_sub(link, "PCIe Generation").get("Current")),
                "gen_max": _int(_sub(link, "PCIe Generation").get("Max")),
                "width_current": _int(_sub(link, "Link Width").get("Current")),
                "width_max": _int(_sub(link, "Link Width").get("Max")),
            },
            "clock_sm_mhz": _int(_sub(gpu, "Clocks").get("SM")),
            "clock_max_sm_mhz": _int(_sub(gpu, "Max Clocks").get("SM")),
            "clock_events_active": _active(_sub(gpu, "Clocks Event Reasons") or _sub(gpu, "Clocks Throttle Reasons")),
            "temperature_c": _int(_sub(gpu, "Temperature").get("GPU Current Temp")),
            "power_draw_w": _num(_sub(gpu, "GPU Power Readings").get("Average Power Draw")
                                 or _sub(gpu, "GPU Power Readings").get("Power Draw")),
            "power_limit_w": _num(_sub(gpu, "GPU Power Readings").get("Current Power Limit")),
            "ecc_mode": _sub(gpu, "ECC Mode").get("Current"),
            "ecc_volatile": _counts(_sub(ecc_errors, "Volatile")),
            "ecc_aggregate": _counts(_sub(ecc_errors, "Aggregate")),
            "remapped_rows": {k: v for k, v in remapped.items() if not isinstance(v, dict)},
            "retired_pages": {k: v for k, v in retired.items() if not isinstance(v, dict)},
        })
    return gpus


# PCIe: GT/s per lane and line-code efficiency; Gen6's FLIT mode carries 242 payload bytes of 256.
PCIE_GT_S = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0}


def pcie_gen_from_speed(speed: str) -> Optional[int]:
    """sysfs current_link_speed '32.0 GT/s PCIe' → 5."""
    gt = _num(speed)
    for gen, rate in PCIE_GT_S.items():
        if gt is not None and abs(gt - rate) < 0.1:
            return gen
    return None


def pcie_gbs(gen: Optional[int], width: Optional[int]) -> Optional[float]:
    """What a link carries one way in GB/s before protocol overhead: Gen5 x16 = 63.0."""
    if gen not in PCIE_GT_S or not width:
        return None
    code = 0.8 if gen <= 2 else (242 / 256 if gen >= 6 else 128 / 130)
    return round(PCIE_GT_S[gen] * width * code / 8, 2)


def read_sysfs_link(bus_id: Optional[str], root: str = "/sys/bus/pci/devices") -> Dict[str, Optional[int]]:
    """The link as the kernel sees it now (read right after a transfer: idle GPUs drop to a lower gen)."""
    out: Dict[str, Optional[int]] = {}
    for key, name in (("gen_current", "current_link_speed"), ("gen_max", "max_link_speed"),
                      ("width_current", "current_link_width"), ("width_max", "max_link_width")):
        try:
            raw = Path(root, bus_id or "-", name).read_text().strip()
        except OSError:
            out[key] = None
            continue
        out[key] = pcie_gen_from_speed(raw) if key.startswith("gen") else _int(raw)
    return out


def link_name(gen: Optional[int], width: Optional[int]) -> str:
    return f"Gen{gen if gen else '?'} x{width if width else '?'}"


LINK_FRACTION = 0.5  # pinned copies reach 80-90% of a healthy link; below half something is wrong


def link_check(index: int, bandwidth: Dict[str, Any], link: Dict[str, Optional[int]]) -> Check:
    """Pinned H2D/D2H against what the link allows; a link below its maximum is named ('Gen3 x4 where ...')."""
    best = max(bandwidth.get("h2d_gbs") or 0.0, bandwidth.get("d2h_gbs") or 0.0)
    cur_gen, cur_w = link.get("gen_current"), link.get("width_current")
    max_gen, max_w = link.get("gen_max") or cur_gen, link.get("width_max") or cur_w
    possible = pcie_gbs(max_gen, max_w)
    figures = f"H2D {bandwidth.get('h2d_gbs')} GB/s, D2H {bandwidth.get('d2h_gbs')} GB/s (pinned)"
    if possible is None or not best:
        return check("pcie_link", None, f"GPU {index}: {figures}; link {link_name(cur_gen, cur_w)} unknown")
    if best >= LINK_FRACTION * possible:
        return check("pcie_link", True, f"GPU {index}: {figures} of {possible} GB/s for {link_name(max_gen, max_w)}")
    degraded = (cur_w or 0) < (max_w or 0) or (cur_gen or 0) < (max_gen or 0)
    if degraded:
        allows = pcie_gbs(cur_gen, cur_w)
        return check(
            "pcie_link", False,
            f"GPU {index}: {link_name(cur_gen, cur_w)} where {link_name(max_gen, max_w)} is possible: {figures}, "
            f"the link allows {allows} GB/s of {possible}",
            "Move the card to a full x16 slot wired to the CPU, reseat it and its riser, and set the slot to "
            "Gen5/Auto in the BIOS; `nvidia-smi -q | grep -A8 'GPU Link Info'` must show Current = Max.",
        )
    return check(
        "pcie_link", False,
        f"GPU {index}: {figures}, less than {LINK_FRACTION:.0%} of {possible} GB/s for {link_name(max_gen, max_w)}",
        "The link trains fully but copies are slow: check the CPU/NUMA affinity (`nvidia-smi topo -m`), "
        "IOMMU settings (iommu=pt), and other traffic on the same switch.",
    )


MEM_BAND = (0.7, 1.15)  # a copy within 70-115% of the model's measured figure is healthy


def memory_check(index: int, bandwidth: Dict[str, Any], expected: Optional[Dict[str, Any]]) -> Check:
    """Device-to-device copy bandwidth (bytes read + bytes written per second) against the model's figure."""
    got = bandwidth.get("d2d_gbs")
    want = (expected or {}).get("memory_copy_gbs")
    if got is None:
        return check("memory_bw", None, f"GPU {index}: not measured ({bandwidth.get('error', '?')})")
    if not want:
        return check("memory_bw", None, f"GPU {index}: device copy {got:.0f} GB/s (read+write); model has no figure")
    low, high = MEM_BAND[0] * want, MEM_BAND[1] * want
    detail = (f"GPU {index}: device copy {got:.0f} GB/s (read+write) vs {want:.0f} expected "
              f"(band {low:.0f}-{high:.0f})")
    return check("memory_bw", got >= low, detail,
                 "Memory runs slow: check memory clocks (`nvidia-smi -q -d CLOCK`), throttling, ECC/remap "
                 "state, and that no other job shares the GPU.")


# Xid codes that point at the hardware or its environment (NVIDIA's Xid catalogue), with what to do.
XID_MEANING = {
    13: ("graphics engine exception", "usually the application; if it repeats across jobs, run dcgmi diag -r 3"),
    31: ("GPU memory page fault", "usually an application bug; repeated with many programs: check the driver"),
    43: ("GPU stopped processing", "usually the application; reset the GPU if it persists"),
    45: ("preemptive cleanup", "follows another error: read the Xid before it"),
    48: ("double-bit ECC error", "reset the GPU (nvidia-smi -r) or reboot; repeated: RMA the card"),
    61: ("internal micro-controller breakpoint", "reset the GPU; update the driver; repeated: RMA"),
    62: ("internal micro-controller halt", "reset the GPU; update the driver; repeated: RMA"),
    63: ("ECC page retirement or row remap recorded", "reboot or reset the GPU so the remap takes effect"),
    64: ("ECC page retirement or row remap failed", "RMA the card: it ran out of spare rows"),
    74: ("NVLink error", "reseat the NVLink bridge or check the baseboard; run dcgmi diag -r 3"),
    79: ("GPU has fallen off the bus", "check power cables, seating, riser and PCIe slot; check the PSU"),
    92: ("high single-bit ECC error rate", "watch the remapper; schedule an RMA if it keeps growing"),
    94: ("contained ECC error", "restart the affected application; the GPU keeps running"),
    95: ("uncontained ECC error", "reset the GPU (nvidia-smi -r) or reboot; repeated: RMA"),
    119: ("GSP RPC timeout", "update the driver; reboot; if repeated, disable GSP firmware or RMA"),
    120: ("GSP error", "update the driver; reboot; if repeated, RMA"),
}
_XID = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\):\s*(\d+),?\s*(.*)")


def parse_xid(text: str) -> List[Dict[str, Any]]:
    """'NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus.' → one entry per line."""
    found = []
    for line in text.splitlines():
        m = _XID.search(line)
        if m:
            bus = m.group(1)
            bus = bus if "." in bus else bus + ".0"
            found.append({"bus_id": normalize_bus_id(bus), "xid": int(m.group(2)), "text": m.group(3).strip()[:200]})
    return found


def kernel_log_readable(rc: Optional[int], out: str, err: str) -> bool:
    return rc == 0 and bool(out.strip()) and "not permitted" not in (out + err).lower()


def xid_check(bus_id: Optional[str], index: int, xids: Optional[List[Dict[str, Any]]]) -> Check:
    """One line per GPU: the Xid errors the kernel logged for its bus id since boot."""
    if xids is None:
        return check("xid", None, f"GPU {index}: kernel log not readable (dmesg/journalctl -k need root or "
                                  "kernel.dmesg_restrict=0)")
    mine = [x for x in xids if x["bus_id"] and bus_id and x["bus_id"][:10] == bus_id[:10]]
    if not mine:
        return check("xid", True, f"GPU {index}: no Xid errors in the kernel log since boot")
    codes = sorted({x["xid"] for x in mine})
    named = "; ".join(f"Xid {c}: {XID_MEANING.get(c, ('see NVIDIA Xid catalogue', ''))[0]}" for c in codes)
    fixes = "; ".join(f"Xid {c}: {XID_MEANING[c][1]}" for c in codes if c in XID_MEANING)
    return check("xid", False, f"GPU {index}: {len(mine)} Xid line(s) since boot: {named}",
                 fixes or "Look the code up in NVIDIA's Xid catalogue; run dcgmi diag -r 3.")


def ecc_check(index: int, health: Dict[str, Any]) -> Check:
    """Uncorrectable ECC errors (volatile: since the driver loaded; aggregate: the card's lifetime) fail."""
    if str(health.get("ecc_mode") or "").lower() in ("disabled", "n/a", ""):
        return check("ecc", None, f"GPU {index}: ECC {health.get('ecc_mode') or 'not reported'}")
    vol, agg = health.get("ecc_volatile") or {}, health.get("ecc_aggregate") or {}

    def total(counts: Dict[str, Optional[int]], kind: str) -> int:
        return sum(v or 0 for k, v in counts.items() if kind in k and not k.endswith("exceeded"))

    unc_v, unc_a = total(vol, "uncorrectable"), total(agg, "uncorrectable")
    cor_v, cor_a = total(vol, "correctable") - unc_v, total(agg, "correctable") - unc_a
    detail = (f"GPU {index}: uncorrectable {unc_v} volatile / {unc_a} aggregate, "
              f"correctable {cor_v} / {cor_a}")
    return check("ecc", unc_v == 0 and unc_a == 0, detail,
                 "Uncorrectable ECC errors: drain the GPU, reset it (`nvidia-smi -r`) or reboot so rows are "
                 "remapped, then rerun; if the count grows again, RMA the card.")


def remap_check(index: int, health: Dict[str, Any]) -> Check:
    """Remapped rows (Ampere and later) or retired pages (older): pending work or a failed remap."""
    rows, pages = health.get("remapped_rows") or {}, health.get("retired_pages") or {}
    if rows and any(v not in ("N/A", None) for v in rows.values()):
        pending = str(rows.get("Pending", "No")) == "Yes"
        failed = str(rows.get("Remapping Failure Occurred", "No")) == "Yes"
        detail = (f"GPU {index}: remapped rows {rows.get('Correctable Error', '?')} correctable, "
                  f"{rows.get('Uncorrectable Error', '?')} uncorrectable; pending {rows.get('Pending', '?')}, "
                  f"failure {rows.get('Remapping Failure Occurred', '?')}")
        fix = ("A remap failed: the card has no spare rows left; RMA it." if failed else
               "Row remaps are pending: reset the GPU (`nvidia-smi -r`, nothing running) or reboot.")
        return check("remapped_rows", not (pending or failed), detail, fix)
    if pages and any(v not in ("N/A", None) for v in pages.values()):
        pending = str(pages.get("Pending Page Blacklist") or pages.get("Pending", "No")) == "Yes"
        detail = (f"GPU {index}: retired pages {pages.get('Single Bit ECC', '?')} single-bit, "
                  f"{pages.get('Double Bit ECC', '?')} double-bit; pending {'Yes' if pending else 'No'}")
        return check("remapped_rows", not pending, detail, "Pages wait to be retired: reboot the host.")
    return check("remapped_rows", None, f"GPU {index}: no row-remap or page-retirement data")


THROTTLE_BITS = {
    0x1: "Idle", 0x2: "Applications Clocks Setting", 0x4: "SW Power Cap", 0x8: "HW Slowdown",
    0x10: "Sync Boost", 0x20: "SW Thermal Slowdown", 0x40: "HW Thermal Slowdown",
    0x80: "HW Power Brake Slowdown", 0x100: "Display Clock Setting",
}
THERMAL = ("SW Thermal Slowdown", "HW Thermal Slowdown")
POWER = ("SW Power Cap", "HW Power Brake Slowdown")
HARDWARE = ("HW Slowdown",) + THERMAL + ("HW Power Brake Slowdown",)


def throttle_names(mask: Any) -> List[str]:
    """clocks_event_reasons.active '0x0000000000000044' → ['SW Power Cap', 'HW Thermal Slowdown']."""
    try:
        value = int(str(mask), 16) if str(mask).lower().startswith("0x") else int(mask)
    except (TypeError, ValueError):
        return []
    return [name for bit, name in sorted(THROTTLE_BITS.items()) if value & bit]


def clocks_check(index: int, health: Dict[str, Any]) -> Check:
    """Clock event reasons now: thermal or hardware slowdown fails; an idle clock at rest is normal."""
    active = health.get("clock_events_active") or []
    sm, top = health.get("clock_sm_mhz"), health.get("clock_max_sm_mhz")
    detail = f"GPU {index}: SM {sm} of {top} MHz, reasons: {', '.join(active) or 'none'}"
    bad = [r for r in active if r in HARDWARE]
    if bad:
        return check("clocks", False, detail,
                     "The GPU slows itself down: check airflow, fans and inlet temperature (thermal), the power "
                     "cables and PSU (power brake); `nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER`.")
    if "Idle" in active:
        detail += " (idle clocks at rest are normal; the burn-in measures them under load)"
    return check("clocks", True, detail)


# --------------------------------------------------------------------------------------------------
# Memory and links on the GPU (cupy only), multi-GPU paths, burn-in
# --------------------------------------------------------------------------------------------------

H2D, D2H, D2D = 1, 2, 3  # cudaMemcpyKind


def _copy_gbs(cp: Any, dst: int, src: int, nbytes: int, kind: int, count: int, factor: int = 1) -> float:
    """GB/s of `count` async copies timed with CUDA events; `factor` 2 counts a device copy's read and write."""
    stream = cp.cuda.get_current_stream()
    cp.cuda.runtime.memcpyAsync(dst, src, nbytes, kind, stream.ptr)  # warm-up
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(count):
        cp.cuda.runtime.memcpyAsync(dst, src, nbytes, kind, stream.ptr)
    end.record()
    end.synchronize()
    ms = cp.cuda.get_elapsed_time(start, end)
    return round(factor * nbytes * count / (ms * 1e-3) / 1e9, 1) if ms > 0 else 0.0


def measure_bandwidth(cp: Any, device: int, d2d_mib: int = 512, host_mib: int = 128) -> Dict[str, Any]:
    """Device-to-device copy (read+write counted) and pinned host<->device copies on one device."""
    out: Dict[str, Any] = {"d2d_bytes_counted": "read+write", "d2d_mib": d2d_mib, "host_mib": host_mib}
    try:
        with cp.cuda.Device(device):
            a = cp.cuda.alloc(d2d_mib << 20)
            b = cp.cuda.alloc(d2d_mib << 20)
            out["d2d_gbs"] = _copy_gbs(cp, b.ptr, a.ptr, d2d_mib << 20, D2D, 20, factor=2)
            del a, b
            pinned = cp.cuda.alloc_pinned_memory(host_mib << 20)
            dev = cp.cuda.alloc(host_mib << 20)
            out["h2d_gbs"] = _copy_gbs(cp, dev.ptr, pinned.ptr, host_mib << 20, H2D, 8)
            out["d2h_gbs"] = _copy_gbs(cp, pinned.ptr, dev.ptr, host_mib << 20, D2H, 8)
            del pinned, dev
    except Exception as exc:  # a bandwidth figure must not cost the matmul proof
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def multi_gpu_skip_reason(devices: Sequence[int]) -> Optional[str]:
    """Why the peer and NCCL paths do not run here, or None when they do."""
    if len(devices) < 2:
        return f"needs 2 or more GPUs; {len(devices)} visible to this run"
    return None


def peer_matrix(cp: Any, devices: Sequence[int]) -> List[List[Optional[bool]]]:
    """can[i][j]: device i can read device j's memory directly (None on the diagonal)."""
    return [[None if i == j else bool(cp.cuda.runtime.deviceCanAccessPeer(i, j)) for j in devices] for i in devices]


def peer_bandwidth(cp: Any, devices: Sequence[int], mib: int = 256) -> List[Dict[str, Any]]:
    """GB/s of a copy from each GPU to each other GPU (peer access enabled where the pair allows it)."""
    rows = []
    for src in devices:
        for dst in devices:
            if src == dst:
                continue
            with cp.cuda.Device(dst):
                if cp.cuda.runtime.deviceCanAccessPeer(dst, src):
                    try:
                        cp.cuda.runtime.deviceEnablePeerAccess(src)
                    except Exception:
                        pass  # already enabled
                dst_buf = cp.cuda.alloc(mib << 20)
            with cp.cuda.Device(src):
                src_buf = cp.cuda.alloc(mib << 20)
                stream = cp.cuda.get_current_stream()
                start, end = cp.cuda.Event(), cp.cuda.Event()
                start.record()
                for _ in range(5):
                    cp.cuda.runtime.memcpyPeerAsync(dst_buf.ptr, dst, src_buf.ptr, src, mib << 20, stream.ptr)
                end.record()
                end.synchronize()
                ms = cp.cuda.get_elapsed_time(start, end)
            rows.append({"src": src, "dst": dst, "gbs": round(5 * (mib << 20) / (ms * 1e-3) / 1e9, 1)})
    return rows


def nccl_all_reduce(cp: Any, np: Any, devices: Sequence[int], count: int = 1 << 20) -> Dict[str, Any]:
    """One communicator per device (ncclCommInitAll), rank r contributes r+1: every element must be the sum."""
    from cupy.cuda import nccl

    comms = nccl.NcclCommunicator.initAll(list(devices))
    buffers = []
    for rank, dev in enumerate(devices):
        with cp.cuda.Device(dev):
            buffers.append(cp.asarray(np.full(count, rank + 1, dtype=np.float32)))  # a copy, no kernel
    t = time.perf_counter()
    nccl.groupStart()
    for comm, dev, buf in zip(comms, devices, buffers):
        with cp.cuda.Device(dev):
            comm.allReduce(buf.data.ptr, buf.data.ptr, count, nccl.NCCL_FLOAT32, nccl.NCCL_SUM,
                           cp.cuda.get_current_stream().ptr)
    nccl.groupEnd()
    for dev in devices:
        cp.cuda.Device(dev).synchronize()
    ms = (time.perf_counter() - t) * 1000
    want = len(devices) * (len(devices) + 1) / 2
    wrong = sum(int(np.count_nonzero(cp.asnumpy(buf) != want)) for buf in buffers)
    return {"ranks": len(devices), "elements": count, "expected": want, "wrong_elements": wrong,
            "ms": round(ms, 3), "nccl": _nccl_version(nccl.get_version())}


def _nccl_version(code: int) -> str:
    """NCCL's integer version: 22809 → '2.28.9' (2.9 and later), 2708 → '2.7.8' (before)."""
    if code >= 20900:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


def run_multi_gpu(cp: Any, np: Any, devices: Sequence[int]) -> Dict[str, Any]:
    """Peer matrix, peer bandwidth and an NCCL all-reduce; each part's failure is reported, not raised."""
    skip = multi_gpu_skip_reason(devices)
    if skip:
        return {"skipped": skip}
    out: Dict[str, Any] = {"devices": list(devices)}
    for key, fn in (("peer_access", lambda: peer_matrix(cp, devices)),
                    ("peer_bandwidth", lambda: peer_bandwidth(cp, devices)),
                    ("all_reduce", lambda: nccl_all_reduce(cp, np, devices))):
        try:
            out[key] = fn()
        except Exception as exc:
            out[key] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return out


def multi_gpu_checks(multi: Dict[str, Any]) -> List[Check]:
    """The checklist lines of the multi-GPU paths (not applicable, with the reason, on one GPU)."""
    if multi.get("skipped"):
        return [check("peer_access", None, "skipped: " + multi["skipped"]),
                check("nccl_all_reduce", None, "skipped: " + multi["skipped"])]
    lines = []
    peer = multi.get("peer_access")
    if isinstance(peer, list):
        missing = [(i, j) for i, row in enumerate(peer) for j, ok in enumerate(row) if ok is False]
        bw = multi.get("peer_bandwidth")
        shown = ", ".join(f"{r['src']}->{r['dst']} {r['gbs']} GB/s" for r in bw) if isinstance(bw, list) else str(bw)
        lines.append(check("peer_access", not missing, f"peer access {missing or 'all pairs'}; {shown}",
                           "GPUs cannot reach each other directly: check `nvidia-smi topo -m`, ACS/IOMMU "
                           "settings in the BIOS, and NVLink bridges."))
    else:
        lines.append(check("peer_access", False, f"peer access failed: {peer}"))
    ar = multi.get("all_reduce") or {}
    if "error" in ar:
        lines.append(check("nccl_all_reduce", False, f"NCCL all-reduce failed: {ar['error']}",
                           "Install NCCL for CuPy (`pip install nvidia-nccl-cu13`) and check "
                           "NCCL_DEBUG=INFO output."))
    else:
        lines.append(check("nccl_all_reduce", ar.get("wrong_elements") == 0,
                           f"NCCL {ar.get('nccl')} all-reduce over {ar.get('ranks')} GPUs: "
                           f"{ar.get('wrong_elements')} of {ar.get('elements')} elements differ from "
                           f"{ar.get('expected')} ({ar.get('ms')} ms)",
                           "Wrong sums across GPUs: look for Xid/NVLink errors and run dcgmi diag -r 3."))
    return lines


BURN_QUERY = "index,pci.bus_id,clocks.sm,clocks.max.sm,temperature.gpu,power.draw,power.limit,clocks_event_reasons.active"


def parse_burn_samples(text: str) -> Dict[str, List[Dict[str, Any]]]:
    """Lines of `nvidia-smi --query-gpu=BURN_QUERY --format=csv,noheader,nounits -lms 1000` by bus id."""
    by_bus: Dict[str, List[Dict[str, Any]]] = {}
    for row in parse_nvidia_smi_query(text, BURN_QUERY.split(",")):
        bus = normalize_bus_id(row.get("pci_bus_id"))
        if bus:
            row["reasons"] = throttle_names(row.get("clocks_event_reasons_active"))
            by_bus.setdefault(bus, []).append(row)
    return by_bus


SAG_FRACTION = 0.9  # a clock under load below 90% of its first seconds' (or of its maximum) has sagged


def analyse_burn(samples: List[Dict[str, Any]], seconds: float, tflops_first: float, tflops_last: float,
                 tflops: float) -> Dict[str, Any]:
    """What a burn-in showed for one GPU: throttling seen, clock sag, sustained TFLOP/s, and a verdict."""
    loaded = [s for s in samples if "Idle" not in s.get("reasons", [])]
    clocks = [s["clock_sm_mhz"] for s in loaded if isinstance(s.get("clock_sm_mhz"), (int, float))]
    temps = [s["temperature_c"] for s in loaded if isinstance(s.get("temperature_c"), (int, float))]
    power = [s["power_draw_w"] for s in loaded if isinstance(s.get("power_draw_w"), (int, float))]
    top = next((s.get("clock_max_sm_mhz") for s in samples if s.get("clock_max_sm_mhz")), None)
    seen = sorted({r for s in loaded for r in s.get("reasons", [])})
    problems = []
    thermal = [r for r in seen if r in THERMAL]
    if thermal:
        problems.append("thermal throttling (" + ", ".join(thermal) + ")")
    if "HW Power Brake Slowdown" in seen or "HW Slowdown" in seen:
        problems.append("hardware slowdown (" + ", ".join(r for r in seen if r.startswith("HW")) + ")")
    quarter = max(1, len(clocks) // 4)
    early, late = (statistics.median(clocks[:quarter]), statistics.median(clocks[-2 * quarter:])) if clocks else (0, 0)
    if clocks and (late < SAG_FRACTION * early or (top and late < SAG_FRACTION * 0.9 * top)):
        power_capped = " while power-capped" if "SW Power Cap" in seen else ""
        problems.append(f"SM clock sags under load{power_capped}: {early:.0f} MHz first, {late:.0f} MHz later "
                        f"(max {top})")
    if tflops_first and tflops_last < SAG_FRACTION * tflops_first:
        problems.append(f"throughput sags: {tflops_first:.1f} TFLOP/s first, {tflops_last:.1f} later")
    return {
        "seconds": round(seconds, 1), "samples": len(samples), "tflops": round(tflops, 3),
        "tflops_first": round(tflops_first, 3), "tflops_last": round(tflops_last, 3),
        "clock_sm_median_mhz": statistics.median(clocks) if clocks else None, "clock_sm_min_mhz": min(clocks, default=None),
        "clock_max_sm_mhz": top, "temperature_max_c": max(temps, default=None),
        "power_max_w": max(power, default=None), "reasons_seen": seen, "problems": problems,
    }


def burn_check(index: int, burn: Dict[str, Any]) -> Check:
    if "error" in burn:
        return check("burn_in", False, f"GPU {index}: burn-in failed: {burn['error']}")
    detail = (f"GPU {index}: {burn['seconds']} s cuBLAS at {burn['tflops']} TFLOP/s sustained, SM median "
              f"{burn['clock_sm_median_mhz']} MHz (min {burn['clock_sm_min_mhz']}, max {burn['clock_max_sm_mhz']}), "
              f"up to {burn['temperature_max_c']} C and {burn['power_max_w']} W; reasons seen: "
              f"{', '.join(burn['reasons_seen']) or 'none'}")
    if burn["problems"]:
        detail += "; " + "; ".join(burn["problems"])
    return check("burn_in", not burn["problems"], detail,
                 "The GPU cannot hold its clocks under load: improve airflow and fan curves, check the inlet "
                 "temperature and heatsink, the power cables and the power limit (`nvidia-smi -q -d POWER`).")


def _burn_loop(cp: Any, work: Dict[int, Dict[str, Any]], seconds: float, per_batch: int) -> None:
    """Batches of cuBLAS calls queued on every device in turn, each batch timed by a pair of events."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for dev, w in work.items():
            with cp.cuda.Device(dev):
                start, end = cp.cuda.Event(), cp.cuda.Event()
                start.record()
                for _ in range(per_batch):
                    cp.matmul(w["a"], w["a"], out=w["c"])
                end.record()
                w["events"].append((start, end))
        for w in work.values():
            w["events"][-1][1].synchronize()


def burn_in(cp: Any, np: Any, devices: Sequence[int], seconds: float, smi: Optional[str],
            n: int = 8192) -> Dict[int, Dict[str, Any]]:
    """Keep cuBLAS busy on every device for `seconds`, nvidia-smi sampling each second; per device results."""
    sampler = Probe([smi, "--query-gpu=" + BURN_QUERY, "--format=csv,noheader,nounits", "-lms", "1000"],
                    timeout=seconds + 30) if smi else None
    work = {}
    for dev in devices:
        with cp.cuda.Device(dev):
            a = cp.asarray(np.full((n, n), 0.5, dtype=np.float32))  # a copy: no CuPy kernel to compile
            work[dev] = {"a": a, "c": cp.empty_like(a), "events": [], "bus": cp.cuda.Device(dev).pci_bus_id}
    per_batch = 8
    t0 = time.perf_counter()
    try:
        _burn_loop(cp, work, seconds, per_batch)
    finally:
        samples: Dict[str, List[Dict[str, Any]]] = {}
        if sampler is not None and sampler.proc is not None:
            sampler.proc.terminate()
            samples = parse_burn_samples(sampler.result()[1])
    out = {}
    flop = 2.0 * n ** 3 * per_batch
    for dev, w in work.items():
        rates = [flop / (cp.cuda.get_elapsed_time(s, e) * 1e-3) / 1e12 for s, e in w["events"]]
        third = max(1, len(rates) // 3)
        busy_s = sum(flop / (r * 1e12) for r in rates)
        out[dev] = analyse_burn(samples.get(normalize_bus_id(w["bus"]) or "", []), time.perf_counter() - t0,
                                statistics.median(rates[:third]), statistics.median(rates[-third:]),
                                flop * len(rates) / busy_s / 1e12 if busy_s else 0.0)
    return out


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
    p.add_argument("--device", type=int, default=None, help="one CUDA device to test (same as --devices N)")
    p.add_argument("--devices", default="", help="CUDA devices to test, comma-separated (default: every visible)")
    p.add_argument("--burn-seconds", type=float, default=0, help="keep cuBLAS busy on every GPU this long")
    p.add_argument("--no-dcgm", action="store_true", help="do not run `dcgmi diag -r 1` even where installed")
    p.add_argument("--no-rust", action="store_true", help="skip the Rust single-thread CPU figure")
    p.add_argument("--rust-results", default=None,
                   help="directory of the rust_project role's timing lines (one JSON file per user)")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        raise _UsageError(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 16:
        raise _UsageError("--sizes must list sizes of at least 16")
    try:
        args.devices = [int(d) for d in str(args.devices).split(",") if d.strip()]
    except ValueError:
        raise _UsageError(f"--devices must be comma-separated integers, got {args.devices!r}")
    if args.device is not None:
        args.devices = [args.device]
    if args.burn_seconds < 0:
        raise _UsageError("--burn-seconds must not be negative")
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


_DCGM_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*(Pass|Fail|Skip|Warn)\b", re.IGNORECASE)


def parse_dcgmi_diag(text: str) -> Dict[str, Any]:
    """`dcgmi diag -r 1` table → {'tests': {name: result}, 'verdict': 'Pass'|'Fail'|None}."""
    tests = {}
    for line in text.splitlines():
        m = _DCGM_ROW.match(line.strip())
        if m:
            tests[m.group(1)] = m.group(2).capitalize()
    verdict = None if not tests else ("Fail" if "Fail" in tests.values() else "Pass")
    return {"tests": tests, "verdict": verdict}


class _Run:
    """What the phases of one verification share: the arguments, the probes, the result being filled."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.result: Dict[str, Any] = {
            "schema": SCHEMA_VERSION, "program": "provision-gpu-verify", "ok": False, "exit_code": EXIT_CANNOT_RUN,
            "host": {"hostname": socket.gethostname(), "python": sys.version.split()[0],
                     "python_executable": sys.executable, "platform": platform.platform()},
            "gpus": [], "device": None, "devices": [], "multi_gpu": None, "checks": [], "perf": [],
            "expected": None, "correctness": None, "warnings": [], "diagnosis": None, "error": None,
            "kernel_log": None, "dcgm": None,
            "timings": {"import_s": None, "compile_s": None, "total_s": None},
        }
        self.host, self.checks, self.warnings = self.result["host"], self.result["checks"], self.result["warnings"]
        self.paths: Dict[str, Optional[str]] = {}
        self.nvcc_on_path = False
        self.probes: Dict[str, Optional[Probe]] = {}
        self.context: Dict[str, Any] = {}
        self.pci_gpus: Optional[List[Dict[str, str]]] = None
        self.proc_version: Optional[str] = None
        self.can_try_gpu = True
        self.failed_at = ""
        self.np: Any = None
        self.rust_thread: Optional[threading.Thread] = None
        self.rust_box: Dict[str, Any] = {}

    def text(self, key: str) -> Optional[str]:
        probe = self.probes.get(key)
        if probe is None:
            return None
        rc, out, _err = probe.result()
        return out if rc == 0 else None


def probe_host(run: _Run) -> None:
    """Phase 1: start every external command (they finish while CuPy imports), read sysfs and /proc."""
    home = os.path.expanduser("~")
    p = run.paths
    p["smi"], _ = _which("nvidia-smi", ["/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin"])
    p["nvcc"], run.nvcc_on_path = _which("nvcc", ["/usr/local/cuda/bin"] + _cuda_dirs("bin"))
    p["rustc"], _ = _which("rustc", [os.path.join(home, ".cargo", "bin")])
    p["cargo"], _ = _which("cargo", [os.path.join(home, ".cargo", "bin")])
    p["ldconfig"], _ = _which("ldconfig", ["/sbin", "/usr/sbin"])
    p["dmesg"], _ = _which("dmesg", ["/bin", "/usr/bin", "/sbin"])
    p["journalctl"], _ = _which("journalctl", ["/bin", "/usr/bin"])
    p["dcgmi"], _ = _which("dcgmi", ["/usr/bin", "/usr/local/bin"])
    run.probes = {
        "smi_query": _probe_if(p["smi"], "--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits"),
        "smi": _probe_if(p["smi"]),
        "smi_q": _probe_if(p["smi"], "-q"),
        "nvcc": _probe_if(p["nvcc"], "--version"),
        "rustc": _probe_if(p["rustc"], "--version"),
        "cargo": _probe_if(p["cargo"], "--version"),
        "ldconfig": _probe_if(p["ldconfig"], "-p"),
        "dmesg": _probe_if(p["dmesg"]),
    }
    pci = read_sysfs_pci()
    run.pci_gpus = nvidia_gpus_from_pci(pci) if pci is not None else None
    try:
        run.proc_version = parse_driver_proc_version(Path("/proc/driver/nvidia/version").read_text())
    except OSError:
        pass
    built_kernels = kernels_with_nvidia_module() if run.proc_version is None else []
    run.context = {
        "pci_gpus": None if run.pci_gpus is None else len(run.pci_gpus),
        "driver_loaded": run.proc_version is not None,
        "kernel": platform.release(),
        "built_kernels": built_kernels,
        # False only when a module is built for some other kernel: none at all means no driver installed
        "module_built": platform.release() in built_kernels if run.proc_version is None and built_kernels else None,
        "sizes": run.args.sizes,
        "python": sys.executable,
    }
    if run.pci_gpus == [] and p["smi"] is None:
        run.can_try_gpu = False
        run.result["diagnosis"] = diagnose(
            "No NVIDIA GPU on this host: no PCI device with vendor 0x10de and class 0x03xxxx in "
            "/sys/bus/pci/devices, and no nvidia-smi", run.context)
    elif run.proc_version is None and p["smi"] is None:
        run.can_try_gpu = False
        run.result["diagnosis"] = diagnose(
            "nvidia-smi: command not found and /proc/driver/nvidia/version is absent"
            + (" although an NVIDIA GPU is on the PCI bus" if run.pci_gpus else ""), run.context)


def start_rust(run: _Run) -> None:
    """The chapter's CPU figure in a thread, overlapping the GPU phase."""
    rustc = run.paths.get("rustc")
    if run.can_try_gpu and rustc and not (run.args.quick or run.args.no_rust):
        banner = run.text("rustc") or ""
        run.rust_thread = threading.Thread(
            target=lambda: run.rust_box.update(rust_benchmark(rustc, banner)), daemon=True)
        run.rust_thread.start()


def _force_fp32(run: _Run) -> None:
    for var in ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE"):
        if os.environ.get(var, "0") not in ("0", ""):
            run.warnings.append(f"{var}={os.environ[var]} was set; forced to 0 so cuBLAS compares in true fp32")
        os.environ[var] = "0"


def _record_cupy(run: _Run, cp: Any, np: Any) -> None:
    run.host["numpy"], run.host["cupy"] = np.__version__, cp.__version__
    runtime = cp.cuda.runtime.runtimeGetVersion()
    run.context["cupy_cuda"] = run.host["cupy_cuda_runtime"] = format_cuda_version(runtime)
    run.host["cupy_cuda_driver"] = format_cuda_version(cp.cuda.runtime.driverGetVersion())
    run.host["cupy_package"] = _cupy_package(runtime // 1000)
    try:
        run.host["nvrtc"] = "{}.{}".format(*cp.cuda.nvrtc.getVersion())
    except Exception:
        run.host["nvrtc"] = None


def select_devices(wanted: Optional[Sequence[int]], count: int) -> List[int]:
    """The devices to test, as CUDA numbers them (after CUDA_VISIBLE_DEVICES): all, or those asked for."""
    if not wanted:
        return list(range(count))
    missing = [d for d in wanted if d < 0 or d >= count]
    if missing:
        raise ValueError(f"cudaErrorInvalidDevice: --devices {missing} not among the {count} visible device(s) "
                         f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return list(dict.fromkeys(wanted))


def run_gpu_phase(run: _Run) -> None:
    """Phase 2: import CuPy once, then prove and time each selected GPU; multi-GPU paths and burn-in after."""
    _force_fp32(run)
    t = time.perf_counter()
    stage = {"at": "import"}
    try:
        import cupy as cp
        import numpy as np

        run.np = np
        run.result["timings"]["import_s"] = round(time.perf_counter() - t, 4)
        _record_cupy(run, cp, np)
        count = cp.cuda.runtime.getDeviceCount() if hasattr(cp.cuda.runtime, "getDeviceCount") else 1
        devices = select_devices(run.args.devices, count)
        for device in devices:
            gpu = run_gpu(cp, np, run.args.sizes, run.args.repeats, device, stage)
            gpu["device"]["pci_bus_id"] = normalize_bus_id(getattr(cp.cuda.Device(device), "pci_bus_id", None))
            gpu["bandwidth"] = measure_bandwidth(cp, device)
            gpu["link"] = read_sysfs_link(gpu["device"]["pci_bus_id"])
            run.result["devices"].append(gpu)
        run.result["multi_gpu"] = run_multi_gpu(cp, np, devices)
        if run.args.burn_seconds:
            try:
                burns = burn_in(cp, np, devices, run.args.burn_seconds, run.paths.get("smi"))
            except Exception as exc:  # the proof above stands; the burn-in's failure is its own line
                burns = {d: {"error": f"{type(exc).__name__}: {exc}"[:300]} for d in devices}
            for gpu in run.result["devices"]:
                gpu["burn_in"] = burns.get(gpu["device"]["index"])
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        run.context["driver_cuda"] = parse_nvidia_smi_versions(run.text("smi") or "")["cuda_version"]
        run.context["toolkit_cuda"] = parse_nvcc_release(run.text("nvcc") or "")
        run.result["diagnosis"] = diagnose(exc, run.context)
        run.result["error"] = f"{type(exc).__name__}: {exc}"[-2000:]
        run.failed_at = stage["at"]
        if run.result["timings"]["import_s"] is None:
            run.result["timings"]["import_s"] = round(time.perf_counter() - t, 4)


def host_checks(run: _Run) -> None:
    """Phase 3a: the chapter's checklist from the probes (GPU on the bus, driver, Rust, nvcc, libraries)."""
    smi_versions = parse_nvidia_smi_versions(run.text("smi") or "")
    run.host["driver_version"] = smi_versions["driver_version"] or run.proc_version
    run.host["cuda_driver_version"] = smi_versions["cuda_version"]
    run.result["gpus"] = parse_nvidia_smi_query(run.text("smi_query") or "")
    run.host["nvcc_release"] = nvcc_release = parse_nvcc_release(run.text("nvcc") or "")
    run.checks.append(_gpu_present_check(run.pci_gpus))
    run.checks.append(_driver_check(run, smi_versions))
    run.checks.append(rust_tool_check("rustc", run.text("rustc")))
    run.checks.append(rust_tool_check("cargo", run.text("cargo")))
    cc_path = shutil.which("cc")
    run.checks.append(check("cc", cc_path is not None, f"C linker for Rust: {cc_path or 'absent'}"))
    run.checks.append(_nvcc_check(run, nvcc_release, smi_versions["cuda_version"]))
    ld_libs = parse_ldconfig(run.text("ldconfig") or "")
    run.checks.append(find_cudnn(ld_libs, _site_dirs()))
    run.checks.append(find_cuda_library("libcudart", ld_libs))
    run.checks.append(find_cuda_library("libnvrtc", ld_libs))
    run.checks.extend(_cupy_checks(run))


def _gpu_present_check(pci_gpus: Optional[List[Dict[str, str]]]) -> Check:
    if pci_gpus is None:
        return check("gpu_present", None, "/sys/bus/pci/devices is not readable here")
    listed = ", ".join(f"{g['slot']} [{g['vendor'][2:]}:{g['device'][2:]}]" for g in pci_gpus)
    return check("gpu_present", bool(pci_gpus),
                 f"{len(pci_gpus)} NVIDIA GPU(s) on the PCI bus" + (": " + listed if listed else ""))


def _driver_check(run: _Run, smi_versions: Dict[str, Optional[str]]) -> Check:
    probe = run.probes.get("smi")
    if probe is not None and probe.result()[0] == 0 and smi_versions["driver_version"]:
        versions = f"driver {smi_versions['driver_version']}, CUDA {smi_versions['cuda_version']}"
        return check("driver", True, versions + " (nvidia-smi)")
    if run.pci_gpus == []:
        return check("driver", None, "no NVIDIA GPU, so no driver expected")
    why = "nvidia-smi not found"
    if probe is not None:
        _rc, out, err = probe.result()
        why = "nvidia-smi failed: " + ((out + err).strip().splitlines() or ["?"])[0]
    return check("driver", False, why + ("" if run.proc_version else "; /proc/driver/nvidia/version absent"))


def _nvcc_check(run: _Run, release: Optional[str], driver_cuda: Optional[str]) -> Check:
    nvcc_path = run.paths.get("nvcc")
    if nvcc_path is None:
        return check("nvcc", False, "nvcc not found on PATH or in /usr/local/cuda*/bin")
    nvcc = cuda_version_check(release, driver_cuda)
    if not run.nvcc_on_path:
        if _profile_adds_cuda_path():
            nvcc["detail"] += f" at {nvcc_path} (login shells get it from /etc/profile.d)"
        else:
            nvcc = check("nvcc", False, f"{nvcc_path} exists but is not on PATH")
    return nvcc


def _cupy_checks(run: _Run) -> List[Check]:
    diag = run.result["diagnosis"]
    if "cupy" in run.host:
        cupy_major = _cuda_major(run.host.get("cupy_cuda_runtime"))
        drv_major = _cuda_major(run.host.get("cupy_cuda_driver"))
        ok = None if cupy_major is None or drv_major is None else cupy_major <= drv_major
        return [check("cupy", True, f"CuPy {run.host['cupy']} ({run.host.get('cupy_package') or '?'})"),
                check("cupy_cuda", ok, f"CuPy uses CUDA {run.host.get('cupy_cuda_runtime')}; "
                                       f"the driver supports CUDA {run.host.get('cupy_cuda_driver')}")]
    if run.can_try_gpu and diag:
        return [check("cupy", False, diag["reason"], diag["fix"])]
    return [check("cupy", None, "not tried: no usable GPU")]


def _expected_table(run: _Run) -> Optional[Dict[str, Any]]:
    if not run.args.perf_table:
        return None
    try:
        return load_perf_table(run.args.perf_table)
    except Exception as exc:
        run.warnings.append(f"could not read --perf-table {run.args.perf_table}: {exc}")
        return None


def gpu_checks(run: _Run) -> None:
    """Phase 3b: per GPU, correctness and speed against its model; the first GPU fills the legacy keys."""
    devices = run.result["devices"]
    if not devices:
        diag = run.result["diagnosis"]
        if run.can_try_gpu and diag and run.failed_at != "import":
            # Charge the failure to the step that raised it: opening the device, NVRTC, or the run itself.
            name = {"device": "gpu_device", "compile": "kernel_compile"}.get(run.failed_at, "gpu_run")
            run.checks.append(check(name, False, diag["reason"], diag["fix"]))
        return
    table = _expected_table(run)
    first = devices[0]
    run.result["device"], run.result["correctness"] = first["device"], first["correctness"]
    run.result["timings"]["compile_s"] = first["compile_s"]
    run.result["perf"] = list(first["perf"])
    if not run.result["gpus"]:  # no nvidia-smi (some containers): report what CUDA itself says
        run.result["gpus"] = [{k: g["device"][k] for k in ("index", "name", "memory_total_mib")} for g in devices]
    run.checks.append(check("kernel_compile", True,
                            f"NVRTC compiled the naive and tiled kernels in {first['compile_s']:.3f} s"
                            + (" (CuPy kernel cache)" if first["compile_s"] < 0.02 else "")))
    for gpu in devices:
        _device_checks(run, gpu, table)
    run.checks.extend(multi_gpu_checks(run.result["multi_gpu"] or {"skipped": "not run"}))
    if run.args.perf_table and table is not None:
        run.result["expected"] = first.get("expected")
    if run.np is not None:
        try:
            run.result["perf"].append(time_numpy(run.np))
        except Exception as exc:
            run.warnings.append(f"NumPy CPU timing failed: {exc}")


def _device_checks(run: _Run, gpu: Dict[str, Any], table: Optional[Dict[str, Any]]) -> None:
    index, name, corr = gpu["device"]["index"], gpu["device"]["name"], gpu["correctness"]
    tag = f"GPU {index}: " if len(run.result["devices"]) > 1 else ""
    gpu["expected"] = lookup_expected_perf(name, table) if table is not None else None
    gpu["link"] = _best_link(run, gpu)
    lines = [
        check("matmul_exact_2048", corr["exact_2048"] and corr["tiled_mismatches"] == 0,
              f"{tag}1024x1024 ones x twos: {corr['mismatches']} naive and {corr['tiled_mismatches']} "
              "tiled elements differ from 2048"),
        check("matmul_vs_cublas", max(corr["rel_err_vs_cublas"], corr["tiled_rel_err_vs_cublas"]) < REL_ERR_LIMIT,
              f"{tag}||C-ref||/||ref|| = {corr['rel_err_vs_cublas']:.2e} naive, "
              f"{corr['tiled_rel_err_vs_cublas']:.2e} tiled vs cuBLAS fp32 (limit {REL_ERR_LIMIT:.0e}); "
              f"{corr['rel_err_vs_fp64']:.2e} vs fp64"),
        memory_check(index, gpu["bandwidth"], gpu["expected"]),
        link_check(index, gpu["bandwidth"], gpu["link"]),
    ]
    if gpu.get("burn_in"):
        lines.append(burn_check(index, gpu["burn_in"]))
    for line in lines:
        line["gpu"] = index
    run.checks.extend(lines)
    if table is not None and gpu["expected"] is None:
        run.warnings.append(f"{name} is not in the expected-performance table; no speed comparison")
    run.warnings.extend(perf_warnings(name, gpu["perf"], gpu["expected"]))


def _smi_health(run: _Run) -> Dict[str, Dict[str, Any]]:
    if "_health" not in run.context:
        run.context["_health"] = {h["bus_id"]: h for h in gpu_health_from_smi_q(run.text("smi_q") or "")}
    return run.context["_health"]


def _best_link(run: _Run, gpu: Dict[str, Any]) -> Dict[str, Optional[int]]:
    """sysfs (read just after the copies) where it answers, nvidia-smi -q's link otherwise."""
    sysfs = gpu.get("link") or {}
    smi = (_smi_health(run).get(gpu["device"].get("pci_bus_id") or "") or {}).get("link") or {}
    return {k: sysfs.get(k) or smi.get(k) for k in ("gen_current", "gen_max", "width_current", "width_max")}


def read_kernel_log(run: _Run) -> Optional[str]:
    """dmesg, else journalctl -k -b; None when neither may be read (unprivileged, containers)."""
    probe = run.probes.get("dmesg")
    if probe is not None:
        rc, out, err = probe.result()
        if kernel_log_readable(rc, out, err):
            run.result["kernel_log"] = "dmesg"
            return out
    if run.paths.get("journalctl"):
        rc, out, err = Probe([str(run.paths["journalctl"]), "-k", "-b", "--no-pager", "-q"]).result()
        if kernel_log_readable(rc, out, err):
            run.result["kernel_log"] = "journalctl -k -b"
            return out
    run.result["kernel_log"] = "kernel log not readable"
    return None


def health_checks(run: _Run) -> None:
    """Phase 3c: per GPU, Xid errors since boot, ECC, remapped rows, clocks and their event reasons; dcgmi."""
    health = _smi_health(run)
    if not health:
        return
    log = read_kernel_log(run)
    xids = parse_xid(log) if log is not None else None
    by_bus = {g["device"].get("pci_bus_id"): g for g in run.result["devices"]}
    for i, (bus, h) in enumerate(sorted(health.items())):
        if by_bus and bus not in by_bus:
            continue  # not selected, or hidden by CUDA_VISIBLE_DEVICES
        index = (by_bus.get(bus) or {}).get("device", {}).get("index", h.get("minor", i))
        lines = [xid_check(bus, index, xids), ecc_check(index, h), remap_check(index, h), clocks_check(index, h)]
        for line in lines:
            line["gpu"] = index
        run.checks.extend(lines)
        if bus in by_bus:
            by_bus[bus]["health"] = {k: h[k] for k in ("uuid", "ecc_volatile", "ecc_aggregate", "remapped_rows",
                                                        "clock_events_active", "clock_sm_mhz", "clock_max_sm_mhz")}
            by_bus[bus]["device"]["uuid"] = h.get("uuid")
    if run.paths.get("dcgmi") and not run.args.no_dcgm and run.result["devices"]:
        rc, out, err = Probe([str(run.paths["dcgmi"]), "diag", "-r", "1"], timeout=120).result()
        run.result["dcgm"] = parse_dcgmi_diag(out)
        verdict = run.result["dcgm"]["verdict"]
        run.checks.append(check("dcgm_diag", None if verdict is None else verdict == "Pass",
                                f"dcgmi diag -r 1: {verdict or (out + err).strip()[:200] or f'rc={rc}'}",
                                "Read `dcgmi diag -r 3 -v` for the failing test and follow its advice."))


def host_warnings(run: _Run) -> None:
    for g in run.result["gpus"]:
        used, total = g.get("memory_used_mib"), g.get("memory_total_mib")
        if isinstance(used, (int, float)) and isinstance(total, (int, float)) and total and used > 0.1 * total:
            run.warnings.append(f"GPU {g.get('index', '?')} had {used} of {total} MiB in use before the run: "
                                "other jobs may skew the timings")
        temp = g.get("temperature_c")
        if isinstance(temp, (int, float)) and temp >= 85:
            run.warnings.append(f"GPU {g.get('index', '?')} is at {temp} C: it may be throttling")


def finish_rust(run: _Run) -> None:
    if run.args.rust_results:  # the rust_project role's cargo-built timings
        run.result["perf"].extend(rust_project_rows(run.args.rust_results, run.warnings))
    if run.rust_thread is None:
        return
    run.rust_thread.join(timeout=15)
    if "row" in run.rust_box:
        run.result["perf"].append(run.rust_box["row"])
    elif "error" in run.rust_box:
        d = diagnose(run.rust_box["error"], run.context)
        hint = " -- " + d["fix"] if d["code"] == "cc_link_failed" else ""
        run.warnings.append(f"Rust CPU matmul skipped: {run.rust_box['error'][:300]}{hint}")
    else:
        run.warnings.append("Rust CPU matmul did not finish in time; skipped")


def conclude(run: _Run) -> Tuple[Dict[str, Any], int]:
    """Phase 4: the exit code and, when a check failed, the first failure as the diagnosis."""
    result = run.result
    failed = [c for c in run.checks if c["ok"] is False]
    if not result["devices"]:
        code = EXIT_CANNOT_RUN
    else:
        code = EXIT_FAILED if failed else EXIT_OK
        if failed:
            first = failed[0]
            result["diagnosis"] = {"code": CHECK_CODES.get(first["name"], first["name"] + "_failed"),
                                   "reason": f"{first['name']}: {first['detail']}", "fix": first["fix"]}
    result["ok"] = code == EXIT_OK
    result["exit_code"] = code
    run.context.pop("_health", None)
    result["timings"]["total_s"] = round(time.perf_counter() - _T0, 4)
    return result, code


def verify(args: argparse.Namespace) -> Tuple[Dict[str, Any], int]:
    """Everything the program does, as (result, exit code); main() only handles the streams."""
    run = _Run(args)
    probe_host(run)
    start_rust(run)
    if run.can_try_gpu:
        run_gpu_phase(run)
    host_checks(run)
    gpu_checks(run)
    health_checks(run)
    host_warnings(run)
    finish_rust(run)
    return conclude(run)


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
