"""raw, script, fetch and git on real SSH hosts (tests/fleet): raw bootstraps python3 on a host that
has none, then the agent runs; git clones over SSH from another fleet host (git from Debian's mirror)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.test_behaviour import Provision, write_playbook

pytestmark = pytest.mark.fleet
FleetFactory = Callable[..., Fleet]


@pytest.fixture
def provision(tmp_path: Path) -> Provision:
    return Provision(tmp_path)


def test_raw_installs_python3_then_the_agent_runs(fleet_factory: FleetFactory, provision: Provision,
                                                  tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    gone = fleet.host_exec(h, ["dpkg", "--purge", "--force-depends", "python3", "python3-minimal"])
    assert gone.returncode == 0 and not h.path("/usr/bin/python3").exists()
    inv = fleet.inventory_path
    plain = write_playbook(tmp_path / "plain.yml", [{"hosts": "all", "tasks": [{"ping": None}]}])
    run = provision.apply(plain, inv)
    assert run.rc == 1 and "python3 not found on the host" in run.out

    boot = write_playbook(tmp_path / "boot.yml", [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "bootstrap", "raw": "test -e /usr/bin/python3 || DEBIAN_FRONTEND=noninteractive "
                                     "apt-get install -y python3", "register": "boot"},
        {"name": "facts now", "setup": None},
        {"name": "module", "copy": {"content": "{{ ansible_facts.distribution }} {{ boot.rc }}\n",
                                    "dest": "/root/booted"}},
    ]}])
    fleet.reset_log(h)
    run = provision.apply(boot, inv, timeout=600)
    assert run.rc == 0, run.out
    assert h.path("/root/booted").read_text() == "Debian 0\n"
    assert fleet.session_counts(h)["exec"] == 2  # the raw command, then the agent for the rest
    fleet.reset_log(h)
    run = provision.apply(boot, inv)
    assert run.rc == 0 and run.changed()["host01"] == 1  # raw is always changed; the copy is not
    assert fleet.session_counts(h)["exec"] == 2
    fleet.reset_log(h)
    run = provision.apply(plain, inv)
    assert run.rc == 0 and fleet.session_counts(h)["exec"] == 1  # a play without raw: one session, as before


def _bare_repo(where: Path) -> str:
    """A bare repository with one commit, made here with this machine's git; its head commit."""
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
    work = where.parent / (where.name + ".work")
    work.mkdir(parents=True)
    (work / "README").write_text("lab tools\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "first"],
                 ["clone", "-q", "--bare", str(work), str(where)]):
        subprocess.run(["git", *argv], cwd=work, env=env, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_script_fetch_git_over_ssh(fleet_factory: FleetFactory, provision: Provision, tmp_path: Path) -> None:
    fleet = fleet_factory(2)
    h1, h2 = fleet.hosts
    head = _bare_repo(h1.path("/srv/tools.git"))
    _bare_repo(h2.path("/srv/local.git"))
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "hello.sh").write_text("#!/bin/sh\necho \"hello $1 from $(hostname)\" > /root/hello\n")
    key = str(fleet.key_path)
    play = write_playbook(tmp_path / "site.yml", [{"hosts": "all", "tasks": [
        {"name": "git from Debian", "apt": {"name": "git"}},
        {"name": "script", "script": "hello.sh lab", "args": {"creates": "/root/hello"}},
        {"name": "fetch", "fetch": {"src": "/root/hello", "dest": str(tmp_path / "got")}},
        {"name": "key", "copy": {"src": key, "dest": "/root/.ssh/fleet_key", "mode": "0600"}},
        {"name": "clone over ssh", "when": "inventory_hostname == 'host02'", "register": "co",
         "git": {"repo": f"ssh://root@127.0.0.1:{h1.port}/srv/tools.git", "dest": "/opt/tools",
                 "key_file": "/root/.ssh/fleet_key", "accept_hostkey": True}},
        {"name": "clone file", "when": "inventory_hostname == 'host02'",
         "git": {"repo": "file:///srv/local.git", "dest": "/opt/local", "version": "main"}},
    ]}])
    run = provision.apply(play, fleet.inventory_path, timeout=600)
    assert run.rc == 0, run.out
    for h in (h1, h2):
        assert h.path("/root/hello").read_text() == f"hello lab from {h.name}\n"
        assert (tmp_path / "got" / h.name / "root" / "hello").read_text() == f"hello lab from {h.name}\n"
    assert h2.path("/opt/tools/README").read_text() == "lab tools\n"
    assert h2.path("/opt/local/README").read_text() == "lab tools\n"
    done = [r for r in run.report["results"] if r["task"] == "clone over ssh" and r["host"] == "host02"]  # type: ignore[index]
    assert done[0]["status"] == "changed" and done[0]["result"]["after"] == head
    again = provision.apply(play, fleet.inventory_path)
    assert again.rc == 0 and again.changed() == {"host01": 0, "host02": 0}, again.out


def test_modprobe_persistent_files_and_a_clear_load_failure(fleet_factory: FleetFactory, provision: Provision,
                                                           tmp_path: Path) -> None:
    """The fleet's kernel has no loadable modules (no /proc/modules): loading fails with modprobe's own
    words; `state: absent` is already true, so its persistent files are handled for real."""
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    h.path("/etc/modules-load.d/gpu.conf").write_text("nvidia_drm\nloop\n")
    play = write_playbook(tmp_path / "mods.yml", [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "no kmod yet", "community.general.modprobe": {"name": "dummy"}, "ignore_errors": True,
         "register": "nokmod"},
        {"name": "kmod", "apt": {"name": "kmod"}},
        {"name": "options", "copy": {"content": "options nvidia_drm modeset=1\n",
                                     "dest": "/etc/modprobe.d/nvidia.conf", "force": False}},
        {"name": "load", "community.general.modprobe": {"name": "dummy", "params": "numdummies=2"},
         "ignore_errors": True, "register": "load"},
        {"name": "not at boot", "community.general.modprobe": {"name": "nvidia_drm", "state": "absent",
                                                               "persistent": "absent"}},
        {"name": "nouveau off", "community.general.kernel_blacklist": {"name": "nouveau"}},
        {"name": "keep 1", "copy": {"content": "{{ nokmod.msg }}\n", "dest": "/root/msg1", "force": False}},
        {"name": "keep 2", "copy": {"content": "{{ load.msg }}\n", "dest": "/root/msg2"}},
    ]}])
    run = provision.apply(play, fleet.inventory_path, timeout=600)
    assert run.rc == 0, run.out
    msgs = [h.path(f"/root/msg{i}").read_text().strip() for i in (1, 2)]
    assert msgs[0] == "modprobe is not installed on the host (Debian/Ubuntu: package kmod)"
    assert msgs[1].startswith("modprobe: FATAL: Module dummy not found"), msgs
    assert h.path("/etc/modules-load.d/gpu.conf").read_text() == "#nvidia_drm\nloop\n"
    assert h.path("/etc/modprobe.d/nvidia.conf").read_text() == "#options nvidia_drm modeset=1\n"
    assert h.path("/etc/modprobe.d/blacklist-ansible.conf").read_text() == "blacklist nouveau\n"
    again = provision.apply(play, fleet.inventory_path)
    assert again.rc == 0 and again.changed() == {"host01": 0}, again.out
