"""A lab behind a bastion, as admins reach one: hosts the controller cannot reach, only through a
jump host (ProxyJump, one hop and two; an ssh_config alias with no ansible_host).

The network is real and ours alone: each test makes network namespaces (tests/fleet/fleet.py
add_netns/add_link) and runs `provision` inside the "controller" one, which is linked to the
bastion's namespace only. No namespace forwards, and none has a route out, so a packet to an inner
host's address from the controller stops at once ("Network is unreachable"):

    ctl 10.250.2.1 ──veth── 10.250.2.2 bastion 10.250.0.1 ──veth── 10.250.0.2 inner (.11 .12 .13)
    (controller, and "near" 10.250.2.21)         two hops: bastion 10.250.1.1 ── 10.250.1.2 bastion2 ── inner
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet, FleetHost

FleetFactory = Callable[..., Fleet]
pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).parent / "playbooks"
INNER = ["10.250.0.11", "10.250.0.12", "10.250.0.13"]


@dataclass
class Lab:
    fleet: Fleet
    ctl: str                      # the controller's network namespace
    bastions: list[FleetHost]     # outermost first
    inner: list[FleetHost]        # reachable only through the last bastion
    near: list[FleetHost]         # reachable from the controller directly

    def run(self, *args: str, timeout: float = 180) -> tuple[int, str, dict[str, Any] | None]:
        """`provision ARGS --report R` inside the controller's namespace: (rc, output, report)."""
        report = self.fleet.dir / f"report-{time.monotonic_ns()}.json"
        argv = [*self.fleet.netns_argv(self.ctl), sys.executable, "-m", "provisioner.cli", *args,
                "--report", str(report)]
        if args[0] == "facts":
            argv = argv[:-2]
        # a HOME of its own: this machine's ~/.ssh is neither read nor written
        home = self.fleet.dir / "home"
        home.mkdir(exist_ok=True)
        proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, check=False, env={**os.environ, "HOME": str(home)})
        data = json.loads(report.read_text()) if report.exists() else None
        return proc.returncode, proc.stdout, data


def make_lab(fleet_factory: FleetFactory, hops: int = 1, inner: int = 3, near: int = 0) -> Lab:
    fleet = fleet_factory(0)
    ctl = fleet.add_netns("ctl")
    nets = [fleet.add_netns("bast%d" % i) for i in range(1, hops + 1)]
    lan = fleet.add_netns("inner")
    fleet.add_link(ctl, "10.250.2.1/24", nets[0], "10.250.2.2/24")
    if hops == 2:
        fleet.add_link(nets[0], "10.250.1.1/24", nets[1], "10.250.1.2/24")
    fleet.add_link(nets[-1], "10.250.0.1/24", lan, "10.250.0.2/24")
    bastions = [fleet.add_hosts(1, netns=nets[0], addresses=["10.250.2.2"])[0]]
    if hops == 2:
        bastions += fleet.add_hosts(1, netns=nets[1], addresses=["10.250.1.2"])
    hosts = fleet.add_hosts(inner, netns=lan, addresses=INNER[:inner])
    near_hosts = fleet.add_hosts(near, netns=ctl, addresses=["10.250.2.%d" % (21 + i) for i in range(near)]) \
        if near else []
    return Lab(fleet, ctl, bastions, hosts, near_hosts)


def representative_playbook(tmp: Path) -> Path:
    """The fleet's lab playbook (files, templates, lines, blocks, commands, a loop, a handler) without
    its apt tasks: the inner hosts have no way out to Debian's mirror, by design."""
    plays = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    keep = [t for t in plays[0]["tasks"] if "apt" not in t and not any(w in t["name"] for w in ("tree", "jq", "tools"))]
    assert len(keep) >= 12
    plays[0]["tasks"] = keep
    shutil.copytree(PLAYBOOKS / "templates", tmp / "templates", dirs_exist_ok=True)
    path = tmp / "lab.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def inventory(lab: Lab, path: Path, jump_args: str, hosts: list[FleetHost] | None = None) -> Path:
    """The fleet's inventory of the inner hosts, the jump given in `ansible_ssh_common_args` as
    Ansible users write it (the fleet's own -o options kept)."""
    fl = lab.fleet
    common = ("-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
              % fl.known_hosts_path)
    inner = {h.name: {"ansible_ssh_common_args": f"{common} {jump_args}"} for h in lab.inner}
    return fl.write_inventory(path, hosts=hosts if hosts is not None else lab.inner, host_vars=inner)


