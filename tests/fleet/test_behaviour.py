"""Issue 3 on the real test fleet: a lab playbook on 5 hosts, and what a run does when
hosts are down or die, tasks fail, the run is interrupted, host keys are unknown or
changed, secrets are handled, values try to inject commands, and 50 hosts run at once.

Each test starts its own hosts (tests/fleet/fleet.py) and runs `provision apply` as a
separate process, as a lab admin would, then reads the hosts' files from their overlay
roots, asks testinfra, or looks at their processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet, FleetHost
from tests.fleet.hoststate import assert_unchanged, host_state

FleetFactory = Callable[..., Fleet]

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).parent / "playbooks"
PROVISION = [sys.executable, "-m", "provisioner.cli"]


# --------------------------------------------------------------------------- helpers

@dataclass
class Run:
    """One finished `provision apply`: exit code, what it printed, its --report."""
    rc: int
    out: str
    report: dict[str, Any] | None
    seconds: float

    def recap(self, host: str) -> dict[str, int]:
        assert self.report is not None, self.out
        return self.report["recap"][host]

    def changed(self) -> dict[str, int]:
        assert self.report is not None, self.out
        return {h: r["changed"] for h, r in self.report["recap"].items()}


class Provision:
    """Runs `provision apply` in a subprocess with a fresh --report file each time."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0

    def report_path(self) -> Path:
        self.count += 1
        return self.workdir / f"report-{self.count}.json"

    def argv(self, playbook: Path, inventory: Path, *args: str, report: Path | None = None) -> list[str]:
        argv = [*PROVISION, "apply", str(playbook), "-i", str(inventory), *args]
        return argv + ["--report", str(report)] if report else argv

    def apply(self, playbook: Path, inventory: Path, *args: str, timeout: float = 300) -> Run:
        report = self.report_path()
        t0 = time.monotonic()
        proc = subprocess.run(self.argv(playbook, inventory, *args, report=report), cwd=REPO, check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        seconds = time.monotonic() - t0
        data = json.loads(report.read_text()) if report.exists() else None
        return Run(proc.returncode, proc.stdout, data, seconds)


@pytest.fixture
def provision(tmp_path: Path) -> Provision:
    return Provision(tmp_path)


def write_playbook(path: Path, plays: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def read(h: FleetHost, path: str) -> str | None:
    """A file inside the host, read through its overlay root (works while the host is down)."""
    p = h.path(path)
    return p.read_text() if p.is_file() else None


def host_processes(fleet: Fleet, h: FleetHost) -> list[str]:
    """`pid args` of every process in the host but its sshd (PID 1) and this ps (read without ssh)."""
    out = fleet.host_exec(h, ["ps", "-e", "-o", "pid=,comm=,args="]).stdout.decode()
    return [ln.strip() for ln in out.splitlines() if ln.split()[0] != "1" and ln.split()[1] != "ps"]


def no_processes(fleet: Fleet, h: FleetHost) -> bool:
    return not host_processes(fleet, h)


def wait_for(what: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def session_members(sid: int) -> list[int]:
    """PIDs on this machine whose session id is `sid` (what a started process left behind)."""
    found = []
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            stat = Path(f"/proc/{ent}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(int(ent))
    return found


# --------------------------------------------------------------------------- 1. the lab playbook

LAB_PACKAGES = ("tree", "jq", "sl")


def assert_lab_state(fleet: Fleet, h: FleetHost) -> None:
    """What site.yml promises, asked over SSH with testinfra."""
    t = fleet.testinfra(h)
    for pkg in LAB_PACKAGES:
        assert t.package(pkg).is_installed, (h.name, pkg)
    assert t.file("/etc/lab").is_directory and t.file("/etc/lab").mode == 0o755
    srv = t.file("/srv/lab")
    assert srv.is_directory and srv.mode == 0o750 and (srv.user, srv.group) == ("admin", "admin")
    conf = t.file("/etc/default/lab")
    assert conf.mode == 0o640 and conf.user == "root"
    assert f"host = {h.name}\n" in conf.content_string and "user = carol\n" in conf.content_string
    assert t.file("/etc/motd").content_string.startswith(f"Welcome to {h.name}, part of fleet-lab.")
    notice = t.file("/etc/issue.net")
    assert notice.mode == 0o444 and "managed by provision" in notice.content_string
    assert t.file("/usr/local/bin/lab-check").mode == 0o755
    assert t.check_output("lab-check") == f"lab-ok {h.name} 8"
    assert t.file("/etc/environment").content_string.count("LAB_NAME=fleet-lab\n") == 1
    assert t.file("/etc/lab/limits.conf").content_string == "max_jobs=8\n"
    bashrc = t.file("/etc/bash.bashrc").content_string
    assert ("# BEGIN ANSIBLE MANAGED BLOCK\nalias ll='ls -l'\nexport LAB_NAME=fleet-lab\n"
            "# END ANSIBLE MANAGED BLOCK") in bashrc
    link = t.file("/etc/lab.conf")
    assert link.is_symlink and link.linked_to == "/etc/default/lab"
    assert t.file("/srv/lab/hostid").content_string == f"{h.name}\n"
    assert t.file("/srv/lab/counter").content_string == "initialised\n"
    assert t.file("/srv/lab/reloads").content_string == "reloaded\n"      # the handler ran once
    for user in ("alice", "bob", "carol"):
        assert t.file(f"/srv/lab/{user}").is_directory and t.file(f"/srv/lab/{user}").mode == 0o700
    assert t.run("jq -n 1+1").stdout.strip() == "2"
    assert t.run("/usr/games/sl -h 2>&1 >/dev/null; echo $?").rc == 0


def test_lab_playbook_on_five_hosts_then_second_run_changes_nothing(
    fleet_factory: FleetFactory, provision: Provision
) -> None:
    fleet = fleet_factory(5)
    site = PLAYBOOKS / "site.yml"

    first = provision.apply(site, fleet.inventory_path)
    assert first.rc == 0, first.out
    for h in fleet.hosts:
        recap = first.recap(h.name)
        assert recap["failed"] == recap["unreachable"] == 0, (h.name, recap)
        assert recap["changed"] >= 15, (h.name, recap)
    print(f"\nfirst run on 5 hosts: {first.seconds:.1f}s, changed={first.changed()}")
    for h in fleet.hosts:
        assert_lab_state(fleet, h)

    fleet.reset_log()
    before = {h.name: host_state(fleet, h) for h in fleet.hosts}
    second = provision.apply(site, fleet.inventory_path)
    assert second.rc == 0, second.out
    for h in fleet.hosts:   # judged on the host: no file rewritten, no package touched
        assert_unchanged(before[h.name], host_state(fleet, h), h.name)
    assert second.changed() == {h.name: 0 for h in fleet.hosts}, second.out
    assert "nothing changed" in second.out
    sessions = {h.name: fleet.count_exec_sessions(h) for h in fleet.hosts}
    print(f"second run: {second.seconds:.1f}s, exec sessions per host: {sessions}")
    assert all(n <= 2 for n in sessions.values()), sessions
    for h in fleet.hosts:
        assert read(h, "/srv/lab/reloads") == "reloaded\n"       # nothing changed: no handler
        assert read(h, "/srv/lab/counter") == "initialised\n"


# Paths a run may touch without that being a change to the host.
VOLATILE = ("/root/.cache", "/var/log", "/tmp")


def test_check_mode_on_a_fresh_host_changes_nothing_but_says_what_would(
    fleet_factory: FleetFactory, provision: Provision
) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    paths = ("/etc", "/usr", "/var/lib/dpkg", "/root", "/home", "/opt", "/srv")
    before = fleet.snapshot(h, paths, exclude=VOLATILE)
    run = provision.apply(PLAYBOOKS / "site.yml", fleet.inventory_path, "--check", "--diff")
    after = fleet.snapshot(h, paths, exclude=VOLATILE)
    leftovers = [p for p in fleet.snapshot(h, ("/tmp",)) if ".provision" in p]
    assert run.rc == 0, run.out
    assert run.report is not None and run.report["check_mode"] is True
    recap = run.recap(h.name)
    assert recap["changed"] >= 15 and recap["failed"] == 0, recap
    changed_paths = sorted(set(before) ^ set(after) | {p for p in before if before[p] != after.get(p)})
    assert changed_paths == [], changed_paths[:20]
    assert leftovers == []
    assert "+max_jobs = 8" in run.out, run.out            # --diff shows what the template would write
    msgs = {r["task"]: r["msg"] for r in run.report["results"]}
    assert msgs["host id, made once"] == "would run: cp /etc/hostname /srv/lab/hostid"


# --------------------------------------------------------------------------- 2-3. hosts down or dying

MARKER_PLAY = [{
    "name": "mark every host", "hosts": "all",
    "tasks": [{"name": "marker", "copy": {"content": "{{ inventory_hostname }}\n", "dest": "/root/marker"}}],
}]


def test_host_down_before_the_run_is_unreachable_and_the_others_finish(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(3)
    down = fleet.hosts[1]
    fleet.stop(down)
    run = provision.apply(write_playbook(tmp_path / "pb.yml", MARKER_PLAY), fleet.inventory_path)
    print(f"\nhost02 down: rc={run.rc} in {run.seconds:.1f}s")
    assert run.rc == 1, run.out
    assert run.recap("host02")["unreachable"] == 1
    assert "unreachable: [host02]" in run.out and "connection refused" in run.out
    recap_line = next(ln for ln in run.out.splitlines() if ln.startswith("host02 "))
    assert "unreachable=1" in recap_line
    for h in (fleet.hosts[0], fleet.hosts[2]):
        assert run.recap(h.name) == {**run.recap(h.name), "changed": 1, "failed": 0, "unreachable": 0}
        assert read(h, "/root/marker") == f"{h.name}\n"
    assert read(down, "/root/marker") is None
    assert run.seconds < 15


DYING_PLAY = [{
    "name": "a host dies in the slow step", "hosts": "all",
    "tasks": [
        {"name": "counter before the slow step, appended once",
         "shell": "echo once >> /root/counter-before", "args": {"creates": "/root/counter-before"}},
        {"name": "slow step, done once",
         "shell": "sleep 5 && touch /root/slow-done", "args": {"creates": "/root/slow-done"}},
        {"name": "counter after the slow step, appended once",
         "shell": "echo once >> /root/counter-after", "args": {"creates": "/root/counter-after"}},
        {"name": "settings", "copy": {"content": "v1\n", "dest": "/root/settings"}},
    ],
}]


def test_host_dies_mid_run_then_rerun_converges_without_repeating(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(3)
    victim = fleet.hosts[1]
    pb = write_playbook(tmp_path / "pb.yml", DYING_PLAY)
    killed_at: list[float] = []

    def kill_when_sleeping() -> None:
        # the slow step is running on the victim: then its sshd (the whole host) dies
        def sleeping() -> bool:
            return victim.running and fleet.host_exec(victim, ["pgrep", "-f", "sleep 5"]).returncode == 0

        if wait_for(sleeping, timeout=60):
            time.sleep(1.0)
            fleet.kill_sshd(victim)
            killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill_when_sleeping)
    killer.start()
    run = provision.apply(pb, fleet.inventory_path)
    killer.join()
    assert killed_at, "the slow step never ran on the victim"
    assert run.rc == 1, run.out
    assert run.recap("host02")["unreachable"] == 1, run.out
    assert "unreachable: [host02]" in run.out
    assert "unreachable=1" in next(ln for ln in run.out.splitlines() if ln.startswith("host02 "))
    assert run.report is not None
    lost = next(r for r in run.report["results"] if r["host"] == "host02" and r["status"] == "unreachable")
    print(f"\nsshd of host02 killed 1s into `sleep 5`: rc={run.rc} in {run.seconds:.1f}s; "
          f"host02 unreachable after {lost['duration_s']:.1f}s of the step: {lost['msg']}")
    assert lost["task"] == "slow step, done once" and lost["duration_s"] < 4.5   # noticed, not timed out
    for h in (fleet.hosts[0], fleet.hosts[2]):
        assert run.recap(h.name)["failed"] == run.recap(h.name)["unreachable"] == 0
        assert read(h, "/root/settings") == "v1\n"
    assert read(victim, "/root/slow-done") is None and read(victim, "/root/settings") is None
    assert run.seconds < 20

    fleet.start(victim)
    rerun = provision.apply(pb, fleet.inventory_path)
    print(f"after restart: rc={rerun.rc} in {rerun.seconds:.1f}s, changed={rerun.changed()}")
    assert rerun.rc == 0, rerun.out
    assert rerun.changed() == {"host01": 0, "host02": 3, "host03": 0}, rerun.out
    before = {h.name: host_state(fleet, h) for h in fleet.hosts}
    third = provision.apply(pb, fleet.inventory_path)
    assert third.rc == 0 and set(third.changed().values()) == {0}, third.out
    for h in fleet.hosts:
        assert_unchanged(before[h.name], host_state(fleet, h), h.name)
    for h in fleet.hosts:
        assert read(h, "/root/counter-before") == "once\n", h.name
        assert read(h, "/root/counter-after") == "once\n", h.name
        assert read(h, "/root/slow-done") == "" and read(h, "/root/settings") == "v1\n"


# --------------------------------------------------------------------------- 4. failing tasks

def failing_play(failing: list[str], play: dict[str, Any] | None = None, step: dict[str, Any] | None = None,
                 rescue: bool = False) -> list[dict[str, Any]]:
    """before (notifies a handler) → a command that fails on `failing` → after."""
    step_task: dict[str, Any] = {
        "name": "a step that fails on some hosts",
        "command": "{{ 'false' if inventory_hostname in failing else 'true' }}", **(step or {})}
    if rescue:
        step_task = {"name": "guarded", "block": [step_task], "rescue": [
            {"name": "rescue it", "copy": {"content": "rescued\n", "dest": "/root/rescued"}}]}
    return [{
        "name": "some hosts fail", "hosts": "all", "gather_facts": False, "vars": {"failing": failing},
        **(play or {}),
        "tasks": [
            {"name": "before", "copy": {"content": "before\n", "dest": "/root/before"}, "notify": "note it"},
            step_task,
            {"name": "after", "copy": {"content": "after\n", "dest": "/root/after"}},
        ],
        "handlers": [{"name": "note it", "copy": {"content": "handled\n", "dest": "/root/handled"}}],
    }]


def test_failed_task_stops_that_host_and_its_handlers_others_go_on(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(5)
    run = provision.apply(write_playbook(tmp_path / "pb.yml", failing_play(["host02"])), fleet.inventory_path)
    print(f"\nhost02 fails: rc={run.rc} in {run.seconds:.1f}s")
    assert run.rc == 1, run.out
    assert "failed: [host02] => non-zero return code 1" in run.out
    assert run.recap("host02")["failed"] == 1
    for h in fleet.hosts:
        failed = h.name == "host02"
        assert read(h, "/root/before") == "before\n"
        assert (read(h, "/root/after") is None) == failed, h.name
        # handlers notified before the failure run on the hosts that did not fail, only
        assert (read(h, "/root/handled") is None) == failed, h.name
        if not failed:
            assert run.recap(h.name)["failed"] == 0


def test_force_handlers_runs_notified_handlers_on_the_failed_host(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(5)
    pb = write_playbook(tmp_path / "pb.yml", failing_play(["host02"], play={"force_handlers": True}))
    run = provision.apply(pb, fleet.inventory_path)
    assert run.rc == 1, run.out
    for h in fleet.hosts:
        assert read(h, "/root/handled") == "handled\n", h.name
        assert (read(h, "/root/after") is None) == (h.name == "host02")


def test_ignore_errors_goes_on(fleet_factory: FleetFactory, provision: Provision, tmp_path: Path) -> None:
    fleet = fleet_factory(5)
    pb = write_playbook(tmp_path / "pb.yml", failing_play(["host02"], step={"ignore_errors": True}))
    run = provision.apply(pb, fleet.inventory_path)
    assert run.rc == 0, run.out
    assert "failed (ignored): [host02]" in run.out
    assert run.recap("host02")["ignored"] == 1 and run.recap("host02")["failed"] == 0
    for h in fleet.hosts:
        assert read(h, "/root/after") == "after\n" and read(h, "/root/handled") == "handled\n"


def test_rescue_catches_the_failure(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(5)
    run = provision.apply(write_playbook(tmp_path / "pb.yml", failing_play(["host02"], rescue=True)),
                          fleet.inventory_path)
    assert run.rc == 0, run.out
    assert run.recap("host02")["rescued"] == 1 and run.recap("host02")["failed"] == 0
    for h in fleet.hosts:
        assert read(h, "/root/after") == "after\n"
        assert (read(h, "/root/rescued") == "rescued\n") == (h.name == "host02")


def test_any_errors_fatal_stops_the_play_for_all(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(5)
    pb = write_playbook(tmp_path / "pb.yml", failing_play(["host02"], play={"any_errors_fatal": True}))
    run = provision.apply(pb, fleet.inventory_path)
    assert run.rc == 1, run.out
    assert "any_errors_fatal" in run.out
    for h in fleet.hosts:
        assert read(h, "/root/before") == "before\n"
        assert read(h, "/root/after") is None, h.name


@pytest.mark.parametrize("failing,stops", [(["host02"], False), (["host02", "host04"], True)],
                         ids=["1of5-goes-on", "2of5-stops"])
def test_max_fail_percentage(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path, failing: list[str], stops: bool
) -> None:
    fleet = fleet_factory(5)
    pb = write_playbook(tmp_path / "pb.yml", failing_play(failing, play={"max_fail_percentage": 30}))
    run = provision.apply(pb, fleet.inventory_path)
    assert run.rc == 1, run.out
    assert ("max_fail_percentage 30% exceeded (2/5 hosts failed)" in run.out) == stops, run.out
    for h in fleet.hosts:
        went_on = not stops and h.name not in failing
        assert (read(h, "/root/after") == "after\n") == went_on, h.name


# --------------------------------------------------------------------------- 5. interrupts

BIG_SIZE = 8 * 1024 * 1024


def interrupt_play(big: Path) -> list[dict[str, Any]]:
    return [{
        "name": "big files, then a long command", "hosts": "all",
        "tasks": [
            {"name": "big files", "copy": {"src": str(big), "dest": "/root/big/{{ item }}.bin"},
             "loop": [1, 2, 3, 4, 5, 6]},
            {"name": "long command", "command": "sleep 30"},
        ],
    }]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_fast_and_leaves_nothing_behind(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path, sig: signal.Signals
) -> None:
    fleet = fleet_factory(3)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BIG_SIZE))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    for h in fleet.hosts:
        h.path("/root/big").mkdir()
    pb = write_playbook(tmp_path / "pb.yml", interrupt_play(big))
    log = tmp_path / "out.txt"
    with open(log, "wb") as sink:
        argv = provision.argv(pb, fleet.inventory_path, report=tmp_path / "r.json")
        # SIGINT at its default in provision, whatever the suite inherited: a shell that starts the
        # suite in the background (`cmd &` without job control) makes SIGINT ignored, and an
        # ignored signal stays ignored through exec, so Python would never see it
        proc = subprocess.Popen(argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        t0 = time.monotonic()
        if sig == signal.SIGINT:
            # in the long command on every host: the hosts must kill it
            when = "sleep 30 running on all hosts"
            assert wait_for(lambda: all(fleet.host_exec(h, ["pgrep", "-f", "sleep 30"]).returncode == 0
                                        for h in fleet.hosts), timeout=120), log.read_text()
        else:
            # two seconds into copying the big files: a write must not be left half done
            when = "copying big files"
            assert wait_for(lambda: "TASK [big files]" in log.read_text(), timeout=60), log.read_text()
            t0 = time.monotonic()
        time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
        t_sig = time.monotonic()
        proc.send_signal(sig)
        during = log.read_text()
        rc = proc.wait(timeout=30)
        stop_s = time.monotonic() - t_sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text()
    print(f"\n{sig.name} at {t_sig - t0:.1f}s ({when}): exit {rc} after {stop_s:.2f}s")
    assert stop_s < 10, out
    if sig == signal.SIGTERM:
        assert "TASK [long command]" not in during, "the signal came after the copies: make them bigger"
    assert rc == 130, out
    assert "Interrupted" in out and "PLAY RECAP" in out
    assert all(f"{h.name} " in out.split("PLAY RECAP", 1)[1] for h in fleet.hosts), out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["interrupted"] is True
    # here: nothing the run started is left
    assert session_members(proc.pid) == []
    # there: no command, no agent, no temp file; every big file whole or absent
    for h in fleet.hosts:
        assert wait_for(partial(no_processes, fleet, h), timeout=5), (h.name, host_processes(fleet, h))
        names = sorted(p.name for p in h.path("/root/big").iterdir())
        assert not [n for n in names if n.startswith(".provision")], (h.name, names)
        for n in names:
            assert hashlib.sha256(h.path(f"/root/big/{n}").read_bytes()).hexdigest() == digest, (h.name, n)
        print(f"  {h.name}: {len(names)} of 6 big files complete, none partial")
    fleet.close()
    assert fleet.leftover_processes() == []


# --------------------------------------------------------------------------- 6. host keys

def inventory_without_known_hosts(fleet: Fleet, path: Path) -> Path:
    """The fleet's inventory minus its known_hosts file: only --known-hosts (and ~/.ssh) count."""
    inv = yaml.safe_load(fleet.inventory_path.read_text())
    inv["all"]["vars"].pop("ansible_ssh_known_hosts_file")
    inv["all"]["vars"].pop("ansible_ssh_common_args")
    path.write_text(yaml.safe_dump(inv))
    return path


PING_PLAY = [{"name": "reach", "hosts": "all", "gather_facts": False, "tasks": [{"ping": None}]}]


def test_unknown_host_key_is_refused_unless_accepted_then_recorded(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(2)
    inv = inventory_without_known_hosts(fleet, tmp_path / "inv.yml")
    pb = write_playbook(tmp_path / "pb.yml", PING_PLAY)
    known = tmp_path / "known_hosts"
    known.write_text("")

    refused = provision.apply(pb, inv, "--known-hosts", str(known))
    print(f"\nunknown keys: rc={refused.rc}")
    assert refused.rc == 1, refused.out
    for h in fleet.hosts:
        assert refused.recap(h.name)["unreachable"] == 1
        assert f"host key of [127.0.0.1]:{h.port} is unknown" in refused.out
    assert "refused" in refused.out and "--accept-new-host-keys" in refused.out
    assert known.read_text() == ""

    accepted = provision.apply(pb, inv, "--known-hosts", str(known), "--accept-new-host-keys")
    print(f"--accept-new-host-keys: rc={accepted.rc}")
    assert accepted.rc == 0, accepted.out
    recorded = sorted(known.read_text().splitlines())
    assert recorded == sorted(f"[127.0.0.1]:{h.port} {h.host_key_pub}" for h in fleet.hosts)

    again = provision.apply(pb, inv, "--known-hosts", str(known))
    assert again.rc == 0, again.out
    assert sorted(known.read_text().splitlines()) == recorded


@pytest.mark.parametrize("accept", [False, True], ids=["strict", "accept-new"])
def test_changed_host_key_is_always_refused(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path, accept: bool
) -> None:
    fleet = fleet_factory(2)
    a, b = fleet.hosts
    inv = inventory_without_known_hosts(fleet, tmp_path / "inv.yml")
    # a man in the middle on host01's port would show another key: host02's, say
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[127.0.0.1]:{a.port} {b.host_key_pub}\n[127.0.0.1]:{b.port} {b.host_key_pub}\n")
    before = forged.read_text()
    run = provision.apply(write_playbook(tmp_path / "pb.yml", MARKER_PLAY), inv, "--known-hosts", str(forged),
                          *(["--accept-new-host-keys"] if accept else []))
    print(f"\nchanged key ({'with' if accept else 'without'} --accept-new-host-keys): rc={run.rc}")
    assert run.rc == 1, run.out
    assert f"HOST KEY CHANGED for [127.0.0.1]:{a.port}" in run.out and "man-in-the-middle" in run.out
    assert run.recap("host01")["unreachable"] == 1 and run.recap("host02")["changed"] == 1
    assert read(a, "/root/marker") is None and read(b, "/root/marker") == "host02\n"
    assert forged.read_text() == before


# --------------------------------------------------------------------------- 7. secrets

SECRET = "s3cr3t-Token-7f1d"

SECRET_PLAY = [{
    "name": "secrets", "hosts": "all", "become": True, "vars": {"api_token": SECRET},
    "tasks": [
        {"name": "root-owned file made through sudo", "copy": {"content": "made by become\n",
                                                             "dest": "/root/become.txt", "mode": "0600"}},
        {"name": "who am I", "command": "id -un", "register": "who"},
        {"name": "as root", "assert": {"that": ["who.stdout == 'root'"]}},
        {"name": "use the token", "command": "echo token={{ api_token }}", "register": "used",
         "no_log": True},
        {"name": "token in a file", "no_log": True,
         "copy": {"content": "{{ api_token }}\n", "dest": "/root/token", "mode": "0600"}},
        {"name": "a failing command with the token", "command": "ls /nonexistent/{{ api_token }}",
         "no_log": True, "ignore_errors": True},
        {"name": "token in a loop", "debug": {"msg": "{{ item }}"}, "loop": ["{{ api_token }}"],
         "no_log": True},
        {"name": "the registered result is hidden too", "debug": {"var": "used"}, "no_log": True},
    ],
}]


def test_no_log_and_become_password_never_show(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(2)
    password = fleet.admin_password
    fleet.reset_log()
    run = provision.apply(write_playbook(tmp_path / "pb.yml", SECRET_PLAY), fleet.admin_inventory_path, "-vv")
    assert run.rc == 0, run.out
    assert run.report is not None
    report_text = json.dumps(run.report)
    for h in fleet.hosts:
        assert run.recap(h.name)["ignored"] == 1 and run.recap(h.name)["failed"] == 0
        # become worked: root made the file, over a login as admin
        st = h.path("/root/become.txt").stat()
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
        assert read(h, "/root/token") == SECRET + "\n"
        assert "Accepted publickey for admin" in fleet.log_text(h, since_reset=True)
    assert "censored" in run.out
    for secret in (SECRET, password):
        assert secret not in run.out
        assert secret not in report_text
        for h in fleet.hosts:
            assert secret not in fleet.log_text(h), h.name
            # nothing on the host keeps it either, but the file the playbook wrote it to
            holders = [str(p) for p in h.upper.rglob("*") if p.is_file() and not p.is_symlink()
                       and secret.encode() in p.read_bytes()]
            assert holders == ([str(h.upper / "root/token")] if secret == SECRET else []), holders


# --------------------------------------------------------------------------- 8. injection

EVIL = "; touch /tmp/pwned; $(touch /tmp/pwned) `touch /tmp/pwned` && id"

INJECTION_PLAY = [{
    "name": "values that look like shell", "hosts": "all",
    "vars": {"evil": EVIL, "subst": "$(id)", "evil_pkg": "tree; touch /tmp/pwned",
             "subst_pkg": "$(touch /tmp/pwned)"},
    "tasks": [
        {"name": "command with an evil argument", "command": "echo {{ evil }}", "register": "echoed"},
        {"name": "command argv", "command": {"argv": ["printf", "%s", "{{ evil }}"]}, "register": "printed"},
        {"name": "literal", "assert": {"that": ["echoed.stdout == evil", "printed.stdout == evil"]}},
        {"name": "directory", "file": {"path": "/root/inj", "state": "directory"}},
        {"name": "evil file name", "file": {"path": "/root/inj/{{ subst }}", "state": "touch"}},
        {"name": "evil content and name", "copy": {"content": "{{ evil }}\n",
                                                  "dest": "/root/inj/{{ evil | replace('/', '_') }}"}},
        {"name": "evil in a template", "template": {"src": "injection.j2", "dest": "/root/inj/template.txt"}},
        {"name": "evil package name", "apt": {"name": "{{ evil_pkg }}"}, "register": "pkg1",
         "ignore_errors": True},
        {"name": "substitution as a package name", "apt": {"name": "{{ subst_pkg }}"}, "register": "pkg2",
         "ignore_errors": True},
        {"name": "both refused", "assert": {"that": ["pkg1 is failed", "pkg2 is failed"]}},
        {"name": "shell runs what the playbook wrote, and a quoted value stays a value",
         "shell": "echo {{ evil | quote }} > /root/inj/shell.txt && echo ran >> /root/inj/shell.txt"},
    ],
}]


def test_injected_values_stay_literal(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "injection.j2").write_text("value: {{ evil }}\nsubst: {{ subst }}\n")
    run = provision.apply(write_playbook(tmp_path / "pb.yml", INJECTION_PLAY), fleet.inventory_path)
    assert run.rc == 0, run.out
    assert run.recap(h.name)["ignored"] == 2, run.out
    assert run.report is not None
    msgs = {r["task"]: r["msg"] for r in run.report["results"]}
    print("\napt refused:", msgs["evil package name"], "|", msgs["substitution as a package name"])
    assert read(h, "/tmp/pwned") is None and not Path("/tmp/pwned").exists()
    assert h.path("/root/inj/$(id)").is_file()
    assert read(h, "/root/inj/" + EVIL.replace("/", "_")) == EVIL + "\n"
    assert read(h, "/root/inj/template.txt") == f"value: {EVIL}\nsubst: $(id)\n"
    assert read(h, "/root/inj/shell.txt") == EVIL + "\nran\n"
    assert not fleet.testinfra(h).package("tree").is_installed


# --------------------------------------------------------------------------- 10. load

NOOP_PLAY = [{
    "name": "no-op on many hosts", "hosts": "all",
    "tasks": [
        {"name": "reach", "ping": None},
        {"name": "a directory that is there", "file": {"path": "/etc", "state": "directory"}},
        {"name": "a line that is there",
         "lineinfile": {"path": "/etc/hosts", "line": "127.0.0.1\tlocalhost"}},
        {"name": "a command that changes nothing", "command": "true", "changed_when": False},
    ],
}]


@pytest.mark.slow
def test_fifty_hosts_at_once_finish_a_noop_run(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(50)
    report = tmp_path / "report.json"
    argv = provision.argv(write_playbook(tmp_path / "pb.yml", NOOP_PLAY), fleet.inventory_path, "-q",
                          report=report)
    timing = tmp_path / "time.txt"
    fleet.reset_log()
    # the whole state of 50 hosts is a lot to walk on a shared machine: the first, middle and last
    watched = [fleet.hosts[0], fleet.hosts[24], fleet.hosts[49]]
    before = {h.name: host_state(fleet, h) for h in watched}
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *argv], cwd=REPO, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout
    wall, peak_kib = timing.read_text().split()[-2:]
    recap = json.loads(report.read_text())["recap"]
    assert len(recap) == 50 and all(r["changed"] == 0 and r["ok"] == 5 for r in recap.values()), recap
    for h in watched:
        assert_unchanged(before[h.name], host_state(fleet, h), h.name)
    sessions = max(fleet.count_exec_sessions(h) for h in fleet.hosts)
    print(f"\n50 hosts, no-op run of 4 tasks: {float(wall):.1f}s wall, controller peak RSS "
          f"{int(peak_kib) / 1024:.0f} MiB, at most {sessions} exec session(s) per host")
    assert sessions <= 2


HOST_DATA_PLAY = [{
    "name": "what a host sends back is data", "hosts": "all",
    "tasks": [
        {"name": "read a file the host controls", "command": "cat /root/evil.txt", "register": "evil_out"},
        {"name": "show it", "debug": {"msg": "{{ evil_out.stdout }}"}},
        {"name": "keep it", "set_fact": {"relayed": "relayed {{ evil_out.stdout }}"}},
        {"name": "show the kept value", "debug": {"msg": "{{ relayed }}"}},
        {"name": "loop over it", "debug": {"msg": "{{ item }}"},
         "loop": "{{ evil_out.stdout_lines | map('trim') | list }}"},
        {"name": "write it", "copy": {"content": "{{ relayed }}\n", "dest": "/root/relayed.txt"}},
        {"name": "template it", "template": {"src": "host_data.j2", "dest": "/root/host-data.txt"}},
    ],
}]


def test_host_output_is_never_templated_on_the_controller(
    fleet_factory: FleetFactory, provision: Provision, tmp_path: Path
) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    canary = tmp_path / "pwned-controller"
    jinja = "{{ lookup('pipe', 'touch %s') }}" % canary
    # a compromised host answers with Jinja when it is asked to read a file
    h.path("/root/evil.txt").write_text(jinja + "\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "host_data.j2").write_text(
        "{{ evil_out.stdout }}|{{ relayed }}\n")
    run = provision.apply(write_playbook(tmp_path / "pb.yml", HOST_DATA_PLAY), fleet.inventory_path)
    assert run.rc == 0, run.out
    assert not canary.exists(), "a host's output ran a command on the controller"
    assert read(h, "/root/relayed.txt") == f"relayed {jinja}\n"
    templated = read(h, "/root/host-data.txt")
    print(f"\nhost data, templated once: {templated!r}")
    assert templated == f"{jinja}|relayed {jinja}\n"
    assert run.out.count(f"=> {jinja}") == 1 and f"=> relayed {jinja}" in run.out
