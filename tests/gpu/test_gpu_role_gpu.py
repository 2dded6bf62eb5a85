"""The gpu_verify role applied for real to this machine's GPU through the CLI (skipped without one).

Three applies of tests/gpu/verify_only.yml: a first one (the program written, the kernels compiled), a
second one (nothing rewritten, the compile cached) and a --check one into a fresh directory (nothing
written). The figures to reach are a benchmark, recorded in docs/GPU_VERIFY.md, not asserted here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gpu.cuda import gpu_module_marks

pytestmark = gpu_module_marks()

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "tests" / "gpu" / "verify_only.yml"
SUMMARY = re.compile(r"^.+: \d+/\d+ checks, naive [\d.]+ / tiled [\d.]+ / cuBLAS [\d.]+ TFLOP/s at n=4096")


def apply(program_dir: Path, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "apply", str(PLAYBOOK), "--tags", "verify",
         "--report", str(report), "-e", f"gpu_verify_program_dir={program_dir}", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc, json.loads(report.read_text())


def verify_task(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["results"] if r["action"] == "gpu_verify" and "gpu_verify" in r["result"])


def role_seconds(report: dict[str, Any]) -> float:
    return sum(r["duration_s"] for r in report["results"] if r["task"].startswith("gpu_verify : "))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("role")
    out: dict[str, Any] = {"dir": tmp / "lib", "check_dir": tmp / "check"}
    out["first"] = apply(out["dir"], tmp / "first.json")
    out["stamp"] = (out["dir"] / "gpu_verify.py").stat().st_mtime_ns
    out["second"] = apply(out["dir"], tmp / "second.json")
    out["check"] = apply(out["check_dir"], tmp / "check.json", "--check")
    return out


def test_the_role_passes_on_this_gpu_and_prints_its_row(runs: dict[str, Any]) -> None:
    proc, report = runs["first"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    task = verify_task(report)
    assert task["status"] == "ok" and task["result"]["gpu_ok"] is True, task["msg"]
    assert SUMMARY.match(task["msg"]), task["msg"]
    assert task["result"]["failed_required_checks"] == []
    table = proc.stdout[proc.stdout.index("GPU verification"):]
    row = next(line for line in table.splitlines() if line.startswith("localhost"))
    assert row.rstrip().endswith("ok")
    print(table)


def test_the_chapters_proof_holds(runs: dict[str, Any]) -> None:
    result = verify_task(runs["first"][1])["result"]["gpu_verify"]
    corr = result["correctness"]
    assert corr["exact_2048"] is True and corr["mismatches"] == 0 and corr["tiled_mismatches"] == 0
    assert corr["rel_err_vs_cublas"] < 1e-5 and corr["tiled_rel_err_vs_cublas"] < 1e-5
    measured = {(p["kernel"], p["n"]) for p in result["perf"]}
    assert {(k, n) for k in ("naive", "tiled", "cublas") for n in (1024, 4096)} <= measured


def test_a_second_run_rewrites_nothing_and_reuses_the_compiled_kernels(runs: dict[str, Any]) -> None:
    proc, report = runs["second"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    task = verify_task(report)
    assert task["result"]["program_written"] is False
    assert (runs["dir"] / "gpu_verify.py").stat().st_mtime_ns == runs["stamp"]
    assert report["recap"]["localhost"]["changed"] == 0
    # a loose bound against regressions; the 3 s goal is measured and written down in docs/GPU_VERIFY.md
    assert role_seconds(report) < 15, role_seconds(report)


def test_check_mode_verifies_without_writing(runs: dict[str, Any]) -> None:
    proc, report = runs["check"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    task = verify_task(report)
    assert task["status"] == "ok" and "(check mode: would write " in task["msg"]
    assert not runs["check_dir"].exists()
