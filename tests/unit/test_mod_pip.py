"""pip in a real virtualenv under tmp, with real packages from the configured indexes (six, tomli).

The tests run in order on one venv: create+install, converge, check mode, latest, requirements,
absent. `RecordingHost` only counts the commands the module runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import Host
from provisioner.modules import host_modules, validate_args
from provisioner.modules.pip import satisfies
from tests.unit.modhelp import RecordingHost


def pip(host: Host | None = None, **raw: Any) -> dict[str, Any]:
    spec = host_modules()["pip"]
    return execute_module(spec.module, validate_args(spec, raw), host or Host())


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pip") / "venv"


def versions(venv: Path) -> dict[str, str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                         capture_output=True, text=True, check=True).stdout
    return {d["name"].lower(): d["version"] for d in json.loads(out)}


def test_check_mode_creates_nothing(venv: Path) -> None:
    planned = pip(Host(check_mode=True), name="six==1.16.0", virtualenv=str(venv))
    assert planned["changed"] and "would create virtualenv" in planned["msg"]
    assert planned["packages_to_install"] == ["six==1.16.0"] and not venv.exists()


def test_create_and_install_in_one_pip_call_then_converge(venv: Path) -> None:
    host = RecordingHost()
    result = pip(host, name=["six==1.16.0", "tomli"], virtualenv=str(venv))
    assert result["changed"] and not result["failed"], result["msg"]
    assert versions(venv)["six"] == "1.16.0" and "tomli" in versions(venv)
    assert len([c for c in host.calls if c[1:4] == ["-m", "pip", "install"]]) == 1

    host = RecordingHost()
    assert pip(host, name=["six==1.16.0", "tomli", "Six>=1.16,<2"], virtualenv=str(venv))["changed"] is False
    assert len(host.calls) == 1                                    # one interpreter call reads every version


def test_check_mode_reports_a_version_change(venv: Path) -> None:
    planned = pip(Host(check_mode=True), name="six", version="1.17.0", virtualenv=str(venv))
    assert planned["changed"] and planned["packages_to_install"] == ["six==1.17.0"]
    assert versions(venv)["six"] == "1.16.0"


def test_latest_upgrades_once(venv: Path) -> None:
    result = pip(name="six", state="latest", virtualenv=str(venv))
    assert result["changed"] and versions(venv)["six"] != "1.16.0"
    assert pip(name="six", state="latest", virtualenv=str(venv))["changed"] is False


def test_requirements_file(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# tools\nsix>=1.16  # pinned loosely\ntomli~=2.0\n")
    assert pip(requirements="requirements.txt", chdir=str(tmp_path), virtualenv=str(venv))["changed"] is False
    (tmp_path / "requirements.txt").write_text("six>=1.16\niniconfig\n")
    assert pip(requirements="requirements.txt", chdir=str(tmp_path), virtualenv=str(venv))["changed"]
    assert "iniconfig" in versions(venv)
    assert pip(requirements="requirements.txt", chdir=str(tmp_path), virtualenv=str(venv))["changed"] is False


def test_absent(venv: Path) -> None:
    result = pip(name=["iniconfig", "never-installed-pkg"], state="absent", virtualenv=str(venv))
    assert result["changed"] and result["packages_to_uninstall"] == ["iniconfig"]
    assert "iniconfig" not in versions(venv)
    assert pip(name="iniconfig", state="absent", virtualenv=str(venv))["changed"] is False


def test_unknown_package_fails(venv: Path) -> None:
    result = pip(name="no-such-package-provision-test==0.0.1", virtualenv=str(venv))
    assert result["failed"] and "pip install failed" in result["msg"]


@pytest.mark.parametrize(("version", "spec", "ok"), [
    ("1.16.0", "==1.16", True), ("1.16.0", "!=1.16.0", False), ("1.17.0", ">=1.16,<2", True),
    ("2.0", "<2", False), ("2.0rc1", "<2.0", True), ("1.4.5", "~=1.4.2", True), ("1.5.0", "~=1.4.2", False),
    ("1.4.5", "==1.4.*", True), ("1.40", "==1.4.*", False), ("1.0.post1", ">1.0", True),
    ("3.10", ">3.9", True),
])
def test_specifiers(version: str, spec: str, ok: bool) -> None:
    assert satisfies(version, spec) is ok
