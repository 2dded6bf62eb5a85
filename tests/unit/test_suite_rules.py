"""The suite's own rules (tests/conftest.py), proven on tiny throw-away suites run by a real pytest:
under CI a skipped fleet, ssh or unit test fails the run with its reason, GPU tests stay skipped and
say so, and every run ends with one line counting what ran per kind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A loopback port nothing listens on: a mirror that refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_suite(tmp_path: Path, files: dict[str, str], ci: bool, **env: str) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(env, PYTHONPATH=str(REPO))
    if ci:
        environ["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", "-rA",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120, check=False)


def suite_line(proc: subprocess.CompletedProcess[str]) -> str:
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("suite: ")]
    return line


# The real fleet fixture, as tests/fleet uses it, behind an unreachable Debian mirror and an empty
# image cache: exactly what a CI machine without the mirror would meet.
FLEET_SUITE = {
    "conftest.py": "from tests.fleet.conftest import fleet_image, fleet_factory  # noqa: F401\n",
    "test_fleet_needs_mirror.py": (
        "def test_hosts(fleet_factory):\n"
        "    assert fleet_factory(1).hosts\n"
    ),
}


@pytest.fixture
def no_mirror(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "fleet-cache"
    empty.mkdir()
    return {"PROVISION_FLEET_DIR": str(empty), "PROVISION_FLEET_MIRROR": f"http://127.0.0.1:{closed_port()}/debian"}


def test_under_ci_a_fleet_without_its_mirror_fails_the_run_with_the_reason(
        tmp_path: Path, no_mirror: dict[str, str]) -> None:
    proc = run_suite(tmp_path, FLEET_SUITE, ci=True, **no_mirror)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "fleet test skipped under CI=true, which counts as a failure: fleet unavailable: " in out
    if os.geteuid() == 0:
        assert f"the mirror {no_mirror['PROVISION_FLEET_MIRROR']} is unreachable" in out
    assert suite_line(proc) == "suite: unit 0 ran, ssh 0 ran, fleet 1 error, gpu 0 ran"


def test_outside_ci_the_same_run_skips_and_the_count_shows_it(tmp_path: Path, no_mirror: dict[str, str]) -> None:
    proc = run_suite(tmp_path, FLEET_SUITE, ci=False, **no_mirror)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
    assert suite_line(proc) == "suite: unit 0 ran, ssh 0 ran, fleet 1 skipped, gpu 0 ran"


MIXED_SUITE = {
    "test_mixed.py": (
        "import pytest\n"
        "def test_unit_passes():\n"
        "    assert 1 + 1 == 2\n"
        "def test_unit_skips():\n"
        "    pytest.skip('needs gpg to prepare keys')\n"
        "@pytest.mark.fleet\n"
        "def test_marked_fleet_skips():\n"
        "    pytest.skip('synthetic: the Debian mirror is unreachable')\n"
        "def test_ssh_skips(sshd):\n"
        "    pytest.skip('synthetic: sshd refused')\n"
        "@pytest.mark.gpu\n"
        "@pytest.mark.skipif(True, reason='no GPU: no CUDA device')\n"
        "def test_gpu_skips():\n"
        "    pass\n"
        "@pytest.mark.xfail(reason='a known bug', strict=True)\n"
        "def test_expected_failure():\n"
        "    assert False\n"
    ),
    "pytest.ini": "[pytest]\nmarkers =\n  gpu: a GPU test\n  fleet: a fleet test\n",
}


def test_under_ci_every_non_gpu_skip_fails_naming_kind_and_reason(tmp_path: Path) -> None:
    proc = run_suite(tmp_path, MIXED_SUITE, ci=True)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "unit test skipped under CI=true, which counts as a failure: needs gpg to prepare keys" in out
    assert "fleet test skipped under CI=true, which counts as a failure: synthetic: the Debian mirror" in out
    if os.geteuid() == 0 and Path("/usr/sbin/sshd").exists():
        assert "ssh test skipped under CI=true, which counts as a failure: synthetic: sshd refused" in out
    assert "SKIPPED [1] test_mixed.py" in out and "no GPU: no CUDA device" in out  # the GPU test only
    assert "XFAIL" in out  # an expected failure is not a skip
    assert suite_line(proc) == ("suite: unit 1 failed, 1 xfailed, 1 passed, ssh 1 failed, fleet 1 failed, "
                                "gpu 1 skipped (no GPU)")


def test_under_ci_a_module_skipped_whole_is_a_collection_error(tmp_path: Path) -> None:
    proc = run_suite(tmp_path, {
        "test_fleet_module.py": "import pytest\npytest.skip('synthetic module skip', allow_module_level=True)\n",
    }, ci=True)
    assert proc.returncode == 2, proc.stdout  # pytest stops at a collection error
    assert "ERROR test_fleet_module.py - unit test skipped under CI=true, which counts as a failure: " \
           "synthetic module skip" in proc.stdout


def test_outside_ci_skips_stay_skips(tmp_path: Path) -> None:
    proc = run_suite(tmp_path, MIXED_SUITE, ci=False)
    assert proc.returncode == 0, proc.stdout
    assert suite_line(proc) == ("suite: unit 1 skipped, 1 xfailed, 1 passed, ssh 1 skipped, fleet 1 skipped, "
                                "gpu 1 skipped (no GPU)")
