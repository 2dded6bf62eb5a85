"""Over a real sshd on 127.0.0.1: what an admin's ssh setup brings, honoured as OpenSSH would.

The ssh-agent, the ProxyCommand (a real `ssh -W`) and StrictHostKeyChecking are the real
programs; the bastion lab (ProxyJump through other network namespaces) is tests/fleet/test_jump.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.cli import main
from tests.sshd import LocalSshd

PING = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n"


def run(args: list[str], capsys) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out + out.err


def connections(sshd: LocalSshd) -> int:
    """Logins the sshd accepted (its start-up probe connects without one)."""
    return sum(1 for ln in sshd.log.read_text(errors="replace").splitlines() if "Accepted publickey" in ln)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: no ~/.ssh keys, config or known_hosts of this machine count."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return h


@pytest.fixture()
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if shutil.which("ssh-agent") is None:
        pytest.skip("no ssh-agent here")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    try:
        yield sock
    finally:
        proc.terminate()
        proc.wait()


def test_ssh_agent_key_is_used_when_no_key_file_is_set(sshd: LocalSshd, home: Path, agent: Path,
                                                       tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pb = tmp_path / "pb.yml"
    pb.write_text(PING)
    inv = tmp_path / "inv.yml"
    inv.write_text(f"all:\n  hosts:\n    s1: {{ansible_host: 127.0.0.1, ansible_port: {sshd.port}, "
                   "ansible_user: root}\n")
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(sshd.known_hosts)], capsys)
    assert rc == 1 and "authentication failed" in out, out   # the agent holds no key yet
    subprocess.run(["ssh-add", "-q", str(sshd.client_key)], check=True, env={**os.environ, "SSH_AUTH_SOCK": str(agent)},
                   stderr=subprocess.DEVNULL)
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(sshd.known_hosts)], capsys)
    assert rc == 0, out
    # IdentitiesOnly=yes with no IdentityFile: the agent is not asked
    inv.write_text(inv.read_text().replace("ansible_user: root", "ansible_user: root, ansible_ssh_common_args: "
                                           "'-o IdentitiesOnly=yes'"))
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(sshd.known_hosts)], capsys)
    assert rc == 1 and "authentication failed" in out, out


def test_proxycommand_from_ssh_config(sshd: LocalSshd, home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client here")
    cfg = tmp_path / "ssh_config"
    # the target is reached through `ssh -W` to the same sshd: two connections, the inner one carried
    cfg.write_text(
        f"Host lab\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  IdentityFile {sshd.client_key}\n"
        f"  UserKnownHostsFile {sshd.known_hosts}\n"
        f"  ProxyCommand ssh -F none -i {sshd.client_key} -o UserKnownHostsFile={sshd.known_hosts} "
        f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p %p -W %h:%p root@127.0.0.1\n")
    pb = tmp_path / "pb.yml"
    pb.write_text(PING)
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    lab:\n")
    before = connections(sshd)
    rc, out = run(["apply", str(pb), "-i", str(inv), "-F", str(cfg)], capsys)
    assert rc == 0, out
    assert connections(sshd) - before == 2


def test_strict_host_key_checking_no_needs_the_insecure_flag(sshd: LocalSshd, home: Path, tmp_path: Path,
                                                            capsys) -> None:  # type: ignore[no-untyped-def]
    pb = tmp_path / "pb.yml"
    pb.write_text(PING)
    inv = sshd.inventory(tmp_path / "inv.yml", ansible_ssh_common_args="'-o StrictHostKeyChecking=no "
                                                                       "-o UserKnownHostsFile=/dev/null'")
    rc, out = run(["apply", str(pb), "-i", str(inv)], capsys)
    assert rc == 2
    assert "StrictHostKeyChecking=no would skip the host key check: refused" in out
    before = connections(sshd)
    assert before == 0  # nothing was touched
    rc, out = run(["apply", str(pb), "-i", str(inv), "--insecure-no-host-key-check"], capsys)
    assert rc == 0, out
    assert not (home / ".ssh").exists()   # nothing recorded anywhere


def test_accept_new_from_ssh_options_records_the_key(sshd: LocalSshd, home: Path, tmp_path: Path,
                                                     capsys) -> None:  # type: ignore[no-untyped-def]
    known = tmp_path / "kh"
    pb = tmp_path / "pb.yml"
    pb.write_text(PING)
    inv = sshd.inventory(tmp_path / "inv.yml", ansible_ssh_common_args=f"'-o UserKnownHostsFile={known} "
                                                                       "-o StrictHostKeyChecking=accept-new'")
    rc, out = run(["apply", str(pb), "-i", str(inv)], capsys)
    assert rc == 0, out
    assert known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
