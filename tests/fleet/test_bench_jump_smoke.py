"""bench/run.py --via-jump works end to end: one host behind one jump host, one login on the jump host.

A functional check only; the figures are to read (bench/README.md), never assertions.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]


def test_bench_via_jump_one_host(fleet_image, tmp_path):  # type: ignore[no-untyped-def]
    figures = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--hosts", "1", "--tools", "provision", "--via-jump",
         "--noop-runs", "1", "--no-warm-cache", "--json", str(figures)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(line.startswith("| provision, through one jump host (ProxyJump) | 1 |")
               for line in proc.stdout.splitlines()), proc.stdout
    assert "jump host: 1 SSH connection(s) this run" in proc.stderr
    rows = {r["tool"]: r for r in json.loads(figures.read_text())["rows"]}
    assert set(rows) == {"provision", "provision-jump"}
    for row in rows.values():
        assert not row["error"] and row["first"]["rc"] == 0, row
        (noop,) = row["noop"]
        assert noop["rc"] == 0 and noop["changed"] == 0 and noop["exec_sessions"] == [1], noop
