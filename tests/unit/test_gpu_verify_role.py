"""The gpu_verify role and module without a GPU: the role fails a GPU-less host with the one-line "no GPU"
reason, the module finds a Python with CuPy, installs the program once, and judges by the GPU checks only;
the summary after the recap renders from a module result. The real thing: tests/gpu/test_gpu_role_gpu.py.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from provisioner.executor.results import FAILED, OK, TaskResult
from provisioner.modules import gpu_verify as mod
from provisioner.output.summary import gpu_rows, print_summaries
from provisioner.shipped import DATA_DIR
from provisioner.template import LazyVars, Templar
from tests.unit.modhelp import run_module

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "gpu_verify"
PLAYBOOK = REPO / "tests" / "gpu" / "verify_only.yml"
VERIFY_PY = REPO / "provisioner" / "gpu" / "verify.py"
NO_GPU = "No NVIDIA GPU on this host"
TABLE = {"version": 1, "gpus": [{"model": "H100 SXM", "match": "H100", "cublas_4096_gflops": 51600}]}


@pytest.fixture(autouse=True)
def _forget_usable_pythons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod, "_USABLE", {})


def needs_no_gpu() -> None:
    if mod.gpu_vendor() is not None:
        pytest.skip("this machine has a GPU: tests/gpu covers it")


def h100_result(**changes: Any) -> dict[str, Any]:
    """A verify.py answer as the H100 host gives it, without rustc there (exit 1: a checklist line failed)."""
    checks = [{"name": n, "ok": True, "detail": n, "fix": None} for n in
              ("gpu_present", "driver", "cc", "nvcc", "cudnn", "libcudart", "libnvrtc", "cupy", "cupy_cuda",
               "kernel_compile", "matmul_exact_2048", "matmul_vs_cublas")]
    checks[2:2] = [{"name": n, "ok": False, "detail": f"{n} not found (PATH, ~/.cargo/bin)", "fix": "rustup"}
                   for n in ("rustc", "cargo")]
    perf = [{"kernel": k, "n": n, "ms": ms, "gflops": g} for k, n, ms, g in (
        ("naive", 1024, 0.42, 5110.0), ("tiled", 1024, 0.24, 8900.0), ("cublas", 1024, 0.058, 37000.0),
        ("naive", 4096, 25.7, 5348.0), ("tiled", 4096, 15.6, 8810.0), ("cublas", 4096, 2.66, 51669.0),
        ("numpy_cpu", 1024, 12.0, 179.0))]
    result = {"schema": 1, "ok": False, "exit_code": 1, "checks": checks, "perf": perf, "warnings": [],
              "device": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
              "gpus": [{"name": "NVIDIA H100 80GB HBM3"}],
              "diagnosis": {"code": "rustc_failed", "reason": "rustc: rustc not found", "fix": "rustup"}}
    result.update(changes)
    return result


def fake_python(path: Path, version: str | None = "14.2.0", answer: dict[str, Any] | None = None,
                rc: int = 0) -> str:
    """A stand-in interpreter: `-c <probe>` imports "cupy" (or fails like Python), a script prints `answer`."""
    probe = (f"printf %s {version}; exit 0" if version else
             "echo 'ModuleNotFoundError: No module named '\"'\"'cupy'\"'\"'' >&2; exit 1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n"
                    f'if [ "$1" = "-c" ]; then {probe}; fi\n'
                    f'echo "$@" > "{path}.argv"\n'
                    f"cat <<'EOF'\n{json.dumps(answer or {})}\nEOF\nexit {rc}\n")
    path.chmod(0o755)
    return str(path)


# --- the role on this GPU-less machine, through the CLI ----------------------------------------------------


def apply_role(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "apply", str(PLAYBOOK), "--report", str(report),
         "-e", f"gpu_verify_program_dir={tmp_path / 'lib'}", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    return proc, json.loads(report.read_text())


def verify_task(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["results"] if r["action"] == "gpu_verify" and "gpu_verify" in r["result"])


def test_a_host_without_a_gpu_fails_the_role_with_the_one_line_no_gpu_reason(tmp_path: Path) -> None:
    needs_no_gpu()
    proc, report = apply_role(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("failed: [localhost]")]
    assert len(failed) == 1 and NO_GPU in failed[0] and "-- fix: " in failed[0]
    task = verify_task(report)
    assert task["status"] == FAILED and task["msg"].startswith(NO_GPU) and "\n" not in task["msg"]
    assert task["result"]["gpu_verify"]["diagnosis"]["code"] == "no_gpu"
    assert report["recap"]["localhost"]["failed"] == 1
    pip = next(r for r in report["results"] if r["action"] == "pip")
    assert pip["status"] == "skipped"  # no GPU on the bus: CuPy is not installed for nothing
    # the table after the recap, as plain text since stdout is a pipe here
    table = proc.stdout[proc.stdout.index("GPU verification"):]
    assert "localhost" in table and "cannot run" in table and f"[no_gpu] {NO_GPU}" in table


def test_the_program_is_written_once(tmp_path: Path) -> None:
    needs_no_gpu()
    program, table = tmp_path / "lib" / "gpu_verify.py", tmp_path / "lib" / "gpu_perf.json"
    _proc, first = apply_role(tmp_path)
    assert verify_task(first)["result"]["program_written"] is True
    assert program.read_bytes() == VERIFY_PY.read_bytes()  # the agent's bundled copy, byte for byte
    assert json.loads(table.read_text())["gpus"][0]["model"]
    stamps = program.stat().st_mtime_ns, table.stat().st_mtime_ns
    _proc, second = apply_role(tmp_path)
    assert verify_task(second)["result"]["program_written"] is False
    assert (program.stat().st_mtime_ns, table.stat().st_mtime_ns) == stamps


def test_check_mode_writes_nothing_and_says_what_it_would_write(tmp_path: Path) -> None:
    needs_no_gpu()
    proc, report = apply_role(tmp_path, "--check")
    assert not (tmp_path / "lib").exists()
    task = verify_task(report)
    assert NO_GPU in task["msg"] and "(check mode: would write " in task["msg"]
    assert task["status"] == FAILED  # no GPU: no later task could fix that
    assert report["check_mode"] is True and proc.returncode == 1


# --- the module in-process ----------------------------------------------------------------------------------


def test_candidates_come_in_order_without_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    host = mod.Host()
    monkeypatch.setattr(host, "which", lambda name: sys.executable)
    args = mod.Args(python="/opt/mine/bin/python", venv="/opt/provision/venv")
    assert mod.candidate_pythons(args, host) == ["/opt/mine/bin/python", "/opt/provision/venv/bin/python",
                                                 sys.executable]


def test_the_first_python_that_imports_cupy_wins(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "python")
    without = fake_python(tmp_path / "plain" / "python", version=None)
    good = fake_python(tmp_path / "venv" / "bin" / "python", version="14.2.0")
    later = fake_python(tmp_path / "other" / "python", version="13.6.0")
    python, version, tried = mod.find_cupy([missing, without, good, later], mod.Host())
    assert (python, version) == (good, "14.2.0")
    assert tried == [{"python": missing, "error": "not found"},
                     {"python": without, "error": "ModuleNotFoundError: No module named 'cupy'"}]
    assert not Path(later + ".argv").exists()
    # a Python that imported CuPy is remembered for the run: the probe task pays, the verify task does not
    Path(good).write_text("#!/bin/sh\nexit 1\n")
    assert mod.find_cupy([good], mod.Host())[:2] == (good, "14.2.0")


def test_the_probe_reports_cupy_and_the_gpu_vendor(tmp_path: Path) -> None:
    good = fake_python(tmp_path / "py" / "python")
    out = run_module("gpu_verify", probe=True, python=good, venv=str(tmp_path / "venv"))
    assert out["cupy_python"] == good and out["cupy_version"] == "14.2.0"
    assert out["changed"] is False and out["failed"] is False
    assert out["gpu_vendor"] == mod.gpu_vendor()
    assert out["msg"].startswith(f"CuPy 14.2.0 in {good}")
    none = run_module("gpu_verify", probe=True, python=str(tmp_path / "absent"), venv=str(tmp_path / "venv"))
    assert none["cupy_python"] is None or none["cupy_python"] != str(tmp_path / "absent")


def test_a_passing_gpu_with_rust_missing_is_ok_and_lists_what_is_not_required(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "py" / "python", answer=h100_result(), rc=1)
    out = run_module("gpu_verify", python=python, venv=str(tmp_path / "venv"), perf_table=TABLE,
                     program_dir=str(tmp_path / "lib"), sizes="1024,4096")
    assert out["failed"] is False and out["changed"] is False and out["gpu_ok"] is True
    assert out["msg"] == ("H100 80GB HBM3: 12/14 checks, naive 5.3 / tiled 8.8 / cuBLAS 51.7 TFLOP/s at n=4096; "
                          "not required, failing: rustc, cargo")
    assert out["failed_checks"] == ["rustc", "cargo"] and out["failed_required_checks"] == []
    argv = Path(python + ".argv").read_text().split()
    assert argv == [str(tmp_path / "lib" / "gpu_verify.py"), "--json", "--sizes", "1024,4096",
                    "--perf-table", str(tmp_path / "lib" / "gpu_perf.json")]
    assert out["gpu_verify"]["device"]["name"] == "NVIDIA H100 80GB HBM3"
    strict = run_module("gpu_verify", python=python, perf_table=TABLE, program_dir=str(tmp_path / "lib"),
                        required_checks=list(mod.GPU_CHECKS) + ["rustc"])
    assert strict["failed"] is True and strict["msg"] == "rustc: rustc not found (PATH, ~/.cargo/bin) -- fix: rustup"


def test_a_wrong_result_fails_with_the_failing_gpu_check(tmp_path: Path) -> None:
    result = h100_result()
    exact = next(c for c in result["checks"] if c["name"] == "matmul_exact_2048")
    exact.update(ok=False, detail="1024x1024 ones x twos: 17 naive and 0 tiled elements differ from 2048",
                 fix="look for Xid errors in dmesg")
    python = fake_python(tmp_path / "py" / "python", answer=result, rc=1)
    out = run_module("gpu_verify", python=python, program_dir=str(tmp_path / "lib"))
    assert out["failed"] is True and out["failed_required_checks"] == ["matmul_exact_2048"]
    assert out["msg"] == ("matmul_exact_2048: 1024x1024 ones x twos: 17 naive and 0 tiled elements differ from "
                          "2048 -- fix: look for Xid errors in dmesg")


def test_a_program_that_prints_no_json_fails_with_its_stderr(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n[ \"$1\" = -c ] && exit 0\necho 'Segmentation fault' >&2\nexit 139\n")
    python.chmod(0o755)
    out = run_module("gpu_verify", python=str(python), program_dir=str(tmp_path / "lib"))
    assert out["failed"] is True and out["msg"] == "gpu_verify.py printed no JSON (rc=139): Segmentation fault"


def test_in_check_mode_a_host_not_provisioned_yet_does_not_fail(tmp_path: Path) -> None:
    """No CuPy anywhere and the driver missing: a real run would install them before verifying."""
    answer = {"ok": False, "exit_code": 2, "checks": [], "perf": [], "device": None,
              "diagnosis": {"code": "no_driver", "reason": "nvidia-smi: command not found", "fix": "install it"}}
    python = fake_python(tmp_path / "py" / "python", version=None, answer=answer, rc=2)
    out = run_module("gpu_verify", check=True, python=python, venv=str(tmp_path / "venv"),
                     program_dir=str(tmp_path / "lib"))
    if out.get("cupy_python"):
        pytest.skip("a real CuPy is installed here")
    assert out["failed"] is False and not (tmp_path / "lib").exists()
    assert out["msg"].startswith("check mode, no CuPy yet (a real run installs it first): nvidia-smi: command")
    apply = run_module("gpu_verify", python=python, venv=str(tmp_path / "venv"), program_dir=str(tmp_path / "lib"))
    assert apply["failed"] is True and apply["msg"] == "nvidia-smi: command not found -- fix: install it"


def test_the_program_comes_from_the_agents_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    main = type(sys)("__main__")
    main._SOURCES = {"provisioner.gpu.verify": b"print('bundled')\n"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert mod.program_source() == b"print('bundled')\n"


def program_dir_as_nobody(wanted: str, home: Path) -> str:
    """mod.program_dir(wanted) asked by an unprivileged user: `nobody` through setpriv when this is
    root (CI), else the user running the tests; with HOME=home, under the hosts' system python."""
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    proc = subprocess.run(
        [*drop, "env", "-i", f"HOME={home}", f"PYTHONPATH={REPO}", "PYTHONDONTWRITEBYTECODE=1", python, "-c",
         "import os, sys; from provisioner.modules import gpu_verify as m; "
         "print(os.geteuid()); print(m.program_dir(sys.argv[1]))", wanted],
        capture_output=True, text=True, timeout=60, check=True)
    uid, answer = proc.stdout.splitlines()
    assert uid != "0"
    return answer


