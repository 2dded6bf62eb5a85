"""known_hosts on real files: add, replace a changed key of the same type, hash, remove (ssh-keygen -R)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from provisioner.modules.known_hosts import host_matches
from tests.unit.modhelp import run_module

ED1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvH7sK5w3lZ2pp8Ko6vPBrpDbeTZ8M7QKcIWoTcdK8X"
ED2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaQ5rZJ2aPqC6pxLu0gW6rYv7m3mYkU9CqYV1Hj7bN2"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"


def test_add_then_no_change_then_replace_same_type(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    res = run_module("known_hosts", path=str(kh), name="git.example.com", key=f"git.example.com {ED1}")
    assert res["changed"] and kh.read_text() == f"git.example.com {ED1}\n" and res["path"] == str(kh)
    assert run_module("known_hosts", path=str(kh), name="git.example.com", key=f"git.example.com {ED1}")["changed"] is False
    run_module("known_hosts", path=str(kh), name="git.example.com", key=f"git.example.com {RSA}")
    res = run_module("known_hosts", path=str(kh), name="git.example.com", key=f"git.example.com {ED2}", diff=True)
    assert res["changed"] and kh.read_text() == f"git.example.com {RSA}\ngit.example.com {ED2}\n"
    assert res["diff"]["before"] == f"git.example.com {ED1}\ngit.example.com {RSA}\n"


def test_name_is_lowercased_and_ports_are_part_of_the_name(tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    run_module("known_hosts", path=str(kh), name="[Host1.example.com]:2222", key=f"[host1.example.com]:2222 {ED1}")
    assert run_module("known_hosts", path=str(kh), name="[host1.example.com]:2222",
                      key=f"[host1.example.com]:2222 {ED1}")["changed"] is False
    assert host_matches("*.example.com,!bad.example.com", "a.example.com")
    assert not host_matches("*.example.com,!bad.example.com", "bad.example.com")


def test_hashed_entries_are_stable(tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    res = run_module("known_hosts", path=str(kh), name="h.example", key=f"h.example {ED1}", hash_host=True)
    assert res["changed"] and kh.read_text().startswith("|1|") and "h.example" not in kh.read_text()
    assert run_module("known_hosts", path=str(kh), name="h.example", key=f"h.example {ED1}", hash_host=True)["changed"] is False
    # as in Ansible, the same key without hash_host replaces the hashed entry by a plain one
    assert run_module("known_hosts", path=str(kh), name="h.example", key=f"h.example {ED1}")["changed"] is True
    assert kh.read_text() == f"h.example {ED1}\n"


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    assert run_module("known_hosts", check=True, path=str(kh), name="a", key=f"a {ED1}")["changed"]
    assert not kh.exists()


def test_absent_with_key_removes_that_line_only(tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    kh.write_text(f"a {ED1}\na {RSA}\nb {ED1}\n")
    res = run_module("known_hosts", path=str(kh), name="a", key=f"a {ED1}", state="absent")
    assert res["changed"] and kh.read_text() == f"a {RSA}\nb {ED1}\n"
    assert run_module("known_hosts", path=str(kh), name="a", key=f"a {ED1}", state="absent")["changed"] is False


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed")
def test_absent_without_key_removes_the_host_with_ssh_keygen(tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    kh.write_text(f"a {ED1}\na {RSA}\nb {ED1}\n")
    assert run_module("known_hosts", path=str(kh), name="a", state="absent")["changed"]
    assert kh.read_text().splitlines()[-1] == f"b {ED1}" and "a ssh" not in kh.read_text()
    assert (tmp_path / "kh.old").exists()  # ssh-keygen's backup, as with Ansible
    assert run_module("known_hosts", path=str(kh), name="a", state="absent")["changed"] is False


def test_errors(tmp_path: Path) -> None:
    kh = str(tmp_path / "kh")
    assert run_module("known_hosts", path=kh, name="a")["msg"] == "No key specified when adding a host"
    assert run_module("known_hosts", path=kh, name="a", key=f"b {ED1}")["msg"] == \
        "Host parameter does not match hashed host field in supplied key"
    assert "Comma separated" in run_module("known_hosts", path=kh, name="a,b", key=f"a,b {ED1}")["msg"]
