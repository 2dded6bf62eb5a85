"""user, group, hostname planned on this machine in check mode (nothing changes here); the real
changes are applied on Debian 13 fleet hosts in tests/fleet/test_modules_fleet.py."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from provisioner.modules._accounts import run_with_passphrase
from tests.unit.modhelp import run_module

ROOT = pwd.getpwnam("root")


def test_user_missing_would_be_created() -> None:
    res = run_module("user", check=True, name="no-such-user-q7", uid=4242, shell="/bin/bash", groups=["not-yet"])
    assert res["changed"] and not res["failed"] and "uid" not in res  # Ansible reports only `changed` here


def test_user_as_it_is_is_no_change_and_reports_ansible_fields() -> None:
    res = run_module("user", check=True, name="root", shell=ROOT.pw_shell, home=ROOT.pw_dir, create_home=False)
    assert res["changed"] is False
    assert (res["uid"], res["group"], res["home"], res["shell"]) == (0, ROOT.pw_gid, ROOT.pw_dir, ROOT.pw_shell)


def test_user_difference_is_planned_with_a_diff() -> None:
    res = run_module("user", check=True, diff=True, name="root", shell="/bin/false-not-real", create_home=False)
    assert res["changed"] and "-s /bin/false-not-real" in res["diff"]["after"]
    assert pwd.getpwnam("root").pw_shell == ROOT.pw_shell


def test_user_absent_of_a_missing_user_is_ok() -> None:
    assert run_module("user", check=True, name="no-such-user-q7", state="absent")["changed"] is False


def test_user_refuses_what_it_does_not_copy() -> None:
    res = run_module("user", check=True, name="x", local=True)
    assert res["failed"] and "local is not supported" in res["msg"]
    res = run_module("user", check=True, name="x", login_class="staff")
    assert res["failed"] and "login_class is not supported" in res["msg"]


def test_user_missing_group_is_an_error() -> None:
    res = run_module("user", check=True, name="root", groups=["no-such-group-q7"], create_home=False)
    assert res["failed"] and res["msg"] == "Group no-such-group-q7 does not exist"


def test_group_states_planned() -> None:
    root = grp.getgrnam("root")
    assert run_module("group", check=True, name="root")["changed"] is False
    assert run_module("group", check=True, name="root", gid=root.gr_gid)["gid"] == root.gr_gid
    assert run_module("group", check=True, name="root", gid=4343)["changed"]
    assert run_module("group", check=True, name="no-such-group-q7")["changed"]
    assert run_module("group", check=True, name="no-such-group-q7", state="absent")["changed"] is False
    assert "missing: gid" in run_module("group", check=True, name="g", non_unique=True)["msg"]
    assert run_module("group", check=True, name="g", local=True)["failed"]


def test_hostname_plan() -> None:
    facts = {"os_family": "Debian"}
    if os.path.isdir("/run/systemd/system"):
        return  # this machine runs systemd: hostnamectl's plan is exercised on systemd hosts only
    current = Path("/etc/hostname").read_text().strip() if os.path.exists("/etc/hostname") else ""
    same = run_module("hostname", check=True, facts=facts, name=current)
    assert same["changed"] is False and same["ansible_facts"]["ansible_nodename"] == current
    other = run_module("hostname", check=True, diff=True, facts=facts, name="renamed-q7.lab")
    assert other["changed"] and other["diff"]["after"] == "hostname = renamed-q7.lab\n"
    assert other["ansible_facts"]["ansible_hostname"] == "renamed-q7"
    assert run_module("hostname", check=True, name="x", use="openbsd")["failed"]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed")
def test_ssh_key_passphrase_goes_through_a_pty_not_the_command_line(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    argv = ["ssh-keygen", "-t", "ed25519", "-C", "student@lab", "-f", str(key)]
    rc, out = run_with_passphrase(argv, "s3cret pass")
    assert rc == 0, out
    assert "s3cret" not in " ".join(argv)
    opened = subprocess.run(["ssh-keygen", "-y", "-P", "s3cret pass", "-f", str(key)], capture_output=True, text=True)
    assert opened.returncode == 0 and opened.stdout.startswith("ssh-ed25519 ")
    wrong = subprocess.run(["ssh-keygen", "-y", "-P", "wrong", "-f", str(key)], capture_output=True, text=True)
    assert wrong.returncode != 0