def test_an_unwritable_program_dir_falls_back_to_the_users_cache(tmp_path: Path) -> None:
    assert mod.program_dir(str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
    # pytest's tmp_path sits below a 0700 directory: use one the unprivileged user can walk into
    base = Path(tempfile.mkdtemp(prefix="gpu-verify-"))
    try:
        base.chmod(0o755)
        locked = base / "owned-by-root"      # there, but not writable by the asking user
        locked.mkdir(mode=0o755)
        home = base / "home"
        for wanted in (str(locked / "lib"), "/proc/provision"):
            assert program_dir_as_nobody(wanted, home) == f"{home}/.cache/provision", wanted
        if os.geteuid() == 0:   # root may write there: it keeps the directory it asked for
            assert mod.program_dir(str(locked / "lib")) == str(locked / "lib")
    finally:
        shutil.rmtree(base)


def test_the_module_runs_under_the_hosts_python_3_8() -> None:
    source = Path(mod.__file__).read_text()
    ast.parse(source, feature_version=(3, 8))
    assert "removeprefix" not in source.replace("# noqa: FURB188", "")


# --- the role's decisions, rendered as the engine does -----------------------------------------------------


def role_vars(facts: dict[str, Any], probe: dict[str, Any] | None = None, **extra: Any) -> LazyVars:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    layer = {"ansible_facts": facts, "role_path": str(ROLE), "provision_data_dir": str(DATA_DIR),
             "gpu_verify_probe": probe or {"cupy_python": None, "gpu_vendor": "nvidia"}, **extra}
    return LazyVars([defaults, layer], Templar())


@pytest.mark.parametrize(("facts", "vendor", "package"), [
    ({"cuda": {"nvcc_version": "12.4"}, "nvidia": {"cuda_version": "13.0"}}, "nvidia", "cupy-cuda12x"),
    ({"cuda": None, "nvidia": {"cuda_version": "13.0"}}, "nvidia", "cupy-cuda13x"),
    ({"cuda": {"nvcc_version": None}, "nvidia": {"cuda_version": "12.8"}}, "nvidia", "cupy-cuda12x"),
    ({"cuda": None, "nvidia": None}, "nvidia", "cupy-cuda13x"),
    ({"cuda": None, "nvidia": None, "rocm": {"version": "7.0.2"}}, "amd", "cupy-rocm-7-0"),
    ({"cuda": None, "nvidia": None, "rocm": {"version": "5.7.1"}}, "amd", "cupy-rocm-5-0"),
    ({"cuda": None, "nvidia": None, "rocm": {"version": "6.2.0"}}, "amd", "cupy"),
])
def test_the_cupy_wheel_matches_the_hosts_cuda_or_rocm(facts: dict[str, Any], vendor: str, package: str) -> None:
    variables = role_vars(facts, {"cupy_python": None, "gpu_vendor": vendor})
    assert variables["gpu_verify_cupy_package"] == package
    assert variables["gpu_verify_pip_packages"] == [package, "numpy"]


@pytest.mark.parametrize(("install", "cupy_python", "vendor", "runs"), [
    ("auto", None, "nvidia", True),
    ("auto", "/usr/bin/python3", "nvidia", False),  # an existing usable CuPy is used as it is
    ("auto", None, None, False),                      # no GPU: nothing to install CuPy for
    ("always", "/usr/bin/python3", "nvidia", True),
    ("never", None, "nvidia", False),
    (False, None, "nvidia", False),
])
def test_cupy_is_installed_only_when_needed(install: Any, cupy_python: str | None, vendor: str | None,
                                            runs: bool) -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    pip = next(t for t in tasks if "pip" in t)
    variables = role_vars({}, {"cupy_python": cupy_python, "gpu_vendor": vendor}, gpu_verify_install_cupy=install)
    assert all(Templar().condition(c, variables) for c in pip["when"]) is runs
    assert all("verify" in t["tags"] for t in tasks)


def test_the_perf_table_is_read_on_the_controller() -> None:
    variables = role_vars({})
    table = Templar().render("{{ lookup('file', gpu_verify_perf_table_file) | from_yaml }}", variables)
    assert any(row["model"] == "H100 SXM" for row in table["gpus"])


# --- the table after the recap ------------------------------------------------------------------------------


def task_result(host: str, status: str, data: dict[str, Any]) -> TaskResult:
    return TaskResult(host, "gpu_verify : Verify the GPU", "gpu_verify", status, data.get("msg", ""), data)


def test_the_summary_table_renders_from_module_results() -> None:
    ok = task_result("gpu01", OK, {"gpu_verify": h100_result(), "gpu_ok": True})
    bad = task_result("cpu01", FAILED, {"gpu_verify": {"ok": False, "exit_code": 2, "checks": [], "perf": [],
                                                       "diagnosis": {"code": "no_gpu", "reason": NO_GPU,
                                                                     "fix": "check lspci"}}, "gpu_ok": False})
    probe = task_result("gpu01", OK, {"cupy_python": "/usr/bin/python3"})
    rows = gpu_rows([probe, ok, bad])
    assert [(r.host, r.status) for r in rows] == [("gpu01", "ok"), ("cpu01", "cannot run")]
    assert rows[0].notes[0].startswith("[rustc_failed]")  # not required: shown, yet the host is ok

    text = io.StringIO()
    print_summaries([probe, ok, bad], Console(file=text, width=100, force_terminal=False))
    lines = text.getvalue().splitlines()
    assert lines[1] == "GPU verification" and lines[2].split()[:3] == ["host", "#", "GPU"]
    assert "gpu01" in lines[3] and "14/14" not in lines[3] and "12/14" in lines[3] and "51,669" in lines[3]
    assert lines[3].rstrip().endswith("ok") and "cannot run" in lines[4]
    assert f"cpu01: [no_gpu] {NO_GPU} -- fix: check lspci" in text.getvalue()

    rich_out = io.StringIO()
    print_summaries([ok], Console(file=rich_out, width=200, force_terminal=True, color_system=None))
    assert "GPU verification" in rich_out.getvalue() and "51,669" in rich_out.getvalue()


def test_no_gpu_verify_results_print_nothing() -> None:
    text = io.StringIO()
    print_summaries([task_result("a", OK, {"rc": 0})], Console(file=text))
    assert text.getvalue() == ""
