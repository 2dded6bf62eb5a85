"""The GPU verification program, checked without a GPU: parsers against outputs captured on a real H100
host, the troubleshooting diagnoses, the expected-performance table, and the summary table.

The GPU path itself runs here against a NumPy stand-in for CuPy (named FakeCupy: CI has no GPU); the
real thing is tests/gpu/test_gpu_verify_gpu.py.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy
import pytest
import yaml
from rich.console import Console

from provisioner.gpu import verify
from provisioner.output.gpu_table import gpu_rows_from_results, render_gpu_table, render_gpu_text
from tests.gpu.cuda import GPU_CHECKS

REPO = Path(__file__).resolve().parents[2]
VERIFY_PY = REPO / "provisioner" / "gpu" / "verify.py"
PERF_YML = REPO / "provisioner" / "data" / "gpu_perf.yml"
FIXTURES = REPO / "tests" / "data" / "h100-ubuntu2404"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture(scope="module")
def perf_table() -> dict[str, Any]:
    return yaml.safe_load(PERF_YML.read_text())


# --- nvidia-smi, nvcc, driver, cuDNN, loader: parsed as captured on the H100 host ---------------------


def test_query_csv_with_header_and_units_from_the_h100_host() -> None:
    gpus = verify.parse_nvidia_smi_query(fixture("nvidia-smi-query.csv"))
    assert len(gpus) == 1
    gpu = gpus[0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["memory_total_mib"] == 81559
    assert gpu["memory_used_mib"] == 0
    assert gpu["utilization_pct"] == 0
    assert gpu["temperature_c"] == 50
    assert gpu["driver_version"] == "580.159.04"
    assert gpu["compute_cap"] == "9.0"
    assert gpu["clock_max_sm_mhz"] == 1980
    assert gpu["power_limit_w"] == 700.0
    assert gpu["pci_bus_id"] == "00000000:00:06.0"


def test_query_csv_noheader_nounits_as_the_program_asks_for_it() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 3, 81559, 0, 50, 580.159.04\n1, NVIDIA H100 80GB HBM3, [N/A], 81559, 7, 41, 580.159.04\n"
    gpus = verify.parse_nvidia_smi_query(text)
    assert [g["index"] for g in gpus] == [0, 1]
    assert gpus[0]["memory_used_mib"] == 3 and gpus[1]["memory_used_mib"] is None
    assert gpus[1]["utilization_pct"] == 7 and gpus[1]["temperature_c"] == 41
    assert verify.parse_nvidia_smi_query("") == []
    assert verify.parse_nvidia_smi_query('Field "compute_cap" is not a valid field to query.\n') == []


def test_driver_and_cuda_version_from_plain_nvidia_smi_as_the_chapter_reads_them() -> None:
    assert verify.parse_nvidia_smi_versions(fixture("nvidia-smi.txt")) == {
        "driver_version": "580.159.04",
        "cuda_version": "13.0",
    }
    assert verify.parse_nvidia_smi_versions(fixture("nvidia-smi-q.txt"))["cuda_version"] == "13.0"
    chapter = "| NVIDIA-SMI 535.129.03   Driver Version: 535.129.03   CUDA Version: 12.2   |"
    assert verify.parse_nvidia_smi_versions(chapter) == {
        "driver_version": "535.129.03",
        "cuda_version": "12.2",
    }
    assert verify.parse_nvidia_smi_versions("") == {"driver_version": None, "cuda_version": None}


def test_nvcc_release_and_the_checklist_range() -> None:
    assert verify.parse_nvcc_release(fixture("nvcc-version.txt")) == "13.0"
    assert verify.parse_nvcc_release("Cuda compilation tools, release 12.3, V12.3.107") == "12.3"
    assert verify.parse_nvcc_release("bash: nvcc: command not found") is None
    assert verify.cuda_version_check("13.0", "13.0")["ok"] is True
    assert verify.cuda_version_check("12.3", "13.0")["ok"] is True
    old = verify.cuda_version_check("11.8", "13.0")
    assert old["ok"] is False and "12.x or 13.x" in old["detail"] and old["fix"]
    too_new = verify.cuda_version_check("13.0", "12.2")
    assert too_new["ok"] is False and "newer than the driver" in too_new["detail"]
    assert verify.cuda_version_check(None, "13.0")["ok"] is False


def test_driver_version_from_proc() -> None:
    assert verify.parse_driver_proc_version(fixture("proc-driver-nvidia-version.txt")) == "580.159.04"
    old = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023"
    assert verify.parse_driver_proc_version(old) == "535.129.03"


def test_cudnn_version_header() -> None:
    assert verify.parse_cudnn_version_header(fixture("cudnn-version-h.txt")) == "9.14.0"
    assert verify.parse_cudnn_version_header("#define CUDNN_MAJOR 8\n") is None


def test_ldconfig_finds_the_cuda_runtime_and_misses_nvrtc() -> None:
    libs = verify.parse_ldconfig(fixture("ldconfig-cuda.txt"))
    assert libs["libcudart.so.13"] == "/usr/local/cuda/targets/x86_64-linux/lib/libcudart.so.13"
    assert libs["libcudnn.so.9"] == "/lib/x86_64-linux-gnu/libcudnn.so.9"
    assert verify.find_cuda_library("libcudart", libs)["ok"] is True
    nvrtc = verify.find_cuda_library("libnvrtc", {})
    if nvrtc["ok"] is False:  # this machine may have it via LD_LIBRARY_PATH; then there is nothing to see
        assert "/etc/ld.so.conf.d/cuda.conf" in nvrtc["fix"] and "ldconfig" in nvrtc["fix"]


# --- no GPU / GPU on the PCI bus ----------------------------------------------------------------------


def test_sysfs_listing_from_the_h100_host_has_one_nvidia_gpu() -> None:
    entries = verify.parse_sysfs_pci_listing(fixture("sysfs-pci.txt"))
    assert len(entries) == 7
    gpus = verify.nvidia_gpus_from_pci(entries)
    assert gpus == [{"slot": "0000:00:06.0", "vendor": "0x10de", "device": "0x2330", "class": "0x030200"}]


def test_reading_a_sysfs_tree(tmp_path: Path) -> None:
    """The same devices as real files, plus a consumer card's HDMI audio function that is not a GPU."""
    listing = fixture("sysfs-pci.txt") + "0000:01:00.1 0x10de 0x22ba 0x040300\n"
    for entry in verify.parse_sysfs_pci_listing(listing):
        dev = tmp_path / entry["slot"]
        dev.mkdir()
        for key in ("vendor", "device", "class"):
            (dev / key).write_text(entry[key] + "\n")
    entries = verify.read_sysfs_pci(str(tmp_path))
    assert entries is not None and len(entries) == 8
    assert [g["slot"] for g in verify.nvidia_gpus_from_pci(entries)] == ["0000:00:06.0"]
    assert verify.read_sysfs_pci(str(tmp_path / "absent")) is None


