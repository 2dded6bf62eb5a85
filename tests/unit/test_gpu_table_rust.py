"""The rust_project role's timings in gpu_verify's result and table: Rust CPU / rayon / GPU, where run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from provisioner.gpu import verify
from provisioner.output.gpu_table import gpu_rows_from_results, render_gpu_text

ROOT = Path(__file__).resolve().parents[2]


def timing_line(n: int, **forms: float) -> dict[str, object]:
    return {"gpu_ml": 1, "n": n, "expected": 2 * n, "threads": 2, "user": "alice", "path": "/home/alice/gpu-ml",
            "forms": {f: {"ms": ms, "check": 2 * n, "ok": True} for f, ms in forms.items()}, "left_out": {}}


def test_timing_lines_become_perf_rows_and_a_broken_one_a_warning(tmp_path: Path) -> None:
    (tmp_path / "alice.json").write_text(json.dumps(timing_line(1024, plain=2000.0, rayon=50.0, cuda=1.5)))
    (tmp_path / "bob.json").write_text("{not json")
    warnings: list[str] = []
    rows = verify.rust_project_rows(str(tmp_path), warnings)
    assert [(r["kernel"], r["n"], r["ms"]) for r in rows] == [
        ("rust_plain", 1024, 2000.0), ("rust_rayon", 1024, 50.0), ("rust_gpu", 1024, 1.5)]
    assert rows[2]["gflops"] == 1431.7                         # the chapter's ~1433 GFLOP/s at 1.5 ms
    assert rows[0]["user"] == "alice" and rows[0]["source"] == "rust_project" and rows[0]["correct"] is True
    assert len(warnings) == 1 and warnings[0].startswith("unreadable Rust project timing bob.json")
    assert verify.rust_project_rows(str(tmp_path / "absent"), warnings) == []


def test_a_gpu_less_box_still_reports_its_rust_cpu_rows(tmp_path: Path) -> None:
    (tmp_path / "alice.json").write_text(json.dumps(timing_line(512, plain=536.1, rayon=306.1)))
    proc = subprocess.run([sys.executable, str(ROOT / "provisioner/gpu/verify.py"), "--json", "--no-rust",
                           "--rust-results", str(tmp_path)], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout)
    assert result["exit_code"] == 2 and result["diagnosis"]["code"] == "no_gpu"
    assert [(p["kernel"], p["ms"]) for p in result["perf"]] == [("rust_plain", 536.1), ("rust_rayon", 306.1)]
    text = render_gpu_text(gpu_rows_from_results([("box1", result)]))
    header, row = text.splitlines()[:2]
    assert re.split(r"\s{2,}", header.strip())[-3:] == ["Rust CPU ms", "Rust rayon ms", "status"]
    assert "Rust GPU ms" not in header                          # not run anywhere: no column
    assert row.split()[-4:] == ["536.1", "306.1", "cannot", "run"]
    assert "box1: Rust timings at n=512" in text


def test_no_rust_figures_no_rust_columns() -> None:
    text = render_gpu_text(gpu_rows_from_results([("h", {"ok": True, "checks": [], "perf": []})]))
    assert "Rust" not in text.splitlines()[0]
