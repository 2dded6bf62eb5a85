"""`--persist SECONDS`: a per-user daemon keeps each host's connection and agent between runs
(connection/persist.py), as Ansible's ControlPersist keeps ssh's. Real hosts, real sshd: what is
asserted is what the host's sshd logged (a kept agent costs no new connection, no exec) and what
the host holds, with the faults a lab meets: an agent that died on its host, a run killed
mid-task, a daemon killed, a host gone, the time running out.

Each test has its own daemon: XDG_RUNTIME_DIR points into the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.connection import persist
from tests.fleet.fleet import Fleet, _wait_gone
from tests.fleet.test_behaviour import wait_for

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]

PLAY = [{
    "name": "persist", "hosts": "all", "gather_facts": True,
    "tasks": [
        {"name": "a file", "copy": {"content": "{{ inventory_hostname }}\n", "dest": "/tmp/persist-file"}},
        {"name": "who", "command": "hostname", "register": "who", "changed_when": False},
        {"name": "a nap", "command": "sleep {{ nap | default(0) }}", "when": "nap is defined", "changed_when": False},
    ],
}]


@pytest.fixture(autouse=True)
def own_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """XDG_RUNTIME_DIR in this process's environment: control() here and every run started here."""
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run_dir))
    yield
    info = persist.control("stop")
    if info is not None:
        gone(info["pid"])


def gone(pid: int, timeout: float = 10) -> bool:
    """The daemon (our grandchild, started detached by provision: init reaps it) has exited."""
    return not _wait_gone([pid], timeout)


def playbook(tmp_path: Path, play: list[dict] = PLAY, name: str = "persist.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return path


def apply_argv(tmp_path: Path, inventory: Path, *args: str, persist_s: str = "30",
               book: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "provisioner.cli", "apply", str(book or playbook(tmp_path)), "-i", str(inventory),
            "--persist", persist_s, *args]


def apply(tmp_path: Path, inventory: Path, *args: str, persist_s: str = "30",
          book: Path | None = None) -> tuple[int, str, dict]:
    report = tmp_path / "report.json"
    proc = subprocess.run(apply_argv(tmp_path, inventory, "--report", str(report), *args, persist_s=persist_s,
                                     book=book),
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300, check=False)
    return proc.returncode, proc.stdout, json.loads(report.read_text()) if report.exists() else {}


def start_napping(fleet: Fleet, h, tmp_path: Path, inventory: Path, nap: int, **popen: Any) -> subprocess.Popen:
    """A run started in the background, returned once its `sleep NAP` task runs on the host."""
    proc = subprocess.Popen(apply_argv(tmp_path, inventory, "-e", f"nap={nap}"), cwd=REPO, **popen)
    assert wait_for(lambda: f"sleep {nap}\n".encode() in fleet.host_exec(h, ["ps", "-eo", "args="]).stdout, 60), \
        "the run never reached its nap"
    return proc


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, check=False)


def agents_on(fleet: Fleet, h) -> list[str]:
    """The provision agents running on a host, read without SSH (nsenter)."""
    out = fleet.host_exec(h, ["ps", "-eo", "pid=,args="]).stdout.decode()
    return [line for line in out.splitlines() if "provision-boot" in line and "ps -eo" not in line]