# --- the checklist's version comparisons --------------------------------------------------------------


def test_rust_versions_compare_as_numbers() -> None:
    assert verify.parse_version("rustc 1.83.0 (90b35a623 2024-11-26)") == (1, 83, 0)
    assert verify.version_at_least((1, 75, 0), (1, 75))
    assert verify.version_at_least((1, 100, 0), (1, 75))  # a string comparison would say no
    assert not verify.version_at_least((1, 63, 0), (1, 75))
    assert not verify.version_at_least(None, (1, 75))
    assert verify.rust_tool_check("rustc", "rustc 1.75.0 (82e1608df 2023-12-21)")["ok"] is True
    debian12 = verify.rust_tool_check("rustc", "rustc 1.63.0")
    assert debian12["ok"] is False and "older than 1.75" in debian12["detail"] and "rustup" in debian12["fix"]
    missing = verify.rust_tool_check("cargo", None)
    assert missing["ok"] is False and "not found" in missing["detail"] and missing["fix"]


def test_a_passing_check_carries_no_fix() -> None:
    assert verify.check("nvcc", True, "release 13.0") == {
        "name": "nvcc",
        "ok": True,
        "detail": "release 13.0",
        "fix": None,
    }
    assert verify.check("cupy", None, "not tried")["fix"] is None
    assert "PATH" in verify.check("nvcc", False, "not on PATH")["fix"]


