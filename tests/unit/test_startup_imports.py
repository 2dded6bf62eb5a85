"""A run that does not use the GPU pre-flight never imports pydantic (~65 ms and ~15 MB a run), and one
without GPU results neither rich nor sqlite3.

Task arguments are checked by provisioner.validate; only provisioner.compat (the version
matrix: gpu_preflight, `provision plan`) still needs pydantic. Each case runs the command line
in a fresh interpreter and reports, at exit, whether pydantic was imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

WRAPPER = """\
import sys
from provisioner.cli import main
rc = 1
try:
    rc = main(sys.argv[1:])
finally:
    print("pydantic imported:", "pydantic" in sys.modules)
    print("rich imported:", "rich" in sys.modules, "sqlite3 imported:", "sqlite3" in sys.modules)
sys.exit(rc)
"""

INVENTORY = """\
all:
  hosts:
    localhost:
      ansible_connection: local
"""

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  vars:
    out: "{base}/out"
  tasks:
    - file: {{path: "{{{{ out }}}}", state: directory, mode: "0755"}}
    - copy: {{content: "a=1\\n", dest: "{{{{ out }}}}/a.conf", backup: no}}
    - lineinfile: {{path: "{{{{ out }}}}/a.conf", line: "b=2", create: yes}}
    - template: {{src: motd.j2, dest: "{{{{ out }}}}/motd", mode: "0644", validate: "test -f %s"}}
    - command: {{cmd: "echo hi", chdir: "{{{{ out }}}}"}}
      register: said
      changed_when: false
    - set_fact: {{greeting: "{{{{ said.stdout }}}}", cacheable: "no"}}
    - assert: {{that: ["greeting == 'hi'"], msg: "no greeting", quiet: yes}}
    - debug: {{msg: "{{{{ greeting }}}}", verbosity: "0"}}
    - debug: {{var: greeting}}
    - ping: {{data: pong}}
    - stat: {{path: "{{{{ out }}}}/motd"}}
      register: motd
    - fail: {{msg: "motd missing"}}
      when: not motd.stat.exists
"""


def _provision(tmp_path: Path, *argv: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *argv, "-i", str(tmp_path / "inventory.yml")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "motd.j2").write_text("Welcome to {{ inventory_hostname }}\n")
    (tmp_path / "site.yml").write_text(PLAYBOOK.format(base=tmp_path))
    return tmp_path


def test_apply_never_imports_pydantic(project: Path) -> None:
    rc, out = _provision(project, "apply", "site.yml")
    assert rc == 0, out
    assert (project / "out" / "motd").read_text() == "Welcome to localhost\n"
    assert "pydantic imported: False" in out
    rc, out = _provision(project, "apply", "site.yml", "--diff")  # again, with nothing (but copy) to change
    assert rc == 0 and "pydantic imported: False" in out, out
    # nor the GPU table's rich, nor the GPU history's sqlite3, in a run without GPU results (~14 MB at 50 hosts)
    assert "rich imported: False sqlite3 imported: False" in out, out


def test_check_and_argument_errors_never_import_pydantic(project: Path) -> None:
    rc, out = _provision(project, "check", "site.yml")
    assert rc == 0 and "pydantic imported: False" in out, out
    (project / "bad.yml").write_text("- hosts: all\n  tasks:\n    - apt: {name: x, update_cache: maybe}\n")
    rc, out = _provision(project, "check", "bad.yml")
    assert rc == 2 and "argument 'update_cache' of 'apt': input should be a valid boolean" in out, out
    assert "pydantic imported: False" in out
    (project / "typo.yml").write_text("- hosts: all\n  tasks:\n    - debgu: {msg: x}\n")
    rc, out = _provision(project, "check", "typo.yml")
    assert rc == 2 and "unknown module 'debgu' (did you mean 'debug'?)" in out, out
    assert "pydantic imported: False" in out


def test_the_gpu_preflight_still_imports_it(project: Path) -> None:
    """The control: the wrapper does see pydantic when the version matrix is used."""
    (project / "gpu.yml").write_text("- hosts: all\n  tasks:\n    - gpu_preflight: {gpu_stack: none}\n"
                                     "      ignore_errors: true\n")
    _rc, out = _provision(project, "apply", "gpu.yml")
    assert "pydantic imported: True" in out, out
