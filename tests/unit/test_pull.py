"""`provision pull` on this machine: a real git repository (a bare one in a temp dir), real git,
the local connection. First pull converges, a rerun without a commit does nothing, a new commit is
applied, a run that finds the lock held gives up with exit 4 and the holder's pid, a repository
that cannot be fetched is exit 5; the result is in state.json and the journal line goes to a real
syslog datagram socket (this machine runs no syslog: the test binds its own)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.pull import EXIT_GIT, EXIT_LOCKED, hold_lock, journal

REPO = Path(__file__).resolve().parents[2]
PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: the lab's message
      copy: {{content: "{message}\\n", dest: "{{{{ motd }}}}"}}
"""


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@example.org",
           "GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@example.org"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(src: Path, message: str) -> str:
    (src / "local.yml").write_text(PLAY.format(message=message))
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", message)
    git(src, "push", "-q", "origin", "HEAD:main")
    return git(src, "rev-parse", "HEAD")


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, Path]:
    bare, src = tmp_path / "lab.git", tmp_path / "src"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(src))
    return {"bare": bare, "src": src, "state": tmp_path / "state", "motd": tmp_path / "motd"}


def pull(lab: dict[str, Path], *extra: str, playbook: str | None = None) -> tuple[int, str, dict]:
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", "pull", str(lab["bare"]),
                           *([playbook] if playbook else []),
                           "--state-dir", str(lab["state"]), "-e", f"motd={lab['motd']}", *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    state_file = lab["state"] / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, state


def test_pull_converges_then_only_when_the_repository_changed(lab: dict[str, Path]) -> None:
    first = commit(lab["src"], "v1")
    rc, out, state = pull(lab)
    assert rc == 0, out
    assert lab["motd"].read_text() == "v1\n"
    assert (state["commit"], state["result"], state["exit_code"]) == (first, "changed", 0)
    assert state["counts"]["changed"] == 1 and state["counts"]["failed"] == 0
    assert state["playbook"] == "local.yml" and state["last_success"]["commit"] == first
    assert (lab["state"] / "lab" / "local.yml").is_file()  # default work dir: <state dir>/<repo name>

    lab["motd"].write_text("edited by hand\n")  # a run of the playbook would put v1 back
    rc, out, state = pull(lab)
    assert rc == 0, out
    assert state["result"] == "unchanged" and "nothing to do" in out
    assert lab["motd"].read_text() == "edited by hand\n"  # no playbook ran
    assert "counts" not in state

    rc, out, state = pull(lab, "--always")
    assert rc == 0 and lab["motd"].read_text() == "v1\n"

    second = commit(lab["src"], "v2")
    rc, out, state = pull(lab)
    assert rc == 0, out
    assert (state["commit"], state["result"]) == (second, "changed")
    assert lab["motd"].read_text() == "v2\n"
    assert state["duration_s"] > 0 and state["finished"] >= state["started"]


def test_check_mode_and_a_failed_run_do_not_count_as_applied(lab: dict[str, Path]) -> None:
    commit(lab["src"], "v1")
    rc, _, state = pull(lab, "--check")
    assert rc == 0 and not lab["motd"].exists()
    assert state["check"] is True and state["last_success"] is None
    rc, _, state = pull(lab, "-e", "motd=/proc/version/motd")  # a check run is not an applied one
    assert (rc, state["result"], state["exit_code"]) == (1, "failed", 1)
    assert state["counts"]["failed"] == 1
    rc, _, state = pull(lab)  # the failure was not recorded as applied: runs again
    assert rc == 0 and state["result"] == "changed" and lab["motd"].read_text() == "v1\n"


def test_an_overlapping_run_waits_then_gives_up_with_the_reason(lab: dict[str, Path]) -> None:
    commit(lab["src"], "v1")
    lab["state"].mkdir()
    with hold_lock(lab["state"] / "pull.lock", 0):
        rc, out, _ = pull(lab, "--lock-timeout", "0.6")
    assert rc == EXIT_LOCKED
    assert f"another pull holds {lab['state'] / 'pull.lock'} (pid {os.getpid()} since" in out
    assert "--lock-timeout 0.6 s" in out
    assert not lab["motd"].exists()
    rc, out, _ = pull(lab, "--lock-timeout", "0.6")  # released: the next one runs
    assert rc == 0 and lab["motd"].read_text() == "v1\n"


def test_missing_repository_and_missing_playbook(lab: dict[str, Path], tmp_path: Path) -> None:
    lab["bare"] = tmp_path / "nowhere.git"
    rc, out, state = pull(lab)
    assert rc == EXIT_GIT and state["result"] == "git-failed"
    assert "fetch" in state["message"] and "nowhere.git" in out


def test_named_playbook_missing_is_bad_input(lab: dict[str, Path]) -> None:
    commit(lab["src"], "v1")
    rc, out, state = pull(lab, playbook="site.yml")
    assert rc == 2 and state["result"] == "error"
    assert "playbook 'site.yml' not found in the repository" in out


def test_journal_line_through_logger_to_a_syslog_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        where = journal("ssh://git/lab.git abc123 changed rc=0", error=False, dev_log=path)
        line = sock.recv(4096).decode()
    assert where == "logger"
    assert line.startswith("<14>") and "provision-pull" in line
    assert line.endswith("ssh://git/lab.git abc123 changed rc=0")
    assert journal("x", dev_log=str(tmp_path / "none")) == "stderr"


def test_the_command_line_defaults_are_the_module_s() -> None:
    from provisioner.cli import _parser
    from provisioner.pull import DEFAULT_STATE_DIR, STATE_FILE

    assert _parser().parse_args(["pull", "u"]).state_dir == DEFAULT_STATE_DIR
    assert _parser().parse_args(["status"]).state_file == str(DEFAULT_STATE_DIR / STATE_FILE)


def test_a_token_in_the_url_is_never_written() -> None:
    from provisioner.pull import public_url

    assert public_url("https://ci:glpat-Secret1@git.lab/lab.git") == "https://ci:****@git.lab/lab.git"
    assert public_url("ssh://git@git.lab:2222/srv/lab.git") == "ssh://git@git.lab:2222/srv/lab.git"
    assert public_url("git@git.lab:lab.git") == "git@git.lab:lab.git"