# --- expected performance -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA A10G", "A10"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100 SXM2"),
        ("Tesla V100-PCIE-32GB", "V100 PCIe"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
        ("NVIDIA GeForce RTX 3090", "RTX 3090"),
        ("NVIDIA RTX A6000", "RTX A6000"),
        ("NVIDIA GH200 480GB", None),
        ("Quadro P1000", None),
    ],
)
def test_gpu_names_find_their_row(perf_table: dict[str, Any], name: str, model: str | None) -> None:
    row = verify.lookup_expected_perf(name, perf_table)
    assert (row or {}).get("model") == model


def test_the_table_is_documented_and_calibrated(perf_table: dict[str, Any]) -> None:
    for row in perf_table["gpus"]:
        assert row["source"] in ("measured", "derived", "vendor-estimate"), row
        assert row["cublas_4096_gflops"] > 0 and row["peak_fp32_gflops"] >= row["cublas_4096_gflops"]
    h100 = verify.lookup_expected_perf("NVIDIA H100 80GB HBM3", perf_table)
    assert h100 is not None and h100["source"] == "measured"
    assert h100["cublas_4096_gflops"] == 51600 and h100["naive_1024_gflops"] == 5100
    # What the controller ships is JSON, and the program reads it without PyYAML.
    assert verify.lookup_expected_perf("NVIDIA H100 80GB HBM3", json.loads(json.dumps(perf_table))) == h100
    assert verify.lookup_expected_perf("NVIDIA H100 80GB HBM3", None) is None


def test_a_gpu_at_less_than_half_speed_is_warned_about(perf_table: dict[str, Any]) -> None:
    name = "NVIDIA H100 80GB HBM3"
    expected = verify.lookup_expected_perf(name, perf_table)
    healthy = [
        {"kernel": "naive", "n": 1024, "gflops": 5000.0},
        {"kernel": "cublas", "n": 4096, "gflops": 50000.0},
        {"kernel": "numpy_cpu", "n": 1024, "gflops": 300.0},
    ]
    assert verify.perf_warnings(name, healthy, expected) == []
    throttled = [
        {"kernel": "cublas", "n": 4096, "gflops": 20000.0},
        {"kernel": "naive", "n": 1024, "gflops": 2000.0},
    ]
    warnings = verify.perf_warnings(name, throttled, expected)
    assert len(warnings) == 2
    assert "less than half the 51.6 TFLOP/s expected for H100 SXM (measured)" in warnings[0]
    assert "CLOCK" in warnings[0]
    assert verify.perf_warnings("Quadro P1000", throttled, None) == []


def test_gflops_as_the_chapter_counts_them() -> None:
    assert round(verify.gflops(1024, 0.42)) == 5113
    assert verify.gflops(1024, 0) == 0.0
    assert verify.format_cuda_version(13000) == "13.0" and verify.format_cuda_version(12080) == "12.8"


# --- diagnosis: the chapter's troubleshooting list ------------------------------------------------------


class CompileException(Exception):
    """Stands in for cupy.cuda.compiler.CompileException (only its name and message matter)."""


class OutOfMemoryError(Exception):
    """Stands in for cupy.cuda.memory.OutOfMemoryError."""


