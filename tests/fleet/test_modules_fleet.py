"""Issue 14's system modules for real on a Debian 13 fleet host: user, group, hostname, cron,
authorized_key, known_hosts, replace, sysctl and mount applied by `provision apply`, the host's
files checked, and a second run changes nothing.

sysctl note: a fleet host's /proc/sys is this machine's kernel (only UTS/PID/mount are unshared),
so the reload sets the value the host already has, and the failure case uses a key no kernel has.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).parent / "playbooks"


def apply(fleet: Fleet, tmp: Path, playbook: Path, *extra: str, name: str = "run") -> tuple[int, str, dict[str, Any]]:
    report = tmp / f"{name}.json"
    argv = [sys.executable, "-m", "provisioner.cli", "apply", str(playbook), "-i", str(fleet.inventory_path),
            "--known-hosts", str(fleet.known_hosts_path), "--report", str(report), *extra]
    proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600, check=False)
    return proc.returncode, proc.stdout, json.loads(report.read_text()) if report.exists() else {}


def test_system_modules_converge_and_rerun_changes_nothing(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    swappiness = fleet.run(h, "sysctl -n vm.swappiness")[1].strip()
    rc, out, report = apply(fleet, tmp_path, PLAYBOOKS / "modules.yml", "-e", f"swappiness={swappiness}")
    assert rc == 0, out
    status = {r["task"]: r["status"] for r in report["results"] if r["action"] != "setup"}
    assert status.pop("a departed student") == "ok"  # absent and never there
    assert set(status.values()) == {"changed"}, status
    root = h.root
    passwd = (root / "etc/passwd").read_text()
    assert "student1:x:3001:2001:Student One:/home/student1:/bin/bash" in passwd.splitlines()
    group = (root / "etc/group").read_text().splitlines()
    assert "lab:x:2001:" in group
    assert any(line.startswith("video:x:44:") and "student1" in line.split(":")[3] for line in group)
    gpu = next(line for line in group if line.startswith("gpuusers:"))
    assert int(gpu.split(":")[2]) < 1000 and "student1" in gpu  # a system group
    shadow = next(line for line in (root / "etc/shadow").read_text().splitlines() if line.startswith("student1:"))
    assert shadow.split(":")[1].startswith("$6$labsalt01$") and shadow.split(":")[7] == str(1893456000 // 86400)
    home = root / "home/student1"
    assert home.stat().st_uid == 3001 and home.stat().st_mode & 0o777 == 0o700  # login.defs HOME_MODE
    pub = (home / ".ssh/id_ed25519.pub").read_text()
    assert pub.startswith("ssh-ed25519 ") and "ansible-generated on host01" in pub
    rc_key, pub_ta, _ = fleet.run(h, "ssh-keygen -y -P 'ta key pass' -f /home/ta1/.ssh/id_ed25519")
    assert rc_key == 0 and pub_ta.startswith("ssh-ed25519 ")  # the passphrase was typed through a pty
    assert fleet.run(h, "ssh-keygen -y -P '' -f /home/ta1/.ssh/id_ed25519")[0] != 0
    assert (root / "root/student.txt").read_text() == \
        "3001 2001 /home/student1 /bin/bash /home/student1/.ssh/id_ed25519\n"
    keys = home / ".ssh/authorized_keys"
    assert keys.read_text() == ("no-port-forwarding ssh-ed25519 "
                                "AAAAC3NzaC1lZDI1NTE5AAAAIBvH7sK5w3lZ2pp8Ko6vPBrpDbeTZ8M7QKcIWoTcdK8X teacher@lab\n")
    assert keys.stat().st_mode & 0o777 == 0o600 and keys.stat().st_uid == 3001
    assert (root / "etc/hostname").read_text() == "lab-node-01\n"
    crontab = fleet.run(h, "crontab -l -u student1")[1]
    assert crontab == 'MAILTO="teacher@lab"\n#Ansible: check gpu\n*/5 * * * * /usr/local/bin/check-gpu\n'
    assert (root / "var/spool/cron/crontabs/student1").exists()
    assert (root / "etc/cron.d/lab-clean").read_text() == "#Ansible: clean scratch\n@daily root rm -rf /mnt/scratch/*\n"
    assert "git.lab.example ssh-ed25519 AAAAC3" in (root / "etc/ssh/ssh_known_hosts").read_text()
    assert (root / "etc/lab.conf").read_text() == "server = new.lab.example\nmirror = new.lab.example\n"
    assert (root / "etc/sysctl.d/99-lab.conf").read_text() == f"vm.swappiness={swappiness}\n"
    assert (root / "etc/sysctl.d/98-lab.conf").read_text() == "kernel.provision_no_such_key=1\n"
    fstab = (root / "etc/fstab").read_text().splitlines()
    assert "tmpfs /mnt/scratch tmpfs size=16m,mode=1777 0 0" in fstab
    assert "nfs.lab.example:/data /srv/data nfs ro,noauto 0 0" in fstab
    mounts = fleet.run(h, "findmnt -n -o FSTYPE,OPTIONS /mnt/scratch")[1]
    assert mounts.startswith("tmpfs") and "size=16384k" in mounts

    rc, out, again = apply(fleet, tmp_path, PLAYBOOKS / "modules.yml", "-e", f"swappiness={swappiness}", name="again")
    assert rc == 0, out
    changed = [r["task"] for r in again["results"] if r["status"] == "changed"]
    assert changed == [] and again["recap"]["host01"]["changed"] == 0, out


def test_failures_are_reported_clearly(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """A reload of a key the kernel lacks, a user with an unknown group, a removal of a missing
    user: Ansible's messages; the hosts' files are left as they were."""
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    playbook = tmp_path / "fail.yml"
    playbook.write_text("""
- hosts: all
  gather_facts: false
  tasks:
    - ansible.posix.sysctl: {name: kernel.provision_no_such_key, value: "1", sysctl_file: /etc/sysctl.d/98-x.conf}
      ignore_errors: true
    - user: {name: student2, groups: [no-such-group]}
      ignore_errors: true
    - user: {name: nobody-here, state: absent}
    - group: {name: nogroup-here, state: absent}
    - ansible.posix.mount: {path: /mnt/bad, src: /dev/no-such-disk, fstype: ext4, state: mounted}
      ignore_errors: true
""")
    rc, out, report = apply(fleet, tmp_path, playbook)
    assert rc == 0, out
    sysctl, user, gone, group_gone, mount = (r for r in report["results"] if r["action"] != "setup")
    assert sysctl["status"] == "failed" and sysctl["msg"].startswith("Failed to reload sysctl: ")
    assert "/proc/sys/kernel/provision_no_such_key: No such file or directory" in sysctl["msg"]
    assert user["status"] == "failed" and user["msg"] == "Group no-such-group does not exist"
    assert "student2" not in (h.root / "etc/passwd").read_text()
    assert gone["status"] == "ok" and group_gone["status"] == "ok"
    assert mount["status"] == "failed" and mount["msg"].startswith("Error mounting /mnt/bad: ")
    assert "/mnt/bad" not in (h.root / "etc/fstab").read_text()  # the fstab change was undone
    assert not (h.root / "mnt/bad").exists()
