"""The GPU history (SQLite) and the fleet page (one offline HTML file), opened in a real headless Chromium.

The fleet is tests/data/fleet/run.json: five lab hosts built from the H200 captures by make_run.py, with
figures EDITED for one throttling host (lab-h200-02) and one degraded-link host (lab-h200-03); see there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioner.output import history
from provisioner.output.fleet_page import build_page, verify_results

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tests" / "data" / "fleet" / "run.json"
ARTEFACTS = Path(os.environ.get("PROVISION_ARTEFACTS", "/var/tmp/provision-artefacts"))
HOSTS = ("lab-h200-01", "lab-h200-02", "lab-h200-03", "lab-cpu-01", "lab-gone")


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    return json.loads(RUN.read_text())


def result_of(run: dict[str, Any], host: str) -> dict[str, Any]:
    return dict(next(r["result"]["gpu_verify"] for r in run["results"] if r["host"] == host))


def with_cublas(result: dict[str, Any], gflops: float) -> dict[str, Any]:
    """A copy of a recorded result with its cuBLAS 4096 figure edited."""
    out = json.loads(json.dumps(result))
    for p in out["devices"][0]["perf"]:
        if p["kernel"] == "cublas" and p["n"] == 4096:
            p["gflops"] = gflops
    return out


# --- history ----------------------------------------------------------------------------------------------


def test_the_history_lives_where_it_is_documented(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROVISION_HISTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert history.default_path() == tmp_path / "state" / "provision" / "history.sqlite"
    monkeypatch.setenv("PROVISION_HISTORY", str(tmp_path / "h.sqlite"))
    assert history.default_path() == tmp_path / "h.sqlite"


def test_a_gpu_20_percent_below_its_own_median_is_flagged(run: dict[str, Any], tmp_path: Path) -> None:
    db_path = tmp_path / "history.sqlite"
    good = result_of(run, "lab-h200-01")
    for at, gflops in ((1000.0, 51400.0), (2000.0, 51100.0), (3000.0, 51600.0)):
        assert history.record_results(db_path, [("lab-h200-01", with_cublas(good, gflops))], at) == []
    assert history.record_results(db_path, [("lab-h200-01", with_cublas(good, 43000.0))], 4000.0) == []  # -16%
    (flag,) = history.record_results(db_path, [("lab-h200-01", with_cublas(good, 38000.0))], 5000.0)
    assert "lab-h200-01 GPU 0 (0000:00:06.0): cuBLAS 38.0 TFLOP/s is 26% below its median of 51.2 over 4 earlier run(s)" in flag
    db = history.open_history(db_path)
    (line,) = history.series(db, "lab-h200-01").values()
    assert [g for _t, g in line] == [51400.0, 51100.0, 51600.0, 43000.0, 38000.0]
    uuid = db.execute("SELECT DISTINCT uuid FROM gpu_runs").fetchall()
    assert uuid == [("GPU-78f3a913-2b58-9467-2a00-1e1f0a4bdfa3",)]


def test_a_gpu_gone_from_its_host_is_flagged(run: dict[str, Any], tmp_path: Path) -> None:
    db_path = tmp_path / "history.sqlite"
    assert history.record_results(db_path, [("lab-h200-01", result_of(run, "lab-h200-01"))], 1.0) == []
    (flag,) = history.record_results(db_path, [("lab-h200-01", result_of(run, "lab-cpu-01"))], 2.0)
    assert "lab-h200-01: GPU 0 (NVIDIA H200, 0000:00:06.0" in flag and "is gone" in flag


def test_no_gpu_tested_and_no_history_yet_writes_no_file(run: dict[str, Any], tmp_path: Path) -> None:
    assert history.record_results(tmp_path / "h.sqlite", [("lab-cpu-01", result_of(run, "lab-cpu-01"))], 1.0) == []
    assert not (tmp_path / "h.sqlite").exists()


# --- the page ---------------------------------------------------------------------------------------------


def test_every_host_is_on_the_page_and_the_bad_ones_are_red(run: dict[str, Any], tmp_path: Path) -> None:
    assert [h for h, _r in verify_results(run)] == list(HOSTS)
    db_path = tmp_path / "history.sqlite"
    for at, gflops in ((1.0, 51400.0), (2.0, 51200.0)):
        history.record_results(db_path, [("lab-h200-01", with_cublas(result_of(run, "lab-h200-01"), gflops))], at)
    page = build_page(run, db_path, ["a flag line"])
    rows = {host: cls for cls, host in re.findall(r"<tr class='(\w+)' data-host='([\w-]+)'>", page)}
    assert rows == {"lab-h200-01": "ok", "lab-h200-02": "bad", "lab-h200-03": "bad", "lab-cpu-01": "bad",
                    "lab-gone": "bad"}
    assert "Gen3 x4 where Gen5 x16 is possible" in page and "thermal throttling (HW Thermal Slowdown)" in page
    assert page.count("<svg") == 3 * 2 + 1  # perf + bandwidth per GPU host, one history line
    assert "lab-h200-01: history" in page and "a flag line" in page
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page)  # nothing to fetch


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """(DOM or '', console lines) of a page loaded in headless Chromium with every name unresolvable."""
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
         "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (tests/run.sh installs it)")
def test_the_page_opens_offline_in_chromium_with_every_host_and_no_console_message(
    run: dict[str, Any], tmp_path: Path
) -> None:
    page = tmp_path / "fleet.html"
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", "report", "--from", str(RUN), "-o", str(page)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    # The harness hears a console message (the page itself has no script at all).
    noisy = tmp_path / "noisy.html"
    noisy.write_text("<html><body><script>console.error('boom-err')</script></body></html>")
    assert any("boom-err" in line for line in chromium(noisy.as_uri(), tmp_path / "p0", "--dump-dom")[1])

    dom, console = chromium(page.as_uri(), tmp_path / "p1", "--dump-dom")
    assert console == []
    assert "<script" not in page.read_text()
    for host in HOSTS:
        assert f'data-host="{host}"' in dom, host
    assert dom.count("<svg") == 7 - 1  # no history given here: the perf and bandwidth charts only
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "fleet-page.png"
    _dom, console = chromium(page.as_uri(), tmp_path / "p2", "--window-size=1400,2600", f"--screenshot={shot}")
    assert console == [] and shot.stat().st_size > 50_000
    shutil.copy(page, ARTEFACTS / "fleet-page.html")
    print(f"screenshot: {shot}")


def test_the_report_command_refuses_a_missing_file(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", "report", "--from", str(tmp_path / "none.json"),
                           "-o", str(tmp_path / "x.html")], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2 and "report file not found" in proc.stderr


def test_apply_html_writes_the_page_for_this_machine(tmp_path: Path) -> None:
    """The gpu_verify role on this machine (no GPU here: its row says why), with --html and --history."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    page, db = tmp_path / "fleet.html", tmp_path / "history.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "apply", "tests/gpu/verify_only.yml", "--tags", "verify",
         "-e", f"gpu_verify_program_dir={tmp_path / 'lib'}", "-e", "gpu_verify_install_cupy=never",
         "--html", str(page), "--history", str(db)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert f"GPU fleet page: {page}" in proc.stdout, proc.stdout + proc.stderr
    text = page.read_text()
    assert "data-host='localhost'" in text and "GPU fleet: 1 host(s)" in text


def test_the_h200_run_reads_ok_where_only_checks_the_role_does_not_require_failed() -> None:
    """The report of a real run on the device's H200 (60 s burn-in, no Rust installed there): the module's
    verdict is gpu_ok, so the page's row says ok as the run's table did, and rustc stays a note, not a flag."""
    report = json.loads((REPO / "tests" / "data" / "h200-ubuntu2404" / "run-verify-burn60.json").read_text())
    page = build_page(report)
    row = re.search(r"<tr class='(\w+)' data-host='localhost'>(.*?)</tr>", page, re.S)
    assert row is not None and row.group(1) == "ok", row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(2))
    assert cells[4] == "ok" and cells[2] == "NVIDIA H200" and cells[9] == "Gen5 x16"
    assert "4228.0" in cells[7] and "51.269 TFLOP/s" in cells[10]
    assert "<p class='note'>[rustc_failed]" in page and "<p class='flag'>[rustc_failed]" not in page