def test_one_jump_direct_connect_fails_playbook_converges_bastion_sees_one_connection(
    fleet_factory: FleetFactory, tmp_path: Path
) -> None:
    lab = make_lab(fleet_factory, hops=1, inner=3)
    fl, (bastion,) = lab.fleet, lab.bastions
    pb = representative_playbook(tmp_path)

    direct = fl.write_inventory(tmp_path / "direct.yml", hosts=lab.inner)
    rc, out, _ = lab.run("facts", "-i", str(direct))
    assert rc == 1, out
    for h in lab.inner:
        assert f"cannot connect to root@{h.address}:22: [Errno 101] Network is unreachable" in out, out

    inv = inventory(lab, tmp_path / "inv.yml", "-o ProxyJump=root@10.250.2.2")
    fl.reset_log()
    t0 = time.monotonic()
    rc, out, report = lab.run("apply", str(pb), "-i", str(inv))
    print(f"\nfirst run through one jump host: {time.monotonic() - t0:.2f}s")
    assert rc == 0, out
    assert report is not None
    assert all(report["recap"][h.name]["changed"] >= 10 for h in lab.inner), report["recap"]
    for h in lab.inner:
        assert (h.path("/etc/issue.net").read_text() ==
                "This host is managed by provision. Local edits will be lost.\n")
        assert h.path("/srv/lab/hostid").read_text() == h.name + "\n"
        assert fl.session_counts(h)["connections"] == 1 and fl.count_exec_sessions(h) == 1
    # one connection to the bastion, shared by the three hosts behind it (one channel each)
    bc = fl.session_counts(bastion)
    print(f"bastion: {bc}")
    assert bc["connections"] == 1 and bc["exec"] == 0 and bc["channels"] == 3

    fl.reset_log()
    rc, out, report = lab.run("apply", str(pb), "-i", str(inv))
    assert rc == 0, out
    assert report is not None
    assert {h: r["changed"] for h, r in report["recap"].items()} == {h.name: 0 for h in lab.inner}
    assert fl.count_connections(bastion) == 1


def ssh_config_for(lab: Lab, path: Path) -> Path:
    """An admin's ~/.ssh/config for a two-hop lab: aliases only, the hops chained by ProxyJump."""
    fl = lab.fleet
    common = (f"  User root\n  IdentityFile {fl.key_path}\n  IdentitiesOnly yes\n"
              f"  UserKnownHostsFile {fl.known_hosts_path}\n  StrictHostKeyChecking yes\n")
    text = (f"Host gate\n  HostName {lab.bastions[0].address}\n"
            f"Host gate2\n  HostName {lab.bastions[1].address}\n  ProxyJump gate\n"
            + "".join(f"Host gpu-{i}\n  HostName {h.address}\n" for i, h in enumerate(lab.inner, 1))
            + "Host gpu-*\n  ProxyJump gate2\n"
            + "Host *\n" + common)
    path.write_text(text)
    return path


def test_two_hops_through_an_ssh_config_alias_with_no_ansible_host(
    fleet_factory: FleetFactory, tmp_path: Path
) -> None:
    lab = make_lab(fleet_factory, hops=2, inner=2)
    fl = lab.fleet
    pb = representative_playbook(tmp_path)
    cfg = ssh_config_for(lab, tmp_path / "ssh_config")
    # the inventory names the aliases and nothing else: address, user, key, known_hosts, jumps come
    # from the ssh config
    inv = tmp_path / "aliases.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {f"gpu-{i}": None for i in range(1, len(lab.inner) + 1)}}}))
    fl.reset_log()
    rc, out, report = lab.run("apply", str(pb), "-i", str(inv), "-F", str(cfg))
    assert rc == 0, out
    assert report is not None and set(report["recap"]) == {"gpu-1", "gpu-2"}
    for i, h in enumerate(lab.inner, 1):
        assert report["recap"][f"gpu-{i}"]["changed"] >= 10
        assert h.path("/srv/lab/hostid").read_text() == h.name + "\n"
    counts = [fl.session_counts(b) for b in lab.bastions]
    print(f"\ntwo hops: bastion connections {[c['connections'] for c in counts]}")
    # gate carries one connection (to gate2); gate2 one, with a channel per inner host
    assert [c["connections"] for c in counts] == [1, 1]
    assert counts[0]["channels"] == 1 and counts[1]["channels"] == 2

    # the same two hops written in the inventory, as `-J` in ansible_ssh_extra_args, no ssh config
    inv2 = tmp_path / "j.yml"
    inv2.write_text(yaml.safe_dump({"all": {
        "hosts": {f"gpu-{i}": {"ansible_host": h.address, "ansible_user": "root"} for i, h in enumerate(lab.inner, 1)},
        "vars": {"ansible_ssh_private_key_file": str(fl.key_path),
                 "ansible_ssh_common_args": f"-o UserKnownHostsFile={fl.known_hosts_path}",
                 "ansible_ssh_extra_args": "-J root@10.250.2.2,root@10.250.1.2"}}}))
    fl.reset_log()
    rc, out, report = lab.run("apply", str(pb), "-i", str(inv2), "-F", "/dev/null")
    assert rc == 0, out
    assert report is not None
    assert {h: r["changed"] for h, r in report["recap"].items()} == {"gpu-1": 0, "gpu-2": 0}
    assert [fl.count_connections(b) for b in lab.bastions] == [1, 1]


