"""The GPU verification program run for real on an NVIDIA GPU with CuPy (skipped everywhere else)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gpu.cuda import GPU_CHECKS, gpu_module_marks

pytestmark = gpu_module_marks()

REPO = Path(__file__).resolve().parents[2]
VERIFY_PY = REPO / "provisioner" / "gpu" / "verify.py"


def run_verify(*args: str, tmp: Path) -> tuple[int, dict[str, Any]]:
    table = tmp / "gpu_perf.json"
    table.write_text(json.dumps(yaml.safe_load((REPO / "provisioner" / "data" / "gpu_perf.yml").read_text())))
    proc = subprocess.run(
        [sys.executable, str(VERIFY_PY), "--json", "--perf-table", str(table), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    return run_verify(tmp=tmp_path_factory.mktemp("verify"))


def test_the_gpu_checks_pass(verified: tuple[int, dict[str, Any]]) -> None:
    code, result = verified
    # Exit 1 is allowed: the host's toolchain (rustc, cuDNN) may be incomplete; the GPU part must not be.
    assert code in (0, 1), result["diagnosis"]
    by_name = {c["name"]: c for c in result["checks"]}
    for name in GPU_CHECKS:
        assert by_name[name]["ok"] is True, by_name[name]
    assert result["device"]["name"] and result["gpus"]


def test_every_element_is_exactly_2048_and_the_kernel_agrees_with_cublas(
    verified: tuple[int, dict[str, Any]],
) -> None:
    corr = verified[1]["correctness"]
    assert corr["exact_2048"] is True and corr["mismatches"] == 0 and corr["tiled_mismatches"] == 0
    assert corr["rel_err_vs_cublas"] < 1e-5
    assert corr["tiled_rel_err_vs_cublas"] < 1e-5
    assert corr["cublas_compute_type"] in (None, "COMPUTE_TYPE_DEFAULT", "DEFAULT")  # TF32 off


def test_the_performance_table_is_filled(verified: tuple[int, dict[str, Any]]) -> None:
    perf = verified[1]["perf"]
    measured = {(p["kernel"], p["n"]) for p in perf}
    assert {(k, n) for k in ("naive", "tiled", "cublas") for n in (1024, 4096)} <= measured
    assert ("numpy_cpu", 1024) in measured
    assert all(p["ms"] > 0 and p["gflops"] > 0 for p in perf)
    for row in perf:
        print(f"{row['kernel']:>18} n={row['n']:<5} {row['ms']:9.4f} ms {row['gflops']:10.1f} GFLOP/s")


def test_h100_and_h200_find_their_expected_figures(verified: tuple[int, dict[str, Any]]) -> None:
    result = verified[1]
    name = result["device"]["name"]
    if "H100" not in name and "H200" not in name:
        pytest.skip(f"{name} is neither an H100 nor an H200")
    assert result["expected"] is not None
    assert result["expected"]["model"].startswith(("H100", "H200"))


def test_a_size_that_cannot_fit_is_diagnosed_as_out_of_memory(tmp_path: Path) -> None:
    code, result = run_verify("--sizes", "200000", "--no-rust", tmp=tmp_path)  # 160 GB per matrix
    assert code == 2
    assert result["diagnosis"]["code"] == "out_of_memory"
    assert "--sizes" in result["diagnosis"]["fix"]
