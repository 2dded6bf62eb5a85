"""connection/persist.py's parts that need no host: when a run left its agent between requests
(the daemon keeps only such agents), where the socket lives, and a daemon that is asked for
something it cannot do. The daemon with real hosts: tests/fleet/test_persist_fleet.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioner.connection import persist
from provisioner.connection.base import Unreachable
from provisioner.connection.ssh import SSHTarget
from provisioner.host.agent import BOOT_MARKER, NEED_MARKER, PROGRESS_PREFIX


def test_the_progress_prefix_is_the_agents() -> None:
    assert persist.PROGRESS_PREFIX == PROGRESS_PREFIX


def test_requests_and_replies_are_counted_whole_lines_however_they_are_cut() -> None:
    requests = persist.LineCounter()
    stream = BOOT_MARKER + b'\n{"op": "facts", "id": 1}\n' + b"eJzLSM3JyVcozy/KSQEAGgQEXQ==\n" + \
        b'{"op": "run", "id": 2}\n'
    for i in range(len(stream)):           # one byte at a time: a line cut anywhere
        requests.feed(stream[i:i + 1])
        assert requests.between == (stream[i:i + 1] == b"\n")
    assert requests.count == 2             # the boot marker and the bundle line are no requests

    replies = persist.LineCounter()
    replies.feed(NEED_MARKER + b"\n" + PROGRESS_PREFIX[:5])
    replies.feed(PROGRESS_PREFIX[5:] + b': {"pct": 40}}\n{"id": 1, "facts": {}}\n{"id": 2')
    assert replies.count == 1 and not replies.between
    replies.feed(b', "changed": false}\n')
    assert replies.count == 2 and replies.between


def test_the_socket_directory_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = persist.socket_path()
    assert path.parent == tmp_path / "provision" and path.name.startswith("mux-")
    assert path.parent.stat().st_mode & 0o777 == 0o700
    path.parent.chmod(0o755)   # others could read (and with 0777, plant) sockets: refused
    with pytest.raises(OSError, match="not private"):
        persist.socket_path()
    assert persist.daemon_socket(1.0) is None   # so the run connects itself


def test_a_target_travels_to_the_daemon_whole() -> None:
    jump = SSHTarget(name="bastion", hostname="10.0.0.1", port=2222, user="ops", key_files=("/home/ops/.ssh/k",))
    target = SSHTarget(name="gpu07", hostname="10.1.0.7", user="admin", key_files=("/k1", "/k2"),
                       password="pw", known_hosts=(Path("/kh"),), host_keys="accept-new", timeout=3.0,
                       keepalive=5, compress=True, jumps=(jump,), proxy_command=None)
    assert persist._target_from(persist._target_dict(target)) == target


def test_no_daemon_no_control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert persist.control("info") is None and persist.control("stop") is None


def test_a_daemon_answers_what_it_cannot_do_and_a_closed_port_as_ssh_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    sock = persist.daemon_socket(5.0)      # started here, as a run starts it
    assert sock is not None
    try:
        assert persist._ask(sock, {"target": {"name": "x"}}, 5.0) == {
            "unreachable": "persist daemon: a header it cannot read ('argv')"}
    finally:
        sock.close()
    import socket as socketmod
    with socketmod.socket() as s:          # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        target = SSHTarget(name="nobody", hostname="127.0.0.1", port=port, timeout=2.0)
        with pytest.raises(Unreachable, match=f"cannot connect to root@127.0.0.1:{port}: connection refused"):
            persist.attach(target, ["true"], 5.0)
    info = persist.control("stop")
    assert info is not None and info["kept"] == 0
    deadline = time.monotonic() + 10
    while persist.socket_path().exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not persist.socket_path().exists()


def test_two_runs_starting_at_once_share_one_daemon(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    code = ("from provisioner.connection import persist; s = persist.daemon_socket(5.0); "
            "print(persist._ask(s, {'op': 'info'}, 5.0)['pid'])")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    pids = {int(p.communicate(timeout=30)[0]) for p in procs}
    assert len(pids) == 1   # each started one, as it found none; one kept the socket, the others left
    out = subprocess.run([sys.executable, "-c", "from provisioner.connection import persist; "
                          "print(persist.control('stop')['pid'])"], env=env, stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    assert {int(out)} == pids


class _Channel:
    """What _Agent.balanced() reads of a paramiko channel, behind its SSHStream (a live one: tests/fleet)."""
    closed = False

    def exit_status_ready(self) -> bool:
        return False

    def recv_ready(self) -> bool:
        return False


def test_an_agent_is_kept_only_booted_and_between_requests() -> None:
    from types import SimpleNamespace
    agent = persist._Agent("k", None, SimpleNamespace(channel=_Channel()), 60.0)  # type: ignore[arg-type]
    assert not agent.balanced()   # no answer yet: it may still wait for the boot marker
    agent.requests.feed(BOOT_MARKER + b'\n{"op": "facts", "id": 1}\n')
    assert not agent.balanced()
    agent.replies.feed(b'{"id": 1, "facts": {}}\n')
    assert agent.balanced()
    agent.requests.feed(b'{"op": "run", "id": 2}\n')
    assert not agent.balanced()   # a task in flight
    agent.replies.feed(b'{"id": 2}\n')
    agent.to_channel += b"x"
    assert not agent.balanced()   # bytes the host has not taken


def test_a_targets_files_are_made_absolute_for_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = SSHTarget(name="h", hostname="h", key_files=("keys/id",), known_hosts=(Path("kh"), Path("~/kh2")))
    data = persist._target_dict(target)
    assert data["key_files"] == [str(tmp_path / "keys" / "id")]
    assert data["known_hosts"] == [str(tmp_path / "kh"), os.path.expanduser("~/kh2")]


def test_a_header_that_is_no_object_is_refused_and_the_daemon_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    for bad in ([1, 2], "x"):
        sock = persist.daemon_socket(5.0)
        assert sock is not None
        assert persist._ask(sock, bad, 5.0) is None   # type: ignore[arg-type]
        sock.close()
    info = persist.control("stop")
    assert info is not None and info["attached"] == 0


def test_another_provision_gets_another_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The socket's name carries the code's hash: a daemon never serves a run of another version."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    mine = persist.socket_path()
    monkeypatch.setattr("provisioner.host.bundle.bundle_digest", lambda: "another-bundle")
    assert persist.socket_path() != mine and persist.socket_path().parent == mine.parent