def test_every_hops_host_key_is_checked(fleet_factory: FleetFactory, tmp_path: Path) -> None:
    lab = make_lab(fleet_factory, hops=2, inner=2)
    fl = lab.fleet
    target = lab.inner[0]
    lines = fl.known_hosts_path.read_text().splitlines()
    jump = "-J root@10.250.2.2,root@10.250.1.2"

    def known_without(*names: str) -> Path:
        path = tmp_path / ("kh-" + "-".join(names))
        path.write_text("".join(ln + "\n" for ln in lines if ln.split()[0] not in names))
        return path

    def run_with(known: Path, *extra: str) -> tuple[int, str]:
        inv = fl.write_inventory(tmp_path / "inv.yml", hosts=lab.inner, extra_vars={
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o IdentitiesOnly=yes {jump}",
            "ansible_ssh_known_hosts_file": str(known)})
        rc, out, _ = lab.run("facts", "-i", str(inv), "-F", "/dev/null", *extra)
        return rc, out

    for hop in ("10.250.2.2", "10.250.1.2"):
        fl.reset_log()
        rc, out = run_with(known_without(hop))
        assert rc == 1, out
        assert out.count(f"host key of {hop} is unknown") == 2 and "refused" in out, out   # both hosts say so
        # ...after one try: the hosts waiting for the same jump host get its answer, not a login each
        assert fl.count_connections(lab.bastions[0]) == 1
    # the first hop's key unknown: refused before the second hop or the host is tried
    rc, out = run_with(known_without("10.250.2.2"))
    assert "jump host root@10.250.2.2" in out
    # a forged key for the target itself (a man in the middle at the far end of the jump)
    forged = tmp_path / "forged"
    forged.write_text("".join(
        (f"{ln.split()[0]} {lab.bastions[0].host_key_pub}\n" if ln.split()[0] == target.address else ln + "\n")
        for ln in lines))
    rc, out = run_with(forged)
    assert rc == 1 and f"HOST KEY CHANGED for {target.address}" in out, out
    # all keys known: through
    rc, out = run_with(fl.known_hosts_path)
    assert rc == 0, out
    # an unknown bastion key recorded only when asked (--accept-new-host-keys), and then used
    partial = known_without("10.250.2.2")
    rc, out = run_with(partial, "--accept-new-host-keys")
    assert rc == 0, out
    assert f"10.250.2.2 {lab.bastions[0].host_key_pub}" in partial.read_text()


def test_bastion_killed_mid_run_its_hosts_unreachable_others_finish(
    fleet_factory: FleetFactory, tmp_path: Path
) -> None:
    lab = make_lab(fleet_factory, hops=1, inner=2, near=1)
    fl, (bastion,), (near,) = lab.fleet, lab.bastions, lab.near
    plays = [{"name": "slow", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "started", "copy": {"content": "1\n", "dest": "/root/started"}},
        {"name": "long task", "command": "sleep 4"},
        {"name": "done", "copy": {"content": "2\n", "dest": "/root/done"}},
    ]}]
    pb = tmp_path / "slow.yml"
    pb.write_text(yaml.safe_dump(plays))
    inv = inventory(lab, tmp_path / "inv.yml", "-o ProxyJump=root@10.250.2.2", hosts=[*lab.inner, near])

    def kill_when_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(h.path("/root/started").exists() for h in lab.inner):
                time.sleep(1.0)   # inside "long task"
                fl.kill_sshd(bastion)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    rc, out, report = lab.run("apply", str(pb), "-i", str(inv))
    killer.join()
    assert not bastion.running
    print("\n" + "\n".join(ln for ln in out.splitlines() if "unreachable:" in ln))
    assert rc == 1, out
    assert report is not None
    for h in lab.inner:
        assert report["recap"][h.name]["unreachable"] == 1, report["recap"]
        assert not h.path("/root/done").exists()
    assert "jump host root@10.250.2.2 (root@10.250.2.2:22) is unreachable" in out, out
    assert report["recap"][near.name] == {**report["recap"][near.name], "unreachable": 0, "failed": 0}
    assert near.path("/root/done").read_text() == "2\n"
