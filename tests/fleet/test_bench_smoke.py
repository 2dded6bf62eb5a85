"""The benchmark program works end to end: bench/run.py --quick on one real SSH host.

A functional check only (the table prints, the no-op run stays within 2 exec sessions per
host); the benchmark's timings are figures to read, never assertions.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]


def quick_bench(tmp_path: Path, tool: str) -> tuple[subprocess.CompletedProcess, dict]:
    """bench/run.py --quick on one host for `tool`: the process and its --json figures."""
    figures = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--hosts", "1", "--tools", tool,
         "--json", str(figures)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(figures.read_text())


def test_bench_quick_provision_one_host(fleet_image, tmp_path):
    proc, data = quick_bench(tmp_path, "provision")
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| tool | hosts | first run s"))
    main = lines[start:lines.index("", start)]
    row = [line for line in main if line.startswith("| provision | 1 |")]
    assert len(row) == 1, proc.stdout
    # where the time went: wall, controller CPU, the host's CPU (read from its PID 1), the floor
    for title in ("Where the better no-op run's time went:", "Where the first run's time went:"):
        at = lines.index(title)
        assert lines[at + 2].startswith("| tool | hosts |") and lines[at + 4].startswith("| provision | 1 |"), proc.stdout

    (result,) = data["rows"]
    assert result["first"]["rc"] == 0 and not result["error"], result
    assert len(result["noop"]) == 2
    for run in result["noop"]:
        assert run["rc"] == 0 and run["changed"] == 0, run
        assert run["exec_sessions"] and max(run["exec_sessions"]) <= 2, run
        assert run["peak_rss"] > 0
        assert run["host_cpu_s"] > 0, run  # the host's sshd, python, dpkg-query: never nothing


def test_bench_quick_provision_persist_one_host(fleet_image, tmp_path):
    """provision-persist: the no-op runs find the host's agent kept (no exec session), and the bench
    stops the daemon when the size is done. (That the CPU of what a tool leaves running is counted:
    tests/unit/test_bench_report.py; one host's relay is under a 10 ms tick.)"""
    from bench.run import WORK
    _, data = quick_bench(tmp_path, "provision-persist")
    (result,) = data["rows"]
    assert result["tool"] == "provision-persist" and result["first"]["rc"] == 0 and not result["error"], result
    assert len(result["noop"]) == 2
    for run in result["noop"]:
        assert run["rc"] == 0 and run["changed"] == 0 and run["exec_sessions"] == [0], run
    daemons = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).startswith(
        f"{sys.executable} -m provisioner.connection.persist {WORK}/runs/provision-persist-1-")]
    assert daemons == [], "the bench left its persist daemon running"


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
