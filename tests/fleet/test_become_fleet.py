"""become for real: the unprivileged `admin` logs in over SSH and runs tasks as another user
through sudo, with a password and with NOPASSWD configured on the host. What is asserted is the
owner of what the task made, read on the host, so a become that silently ran as the login user
(or as root) fails. (tests/unit/test_executor_local.py's become test runs as root: it cannot tell.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.fleet.fleet import Fleet, FleetHost

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]

BECOME_PLAY = [{
    "name": "admin becomes builder", "hosts": "all", "gather_facts": False,
    "tasks": [
        {"name": "who logs in", "command": "id -un", "register": "login", "changed_when": False},
        {"name": "who am I as builder", "command": "id -un", "register": "as_builder", "changed_when": False,
         "become": True, "become_user": "builder"},
        {"name": "a file made by builder", "copy": {"content": "made by become\n", "dest": "/home/builder/made"},
         "become": True, "become_user": "builder"},
        {"name": "a file touched by builder", "command": "touch /tmp/touched-by-builder",
         "args": {"creates": "/tmp/touched-by-builder"}, "become": True, "become_user": "builder"},
        {"name": "a file made by root", "copy": {"content": "root\n", "dest": "/root/made", "mode": "0600"},
         "become": True},
        {"name": "a file made by admin itself", "copy": {"content": "admin\n", "dest": "/tmp/made-by-admin"}},
    ],
}]


def ids(h: FleetHost, user: str) -> tuple[int, int]:
    for line in h.path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise KeyError(user)


def owner(h: FleetHost, path: str) -> tuple[int, int]:
    st = h.path(path).stat()   # on the host's own filesystem, not as the tool reports it
    return st.st_uid, st.st_gid


def apply(tmp_path: Path, inventory: Path) -> tuple[int, str, dict]:
    playbook = tmp_path / "become.yml"
    playbook.write_text(yaml.safe_dump(BECOME_PLAY, sort_keys=False))
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", "apply", str(playbook), "-i", str(inventory),
                           "--report", str(report)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.parametrize("sudo", ["password", "nopasswd"])
def test_admin_becomes_another_user_and_the_host_says_who_owns_the_files(
        fleet_factory: Callable[..., Fleet], tmp_path: Path, sudo: str) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    rc, _, err = fleet.run(h, "useradd --create-home --shell /bin/sh builder")
    assert rc == 0, err
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", user="admin")
    if sudo == "nopasswd":
        # the host lets admin sudo without a password, and the inventory holds none
        h.path("/etc/sudoers.d/90-admin-nopasswd").write_text("admin ALL=(ALL:ALL) NOPASSWD: ALL\n")
        h.path("/etc/sudoers.d/90-admin-nopasswd").chmod(0o440)
        data = yaml.safe_load(inventory.read_text())
        del data["all"]["vars"]["ansible_become_password"]
        inventory.write_text(yaml.safe_dump(data))
    fleet.reset_log(h)

    rc, out, report = apply(tmp_path, inventory)
    assert rc == 0, out
    results = {r["task"]: r["result"] for r in report["results"]}
    assert results["who logs in"]["stdout"] == "admin"
    assert results["who am I as builder"]["stdout"] == "builder"
    assert "Accepted publickey for admin" in fleet.log_text(h, since_reset=True)
    assert "Accepted publickey for root" not in fleet.log_text(h, since_reset=True)

    builder, admin = ids(h, "builder"), ids(h, "admin")
    assert builder != admin and builder[0] != 0
    assert owner(h, "/home/builder/made") == builder
    assert h.path("/home/builder/made").read_text() == "made by become\n"
    assert owner(h, "/tmp/touched-by-builder") == builder
    assert owner(h, "/root/made") == (0, 0)
    assert owner(h, "/tmp/made-by-admin") == admin

    # The host kept the bundle, so the second run starts admin's agent from it (that no bundle is
    # then sent: tests/unit/test_agent_cache.py), and the agents it starts through sudo still get
    # theirs: the same users, nothing changed.
    kept = [p.name for p in h.path("/home/admin/.cache/provision").iterdir() if p.name.startswith("bundle-")]
    assert len(kept) == 1, kept
    rc, out, report = apply(tmp_path, inventory)
    assert rc == 0, out
    results = {r["task"]: r["result"] for r in report["results"]}
    assert results["who am I as builder"]["stdout"] == "builder"
    assert not any(r["result"].get("changed") for r in report["results"]), out