@pytest.mark.parametrize(
    ("error", "context", "code", "in_fix"),
    [
        ("No NVIDIA GPU on this host: no PCI device with vendor 0x10de", {}, "no_gpu", "lspci"),
        (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
            {},
            "no_driver",
            "nvidia-smi",
        ),
        ("nvidia-smi: command not found", {}, "no_driver", "driver"),
        (
            "CUDARuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected",
            {"pci_gpus": 0},
            "no_gpu",
            "lspci",
        ),
        (
            "CUDARuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected",
            {"pci_gpus": 1, "driver_loaded": True},
            "no_device_visible",
            "CUDA_VISIBLE_DEVICES",
        ),
        ("bash: nvcc: command not found", {}, "nvcc_not_found", "export PATH=/usr/local/cuda/bin:$PATH"),
        (
            "error while loading shared libraries: libcudart.so.13: cannot open shared object file: No such file",
            {"toolkit_cuda": "13.0"},
            "libcudart_missing",
            "/etc/ld.so.conf.d/cuda.conf",
        ),
        (
            "CuPy failed to load libnvrtc.so.13: OSError: libnvrtc.so.13: cannot open shared object file",
            {"driver_cuda": "13.0"},
            "libnvrtc_missing",
            "ldconfig",
        ),
        (
            "CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file",
            {"driver_cuda": "13.0", "toolkit_cuda": "13.0"},
            "cupy_cuda_mismatch",
            "pip install cupy-cuda13x",
        ),
        (
            "CUDARuntimeError: cudaErrorInsufficientDriver: CUDA driver version is insufficient",
            {"driver_cuda": "12.2", "cupy_cuda": "13.0"},
            "cupy_cuda_mismatch",
            "pip install cupy-cuda12x",
        ),
        ("", {"driver_cuda": "12.2", "cupy_cuda": "13.0"}, "cupy_cuda_mismatch", "cupy-cuda12x"),
        (
            ModuleNotFoundError("No module named 'cupy'"),
            {"driver_cuda": "13.0"},
            "cupy_missing",
            "cupy-cuda13x",
        ),
        (ModuleNotFoundError("No module named 'numpy'"), {}, "numpy_missing", "pip install numpy"),
        (
            OutOfMemoryError("Out of memory allocating 67,108,864 bytes (allocated so far: 0 bytes)."),
            {"sizes": [1024, 65536]},
            "out_of_memory",
            "--sizes",
        ),
        ("CUDA error: out of memory", {}, "out_of_memory", "nvidia-smi --query-compute-apps"),
        ("cudaErrorMemoryAllocation: out of memory", {}, "out_of_memory", "smaller --sizes"),
        (
            CompileException('/tmp/kern.cu(3): error: identifier "flaot" is undefined\n1 error detected'),
            {},
            "nvrtc_compile_error",
            "NVRTC",
        ),
        ("error: linking with `cc` failed: exit status: 1", {}, "cc_link_failed", "build-essential"),
        ("something nobody has seen before", {}, "unknown", "dmesg"),
    ],
)
def test_each_failure_is_diagnosed_with_its_fix(
    error: Any, context: dict[str, Any], code: str, in_fix: str
) -> None:
    diagnosis = verify.diagnose(error, context)
    assert diagnosis["code"] == code, diagnosis
    assert in_fix in diagnosis["fix"]
    assert (diagnosis["reason"] and "\n" not in diagnosis["reason"].strip()) or code == "nvrtc_compile_error"


def test_a_compile_error_shows_the_nvrtc_log_line() -> None:
    exc = CompileException('/tmp/kern.cu(3): error: identifier "flaot" is undefined\n\n1 error detected')
    assert 'identifier "flaot" is undefined' in verify.diagnose(exc)["reason"]


# --- the Rust CPU figure ------------------------------------------------------------------------------


def test_rust_output_is_extrapolated_from_the_rows_timed() -> None:
    parsed = verify.parse_rust_output("rows=256 n=1024 ms=500.000 ok=true\n")
    assert parsed == {"rows": 256, "n": 1024, "ms": 2000.0, "ok": True}
    assert verify.parse_rust_output("rows=0 n=1024 ms=0.1 ok=true") is None
    assert verify.parse_rust_output("garbage") is None


# --- the program on this machine (no GPU, no CuPy) -----------------------------------------------------


