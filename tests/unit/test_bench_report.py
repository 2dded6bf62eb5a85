"""bench/run.py's report: where a run's time went, and the issue's goals, computed from the figures
(the figures here are made up; the benchmark itself runs in tests/fleet/test_bench_smoke.py)."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

from bench.run import Row, RunFigures, goals, run_measured, tagged_cpu, time_table


def run(seconds: float, ctl: float = 0.0, hosts: float = 0.0, sessions: int = 1, n: int = 1) -> RunFigures:
    return RunFigures(seconds=seconds, rc=0, peak_rss=60 * 2**20, cpu_s=ctl, processes=1,
                      exec_sessions=[sessions] * n, changed=0, host_cpu_s=hosts)


def test_time_table_splits_wall_time_into_cpu_floor_and_waiting() -> None:
    row = Row("provision", 20, "v", first=run(12.0, 0.5, 20.0, n=20), noop=[run(1.2, 0.4, 1.4, n=20),
                                                                          run(1.0, 0.3, 1.3, n=20)])
    lines = time_table([row], cores=2).splitlines()
    # the better no-op: 1.0 s wall; (0.3 + 1.3) / 2 cores = 0.80 s of floor, 0.20 s beyond it
    assert lines[2] == "| provision | 20 | 1.00 | 0.30 | 1.30 (65 ms) | 0.80 | 0.20 |"
    assert time_table([row], cores=2, which="first").splitlines()[2] == \
        "| provision | 20 | 12.00 | 0.50 | 20.00 (1000 ms) | 10.25 | 1.75 |"


def test_goals_say_met_or_not_from_one_runs_figures() -> None:
    rows = [Row("provision", 200, "v", first=run(100.0, n=200), noop=[run(8.0, n=200)]),
            Row("pyinfra", 200, "v", first=run(120.0, sessions=15, n=200), noop=[run(24.0, sessions=15, n=200)]),
            Row("provision", 20, "v", first=run(12.0, n=20), noop=[run(1.0, sessions=2, n=20)]),
            Row("pyinfra", 20, "v", first=run(13.0, sessions=15, n=20), noop=[run(2.0, sessions=15, n=20)])]
    text = goals(rows)
    assert "| no-op >= 2.5x faster than pyinfra | 200 | 3.00x (8.00 s vs 24.00 s) | yes |" in text
    assert "| no-op >= 2.5x faster than pyinfra | 20 | 2.00x (1.00 s vs 2.00 s) | **no** |" in text
    assert "| first run >= 1.25x faster than pyinfra | 200 | 1.20x (100.0 s vs 120.0 s) | **no** |" in text
    assert "| 1 SSH exec session per host, no-op | 20 | 2 | **no** |" in text
    assert "| controller memory <= 70 MB | 200 | 60 MB | yes |" in text




def test_goals_are_checked_for_persist_too_and_apart() -> None:
    rows = [Row("provision", 50, "v", first=run(30.0, n=50), noop=[run(2.0, n=50)]),
            Row("provision-persist", 50, "v", first=run(31.0, n=50), noop=[run(1.5, sessions=0, n=50)]),
            Row("pyinfra", 50, "v", first=run(36.0, sessions=15, n=50), noop=[run(4.5, sessions=15, n=50)])]
    text = goals(rows)
    assert "| no-op >= 2.5x faster than pyinfra | 50 | 2.25x (2.00 s vs 4.50 s) | **no** |" in text
    assert "| no-op >= 2.5x faster than pyinfra, --persist | 50 | 3.00x (1.50 s vs 4.50 s) | yes |" in text
    assert "| 1 SSH exec session per host, no-op, --persist | 50 | 0 | yes |" in text


def test_the_cpu_of_what_outlives_the_tool_is_counted(tmp_path: Path) -> None:
    """A process the tool leaves running (a persist daemon, an ssh master) spends CPU the tool's
    rusage never sees: run_measured adds what tagged live processes spent during the run."""
    tag = uuid.uuid4().hex
    # the tool starts a detached child that burns ~0.3 s of CPU, then exits at once
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
            "'import time\\nt=time.process_time()\\nwhile time.process_time()-t<0.3: pass\\ntime.sleep(30)'], "
            "start_new_session=True)")
    env = {**os.environ, "PROVISION_BENCH_TAG": tag}
    try:
        r = run_measured([sys.executable, "-c", code + "; import time; time.sleep(0.8)"], env, tmp_path,
                         tmp_path / "log", timeout=30)
        assert r.rc == 0
        assert r.detached_cpu_s >= 0.25 and r.cpu_s >= r.detached_cpu_s
    finally:
        for pid in tagged_cpu(tag):   # the child our tool started, by its PID
            os.kill(pid, signal.SIGKILL)
