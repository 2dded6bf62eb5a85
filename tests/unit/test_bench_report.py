"""bench/run.py's report: where a run's time went, and the issue's goals, computed from the figures
(the figures here are made up; the benchmark itself runs in tests/fleet/test_bench_smoke.py)."""

from __future__ import annotations

from bench.run import Row, RunFigures, goals, time_table


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