def _this_machine_has_an_nvidia_gpu() -> bool:
    entries = verify.read_sysfs_pci()
    return bool(entries and verify.nvidia_gpus_from_pci(entries))


def test_on_a_machine_without_a_gpu_it_exits_2_with_a_no_gpu_diagnosis() -> None:
    if _this_machine_has_an_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(VERIFY_PY), "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2, proc.stderr
    result = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert result["ok"] is False and result["exit_code"] == 2
    assert result["diagnosis"]["code"] == "no_gpu"
    reason = result["diagnosis"]["reason"]
    assert "\n" not in reason and "0x10de" in reason and "No NVIDIA GPU" in reason
    assert result["diagnosis"]["fix"]
    names = [c["name"] for c in result["checks"]]
    assert {"gpu_present", "driver", "rustc", "cargo", "nvcc", "cudnn", "libcudart", "libnvrtc"} <= set(names)
    assert next(c for c in result["checks"] if c["name"] == "gpu_present")["ok"] is False
    for key in ("host", "gpus", "checks", "perf", "correctness", "warnings", "diagnosis", "timings", "ok"):
        assert key in result
    assert set(result["timings"]) >= {"import_s", "compile_s", "total_s"}
    assert time.perf_counter() - t < 10


def test_bad_arguments_still_answer_in_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(VERIFY_PY), "--json", "--sizes", "big"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["diagnosis"]["code"] == "bad_arguments"


