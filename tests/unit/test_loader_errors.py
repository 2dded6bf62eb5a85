"""Bad input stops the run before any host is touched: one line naming file:line, exit code 2.

The cases live in tests/bad_input/ (one small file each) and are listed, one line per
case, in tests/bad_input/expected.yml; this file only runs them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "bad_input"
CASES: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yml").read_text())
GOOD_INVENTORY = "inventories/local.yml"


def _argv(case: dict[str, Any], marker: Path) -> list[str]:
    args = shlex.split(case["args"])
    extra = ["-e", f"marker={marker}"]
    if "-i" not in args:
        extra += ["-i", GOOD_INVENTORY]
    return args[:2] + extra + args[2:]


def _assert_one_error_line(stderr: str, case: dict[str, Any]) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    line = lines[0]
    assert "Traceback" not in stderr
    where = case["where"]
    if re.search(r":\d+$", where):
        assert re.match(rf"^error: {re.escape(where)}(:\d+)?: ", line), f"expected error: {where}[:COL]: ..., got {line!r}"
    else:
        assert line.startswith(f"error: {where}"), f"expected error: {where}..., got {line!r}"
    assert case["phrase"] in line, f"expected {case['phrase']!r} in {line!r}"
    return line


@pytest.fixture
def in_corpus(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(CORPUS)
    monkeypatch.delenv("PROVISION_ROLES_PATH", raising=False)
    monkeypatch.delenv("ANSIBLE_ROLES_PATH", raising=False)
    return CORPUS


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(name: str, in_corpus: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    marker = tmp_path / "marker"
    rc = main(_argv(case, marker))
    out, err = capsys.readouterr()
    _assert_one_error_line(err, case)
    assert rc == 2
    assert out == "", "nothing may run (or be announced) before the input is known to be good"
    assert not marker.exists(), "a host was touched"


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["args"].startswith("apply ")))
def test_check_command_reports_the_same_error(name: str, in_corpus: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[name]
    argv = _argv(case, tmp_path / "marker")
    argv[0] = "check"
    rc = main(argv)
    _, err = capsys.readouterr()
    _assert_one_error_line(err, case)
    assert rc == 2


def test_the_good_playbook_runs_and_touches_the_marker(in_corpus: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The harness itself is sound: without a mistake the marker does appear."""
    marker = tmp_path / "marker"
    rc = main(_argv({"args": "apply playbooks/good.yml"}, marker))
    capsys.readouterr()
    assert rc == 0
    assert marker.exists()


def test_every_corpus_file_is_used_by_a_case() -> None:
    listed = " ".join(c["args"] for c in CASES.values()) + " " + " ".join(c["where"] for c in CASES.values())
    files = [p.relative_to(CORPUS).as_posix() for d in ("playbooks", "inventories") for p in (CORPUS / d).glob("*.yml")]
    unused = [f for f in files if f not in listed and f not in ("playbooks/good.yml", GOOD_INVENTORY)]
    assert not unused, f"corpus files without a line in expected.yml: {unused}"


@pytest.mark.parametrize("name", ["yaml_tab", "undefined_variable", "inventory_port_out_of_range"])
def test_the_installed_command_line_prints_no_traceback(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    marker = tmp_path / "marker"
    env = {k: v for k, v in os.environ.items() if k not in ("PROVISION_ROLES_PATH", "ANSIBLE_ROLES_PATH")}
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", *_argv(case, marker)], cwd=CORPUS,
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    _assert_one_error_line(proc.stderr, case)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert not marker.exists()
