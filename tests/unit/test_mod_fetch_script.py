"""fetch and script, run by `provision apply` on this machine (local connection): the controller's
files are real, the host side goes through the agent as on any host."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit.test_executor_local import Project, playbook


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    return Project(tmp_path, capsys)


def test_fetch_layout_flat_missing_and_second_run(project: Project) -> None:
    src = project.root / "host_side" / "etc" / "app.conf"
    src.parent.mkdir(parents=True)
    src.write_text("port=80\n")
    play = playbook(f"""\
    - name: fetch tree
      fetch: {{src: "{src}", dest: "%D%/got"}}
      register: tree
    - name: fetch flat
      fetch: {{src: "{src}", dest: "%D%/flat/{{{{ inventory_hostname }}}}.conf", flat: true}}
    - name: fetch missing, tolerated
      fetch: {{src: "%D%/nope", dest: "%D%/got", fail_on_missing: false}}
      register: missing
    - name: keep
      copy: {{content: "{{{{ tree.checksum }}}} {{{{ missing.msg }}}}", dest: "%D%/out-{{{{ inventory_hostname }}}}"}}
""")
    first = project.apply(play)
    assert first.rc == 0, first.out
    for host in ("h1", "h2", "h3"):
        assert (project.root / "got" / host / str(src).lstrip("/")).read_text() == "port=80\n"
        assert (project.root / "flat" / f"{host}.conf").read_text() == "port=80\n"
        assert first.result("fetch tree", host)["status"] == "changed"
        assert first.result("fetch missing, tolerated", host)["status"] == "ok"
    sha1 = hashlib.sha1(b"port=80\n").hexdigest()
    assert (project.root / "out-h1").read_text() == \
        f"{sha1} the remote file does not exist, not transferring, ignored"
    again = project.apply(play)
    assert again.rc == 0 and again.total("changed") == 0
    src.write_text("port=81\n")
    check = project.apply(play, "--check")
    assert check.result("fetch tree")["status"] == "skipped"
    assert (project.root / "got" / "h1" / str(src).lstrip("/")).read_text() == "port=80\n"
    failing = project.apply(playbook("""\
    - name: fetch missing
      fetch: {src: "%D%/nope", dest: "%D%/got"}
"""))
    assert failing.rc == 1 and "the remote file does not exist" in failing.result("fetch missing")["msg"]


def test_script_runs_with_args_creates_chdir_executable(project: Project) -> None:
    project.write("files/setup.sh", "#!/bin/sh\necho \"args: $1 $2 in $(pwd)\"\necho done > marker-$1\n")
    project.write("files/hello.py", "import sys\nprint('py', sys.argv[1])\n")
    work = project.root / "work"
    work.mkdir()
    play = playbook(f"""\
    - name: run setup
      script: "setup.sh {{{{ inventory_hostname }}}} 'two words'"
      args: {{chdir: "{work}", creates: "{work}/marker-{{{{ inventory_hostname }}}}"}}
      register: out
    - name: run python
      script: hello.py x
      args: {{executable: python3}}
      register: py
      changed_when: false
    - name: keep
      copy: {{content: "{{{{ out.stdout_lines | default([]) }}}} {{{{ py.stdout | default('') }}}}", dest: "%D%/o-{{{{ inventory_hostname }}}}"}}
""")
    check = project.apply(play, "--check")
    assert check.rc == 0 and not list(work.iterdir()), check.out
    assert check.result("run setup")["status"] == "changed"  # creates: it would run
    assert check.result("run python")["status"] == "skipped"  # no creates/removes: nothing to tell
    first = project.apply(play)
    assert first.rc == 0, first.out
    assert (work / "marker-h2").read_text() == "done\n"
    assert (project.root / "o-h1").read_text() == f"['args: h1 two words in {work}'] py x\n"
    second = project.apply(play)
    assert second.rc == 0 and second.result("run setup")["status"] == "skipped"
    failing = project.apply(playbook("""\
    - name: bad
      script: nope.sh
"""))
    assert failing.rc != 0 and "nope.sh" in failing.out