def test_it_imports_and_parses_where_numpy_and_cupy_are_absent() -> None:
    """Hosts run it with whatever python3 they have: the pure functions must not need numpy or cupy."""
    code = (
        "import sys, importlib.util\n"
        "sys.modules['numpy'] = None; sys.modules['cupy'] = None\n"
        f"spec = importlib.util.spec_from_file_location('verify', {str(VERIFY_PY)!r})\n"
        "v = importlib.util.module_from_spec(spec); spec.loader.exec_module(v)\n"
        "print(v.diagnose(ModuleNotFoundError(\"No module named 'cupy'\"))['code'])\n"
        "print(v.parse_nvcc_release('release 13.0, V13.0.88'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["cupy_missing", "13.0"]


def test_the_program_is_python_3_8_syntax() -> None:
    ast.parse(VERIFY_PY.read_text(), feature_version=(3, 8))


# --- the GPU path against a NumPy stand-in for CuPy (CI has no GPU) ------------------------------------


class _FakeEvent:
    def __init__(self) -> None:
        self.t = 0.0

    def record(self) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass


class _FakeModule:
    def __init__(self, code: str) -> None:
        assert "C[row * N + col] = sum" in code

    def get_function(self, name: str) -> Any:
        def launch(grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
            if name == "fill":
                p, value, size = args
                assert grid[0] * block[0] >= size == p.size and isinstance(value, numpy.float32)
                p[...] = value
                return
            a, b, c, m, n, _k = args
            assert block in ((16, 16), (32, 32)) and grid[0] * block[0] >= n and grid[1] * block[1] >= m
            numpy.matmul(a, b, out=c)

        return launch


def fake_cupy() -> Any:
    """FakeCupy: the handful of CuPy calls verify.py makes, done by NumPy on the CPU."""
    cp: Any = types.ModuleType("cupy")
    cp.__version__ = "0.0-fake"
    for name in ("empty", "asarray", "matmul", "float32", "float64"):
        setattr(cp, name, getattr(numpy, name))
    cp.asnumpy = numpy.array  # a copy, as a device-to-host transfer is
    cp.RawModule = lambda code: _FakeModule(code)
    cp.get_default_memory_pool = lambda: types.SimpleNamespace(free_all_blocks=lambda: None)
    runtime = types.SimpleNamespace(
        getDeviceProperties=lambda i: {"name": b"NVIDIA H100 80GB HBM3", "major": 9, "minor": 0},
        memGetInfo=lambda: (80 * 2**30, 81559 * 2**20),
        runtimeGetVersion=lambda: 13000,
        driverGetVersion=lambda: 13000,
    )
    cp.cuda = types.SimpleNamespace(
        Device=lambda i: types.SimpleNamespace(use=lambda: None),
        runtime=runtime,
        nvrtc=types.SimpleNamespace(getVersion=lambda: (13, 0)),
        Event=_FakeEvent,
        get_elapsed_time=lambda s, e: max((e.t - s.t) * 1000, 1e-4),
    )
    return cp


def test_run_gpu_proves_2048_compares_with_blas_and_times_every_kernel() -> None:
    stage: dict[str, str] = {}
    out = verify.run_gpu(fake_cupy(), numpy, [64, 128], None, 0, stage)
    assert stage["at"] == "run"
    assert out["device"]["name"] == "NVIDIA H100 80GB HBM3" and out["device"]["compute_capability"] == "9.0"
    corr = out["correctness"]
    assert corr["exact_2048"] is True and corr["mismatches"] == 0
    assert corr["rel_err_vs_cublas"] < 1e-5
    assert [(p["kernel"], p["n"]) for p in out["perf"]] == [
        (k, n) for n in (64, 128) for k in ("naive", "tiled", "cublas")
    ]
    assert all(p["ms"] > 0 and p["gflops"] > 0 and p["calls"] >= 3 for p in out["perf"]), out["perf"]


def test_a_host_like_the_captured_h100_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, perf_table: dict[str, Any]
) -> None:
    """Captured nvidia-smi outputs behind a fake nvidia-smi, FakeCupy for the GPU: the whole result document."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --query-gpu=*) echo "0, NVIDIA H100 80GB HBM3, 0, 81559, 0, 50, 580.159.04";;\n'
        f"  *) cat {FIXTURES / 'nvidia-smi.txt'};; esac\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUPY_TF32", "1")  # a user's setting the program must override, and say so
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    listing = verify.parse_sysfs_pci_listing(fixture("sysfs-pci.txt"))
    monkeypatch.setattr(verify, "read_sysfs_pci", lambda root="/sys/bus/pci/devices": listing)
    table = tmp_path / "gpu_perf.json"
    table.write_text(json.dumps(perf_table))

    args = verify.parse_args(["--json", "--sizes", "64,128", "--no-rust", "--perf-table", str(table)])
    result, code = verify.verify(args)

    assert os.environ["CUPY_TF32"] == "0"
    assert any("CUPY_TF32=1 was set" in w for w in result["warnings"])
    by_name = {c["name"]: c for c in result["checks"]}
    for name in GPU_CHECKS:
        assert by_name[name]["ok"] is True, by_name[name]
    assert by_name["driver"]["detail"] == "driver 580.159.04, CUDA 13.0 (nvidia-smi)"
    assert result["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert result["host"]["cuda_driver_version"] == "13.0"
    assert result["expected"]["model"] == "H100 SXM"
    assert result["correctness"]["exact_2048"] is True
    assert {p["kernel"] for p in result["perf"]} == {"naive", "tiled", "cublas", "numpy_cpu"}
    assert code == (0 if all(c["ok"] is not False for c in result["checks"]) else 1)
    assert result["ok"] is (code == 0)
    if code == 1:  # e.g. no cuDNN on this machine: the first failed check becomes the diagnosis
        assert result["diagnosis"]["fix"]
    json.dumps(result)  # all of it is JSON-serialisable


# --- the per-host summary table ------------------------------------------------------------------------


def _h100_result() -> dict[str, Any]:
    return {
        "ok": True,
        "exit_code": 0,
        "device": {"name": "NVIDIA H100 80GB HBM3"},
        "gpus": [{"name": "NVIDIA H100 80GB HBM3"}],
        "checks": [
            {"name": "nvcc", "ok": True},
            {"name": "cudnn", "ok": True},
            {"name": "cupy_cuda", "ok": None},
        ],
        "perf": [
            {"kernel": "naive", "n": 1024, "ms": 0.42, "gflops": 5113.0},
            {"kernel": "naive", "n": 4096, "ms": 25.7, "gflops": 5348.0},
            {"kernel": "tiled", "n": 4096, "ms": 15.6, "gflops": 8810.0},
            {"kernel": "cublas", "n": 4096, "ms": 2.66, "gflops": 51669.0},
            {"kernel": "numpy_cpu", "n": 1024, "ms": 20.0, "gflops": 107.0},
        ],
        "warnings": [],
        "diagnosis": None,
    }


def _no_gpu_result() -> dict[str, Any]:
    return {
        "ok": False,
        "exit_code": 2,
        "device": None,
        "gpus": [],
        "checks": [{"name": "gpu_present", "ok": False}, {"name": "rustc", "ok": True}],
        "perf": [],
        "warnings": [],
        "diagnosis": {"code": "no_gpu", "reason": "No NVIDIA GPU on this host", "fix": "check lspci"},
    }


def test_summary_rows_take_the_largest_n_and_count_applicable_checks() -> None:
    rows = gpu_rows_from_results([("gpu01", _h100_result()), ("cpu01", _no_gpu_result()), ("gone", None)])
    h100, cpu, gone = rows
    assert (h100.host, h100.gpu, h100.checks_passed, h100.checks_total) == (
        "gpu01",
        "NVIDIA H100 80GB HBM3",
        2,
        2,
    )
    assert (h100.n, h100.naive_gflops, h100.tiled_gflops, h100.cublas_gflops) == (
        4096,
        5348.0,
        8810.0,
        51669.0,
    )
    assert h100.status == "ok" and h100.notes == ()
    assert (cpu.checks_passed, cpu.checks_total, cpu.n, cpu.status) == (1, 2, None, "cannot run")
    assert cpu.notes[0].startswith("[no_gpu] No NVIDIA GPU on this host -- fix: check lspci")
    assert gone.status == "no result"


def test_summary_renders_as_a_rich_table_and_as_plain_text() -> None:
    rows = gpu_rows_from_results([("gpu01", _h100_result()), ("cpu01", _no_gpu_result())])
    table = render_gpu_table(rows)
    assert table.row_count == 2
    console = Console(record=True, width=220)
    console.print(table)
    shown = console.export_text()
    assert "gpu01" in shown and "51,669" in shown and "[no_gpu]" in shown
    text = render_gpu_text(rows)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["host", "#", "GPU", "bus", "id"]
    assert "51,669" in lines[1] and "2/2" in lines[1]
    assert "notes:" in text and "cpu01: [no_gpu]" in text


# --- driver not built for this kernel (issue 17) -----------------------------------------------------


def test_a_kernel_update_without_the_module_is_diagnosed_as_not_built(tmp_path: Path) -> None:
    """A FAKE /lib/modules: the module built (DKMS) for the old kernel only, the new one booted."""
    old = tmp_path / "6.8.0-51-generic" / "updates" / "dkms"
    old.mkdir(parents=True)
    (old / "nvidia.ko.zst").write_bytes(b"")
    (tmp_path / "6.8.0-52-generic" / "kernel").mkdir(parents=True)
    built = verify.kernels_with_nvidia_module(str(tmp_path))
    assert built == ["6.8.0-51-generic"]
    context = {"driver_loaded": False, "kernel": "6.8.0-52-generic", "built_kernels": built,
               "module_built": "6.8.0-52-generic" in built}
    d = verify.diagnose("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", context)
    assert d["code"] == "driver_not_built"
    assert d["reason"] == ("driver not built for this kernel: no nvidia module for 6.8.0-52-generic "
                           "(built for: 6.8.0-51-generic)")
    assert "sudo dkms autoinstall -k 6.8.0-52-generic" in d["fix"] and "linux-headers-6.8.0-52-generic" in d["fix"]
    # no module for any kernel: the driver is simply not installed
    assert verify.diagnose("nvidia-smi: command not found", {"driver_loaded": False, "module_built": None})[
        "code"] == "no_driver"