def test_the_next_run_uses_the_kept_agents_no_new_connection(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(2)
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    rc, out, report = apply(tmp_path, inventory)
    assert rc == 0, out
    assert "changed=1" in out
    info = persist.control("info")
    assert info is not None and info["kept"] == 2 and info["attached"] == 0
    for h in fleet.hosts:
        assert len(agents_on(fleet, h)) == 1
    fleet.reset_log()
    for _ in range(2):
        rc, out, report = apply(tmp_path, inventory)
        assert rc == 0, out
        assert "changed=0" in out and "changed=1" not in out
        assert {r["host"]: r["result"]["stdout"] for r in report["results"] if r["task"] == "who"} == \
            {h.name: fleet.host_exec(h, ["hostname"]).stdout.decode().strip() for h in fleet.hosts}
    for h in fleet.hosts:
        counts = fleet.session_counts(h)
        assert counts["connections"] == 0 and counts["accepted"] == 0 and counts["exec"] == 0, counts
        assert len(agents_on(fleet, h)) == 1
    # without --persist the run connects itself, and leaves the kept agents be
    rc, out, _ = apply(tmp_path, inventory, persist_s="0")
    assert rc == 0, out
    assert all(fleet.session_counts(h)["accepted"] == 1 for h in fleet.hosts)
    # what an admin sees of it, and how they end it (as `ssh -O exit`)
    info = persist.control("info")
    assert info is not None
    status = cli("persist")
    assert status.returncode == 0 and status.stdout == f"persist daemon pid {info['pid']}: 2 agent(s) kept, 0 in a run now\n"
    stop = cli("persist", "stop")
    assert stop.returncode == 0 and stop.stdout == f"stopped the persist daemon (pid {info['pid']}): 2 kept agent(s) closed\n"
    assert gone(info["pid"])
    assert not list((tmp_path / "xdg" / "provision").glob("*.sock"))
    assert cli("persist").returncode == 1
    assert wait_for(lambda: not any(agents_on(fleet, h) for h in fleet.hosts), 10), \
        "stop left agents running on the hosts"


def test_an_agent_that_died_on_its_host_is_replaced(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(2)
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    assert apply(tmp_path, inventory)[0] == 0
    h1, h2 = fleet.hosts
    [line] = agents_on(fleet, h1)
    fleet.host_exec(h1, ["kill", "-9", line.split()[0]])   # the agent we started, by its PID
    fleet.reset_log()
    rc, out, _ = apply(tmp_path, inventory)
    assert rc == 0, out
    assert fleet.session_counts(h1)["accepted"] == 1       # a new connection for the dead one
    assert fleet.session_counts(h2)["accepted"] == 0       # the other kept its agent


def test_a_run_killed_mid_task_does_not_leave_its_agent_to_the_next(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    assert apply(tmp_path, inventory)[0] == 0
    proc = start_napping(fleet, h, tmp_path, inventory, 60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.kill()   # the run dies while its agent runs a task
    proc.wait()
    # the daemon does not keep an agent in mid-request: it closes it, which ends the task's process
    assert wait_for(lambda: b"sleep 60" not in fleet.host_exec(h, ["ps", "-eo", "args="]).stdout, 10)
    fleet.reset_log()
    rc, out, _ = apply(tmp_path, inventory)
    assert rc == 0 and "changed=0" in out, out
    assert fleet.session_counts(h)["accepted"] == 1


def test_a_killed_daemon_is_replaced_and_the_run_goes_on(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    assert apply(tmp_path, inventory)[0] == 0
    info = persist.control("info")
    assert info is not None
    os.kill(info["pid"], signal.SIGKILL)   # started by our run: its PID, from the daemon itself
    assert gone(info["pid"])
    assert list((tmp_path / "xdg" / "provision").glob("*.sock"))   # left behind
    rc, out, _ = apply(tmp_path, inventory)
    assert rc == 0 and "changed=0" in out, out
    again = persist.control("info")
    assert again is not None and again["pid"] != info["pid"] and again["kept"] == 1


def test_a_host_that_is_gone_is_unreachable_as_without_persist(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(2)
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    h1, h2 = fleet.hosts
    fleet.stop(h2)
    rc, out, report = apply(tmp_path, inventory)
    rc0, _, report0 = apply(tmp_path, inventory, persist_s="0")
    assert rc == rc0 != 0
    msgs = [(r["status"], r["msg"]) for r in report["results"] if r["host"] == h2.name]
    msgs0 = [(r["status"], r["msg"]) for r in report0["results"] if r["host"] == h2.name]
    assert msgs == msgs0 == [("unreachable", f"cannot connect to root@{h2.address}:{h2.port}: connection refused")]
    assert f"{h1.name}" in out and "unreachable=1" in out


def test_the_daemon_and_the_agents_are_gone_when_the_time_runs_out(
        fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    assert apply(tmp_path, inventory, persist_s="1")[0] == 0
    info = persist.control("info")
    assert info is not None and info["kept"] == 1
    assert gone(info["pid"], timeout=15)
    assert persist.control("info") is None
    assert not list((tmp_path / "xdg" / "provision").glob("*.sock"))
    assert wait_for(lambda: agents_on(fleet, h) == [], 10)
    # the agent wrote its code cache as it ended, as after a run without persist
    assert list(h.path("/root/.cache/provision").glob("code-*"))


def test_become_through_a_kept_agent(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """admin logs in, becomes builder through sudo with a password; the next run reuses admin's
    agent and its sudo'd agent: the same users, nothing new on the host's sshd."""
    from tests.fleet.test_become_fleet import BECOME_PLAY, ids, owner
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    assert fleet.run(h, "useradd --create-home --shell /bin/sh builder")[0] == 0
    inventory = fleet.write_inventory(tmp_path / "inventory.yml", user="admin")
    book = playbook(tmp_path, BECOME_PLAY, "become.yml")
    runs = []
    for _ in range(2):
        fleet.reset_log()
        rc, out, report = apply(tmp_path, inventory, book=book)
        assert rc == 0, out
        results = {r["task"]: r["result"] for r in report["results"]}
        runs.append((results["who logs in"]["stdout"], results["who am I as builder"]["stdout"],
                     fleet.session_counts(h)["accepted"]))
    assert runs == [("admin", "builder", 1), ("admin", "builder", 0)]
    assert owner(h, "/home/builder/made") == ids(h, "builder")


def test_megabytes_both_ways_through_the_daemon(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    """An 8 MiB copy to the host and an 8 MiB slurp back: more than the SSH window (2 MiB) and the
    daemon's per-agent buffer (1 MiB) each way, so both of its pauses are taken; nothing is lost."""
    import base64
    import hashlib
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    book = playbook(tmp_path, [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "there", "copy": {"src": str(big), "dest": "/tmp/big.bin"}},
        {"name": "back", "slurp": {"src": "/tmp/big.bin"}, "register": "back"},
    ]}], "big.yml")
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    for _ in range(2):   # the second run through the kept agent
        rc, out, report = apply(tmp_path, inventory, book=book)
        assert rc == 0, out
        results = {r["task"]: r["result"] for r in report["results"]}
        assert hashlib.sha256(base64.b64decode(results["back"]["content"])).digest() == \
            hashlib.sha256(big.read_bytes()).digest()
    assert hashlib.sha256(h.path("/tmp/big.bin").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    info = persist.control("info")
    assert info is not None and info["kept"] == 1


def test_stop_lets_a_run_in_progress_finish(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    inventory = fleet.write_inventory(tmp_path / "inventory.yml")
    assert apply(tmp_path, inventory)[0] == 0
    proc = start_napping(fleet, h, tmp_path, inventory, 6, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    stop = cli("persist", "stop")
    assert stop.returncode == 0 and "0 kept agent(s) closed" in stop.stdout, stop.stdout
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out   # the run in progress was not cut
    info_pid = int(stop.stdout.split("pid ")[1].split(")")[0])
    assert gone(info_pid)        # and the daemon left after it, keeping nothing
    assert wait_for(lambda: agents_on(fleet, h) == [], 10)
