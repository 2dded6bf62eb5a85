"""raw on this machine (local connection): a shell command without the agent; the agent starts at
the first other task of the play."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.actions.raw import ARGS, command_line
from tests.unit.test_executor_local import Project, playbook


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    return Project(tmp_path, capsys)


def test_raw_then_modules_then_check_mode(project: Project) -> None:
    project.inventory(("h1",))
    play = playbook("""\
    - name: raw shell line
      raw: echo "out $((1+2))"; echo err >&2; touch %D%/made
      register: r
    - name: raw with executable
      raw: echo $0
      args: {executable: /bin/bash}
      register: b
    - name: a module after raw
      copy: {content: "{{ r.stdout_lines }} {{ r.stderr | trim }} {{ b.stdout | trim }}", dest: "%D%/o"}
    - name: raw failing
      raw: exit 3
      ignore_errors: true
      register: f
    - name: keep
      copy: {content: "{{ f.rc }} {{ f.msg }}", dest: "%D%/f"}
""")
    run = project.apply(play)
    assert run.rc == 0, run.out
    assert (project.root / "made").exists()
    assert (project.root / "o").read_text() == "['out 3'] err /bin/bash"
    assert (project.root / "f").read_text() == "3 non-zero return code"
    assert run.result("raw shell line")["status"] == "changed"
    (project.root / "made").unlink()
    check = project.apply(play, "--check")
    assert not (project.root / "made").exists()
    assert check.result("raw shell line")["status"] == "skipped"


def test_command_line_with_become() -> None:
    assert command_line(ARGS("id -u"), None, "root") == ("id -u", b"")
    assert command_line(ARGS("id -u"), {"user": "root"}, "root") == ("id -u", b"")
    line, stdin = command_line(ARGS("id -u"), {"user": "root", "password": "pw"}, "admin")
    assert line == "sudo -H -S -p '' -u root -- /bin/sh -c 'id -u'" and stdin == b"pw\n"
    line, stdin = command_line(ARGS("id -u", executable="/bin/bash"), {"user": "root"}, "admin")
    assert line == "sudo -H -n -u root -- /bin/bash -c 'id -u'" and stdin == b""
