"""What a person sees on a terminal (issue 15): `provision apply` run on a pseudo-terminal against
real fleet hosts, its bytes replayed as a terminal shows them.

- 50 hosts: one line per task with counts, a progress bar while hosts finish, a line only for
  changed, failed and unreachable hosts, the recap in natural host order (node2 before node10)
  and coloured as Ansible's; NO_COLOR: the same view without colour; `--output lines`: a line
  per host, as when piped.
- A long install: apt's own progress (APT::Status-Fd, streamed from the agent, through the
  become agent) and the elapsed time on the running task's line.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.fleet.fleet import Fleet
from tests.terminal import SGR, frames, run_in_pty, screen

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
PROVISION = [sys.executable, "-m", "provisioner.cli", "apply"]

PLAYBOOK = """
- hosts: all
  tasks:
    - name: Lab marker
      copy: {dest: /etc/lab-marker, content: "managed\\n"}
    - name: Only on the broken one
      fail: {msg: "this host is broken"}
      when: inventory_hostname == broken
    - name: Tools present
      apt: {name: [coreutils, sudo]}
"""


def terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI_NO_TTY")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(REPO), **extra)
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def renamed_inventory(fleet: Fleet, path: Path, user: str = "root", unreachable: str | None = None) -> Path:
    """The fleet's hosts as node1..nodeN (so that natural order differs from text order)."""
    data = yaml.safe_load(fleet.write_inventory(user=user).read_text())
    hosts = data["all"]["hosts"]
    data["all"]["hosts"] = {f"node{i}": hv for i, hv in enumerate(hosts.values(), start=1)}
    if unreachable:
        data["all"]["hosts"][unreachable] = {**next(iter(hosts.values())), "ansible_port": closed_port()}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def task_lines(shown: list[str]) -> dict[str, str]:
    return {m.group(1): line for line in shown if (m := re.match(r"TASK \[(.+?)\] ok=", line))}


def test_fifty_hosts_on_a_terminal(fleet_factory: Callable[..., Fleet], tmp_path: Path) -> None:
    fleet = fleet_factory(50, name="live50")
    inventory = renamed_inventory(fleet, tmp_path / "inv.yml", unreachable="node51")
    playbook = tmp_path / "pb.yml"
    playbook.write_text(PLAYBOOK)

    # 1. first run, in colour: 50 changed, node7 fails, node51 is unreachable
    rc, raw = run_in_pty([*PROVISION, str(playbook), "-i", str(inventory), "-e", "broken=node7"],
                         terminal_env(), cwd=str(tmp_path))
    shown = screen(raw)
    assert rc == 1, raw[-3000:]
    tasks = task_lines(shown)
    assert list(tasks) == ["Gathering Facts", "Lab marker", "Only on the broken one", "Tools present"], shown
    assert re.match(r"TASK \[Gathering Facts\] ok=50 changed=0 failed=0 skipped=0 unreachable=1 \(51 hosts",
                    tasks["Gathering Facts"])
    assert tasks["Lab marker"].startswith("TASK [Lab marker] ok=0 changed=50 failed=0 skipped=0 unreachable=0")
    assert tasks["Only on the broken one"].startswith(
        "TASK [Only on the broken one] ok=0 changed=0 failed=1 skipped=49 unreachable=0")
    assert tasks["Tools present"].startswith("TASK [Tools present] ok=49 changed=0 failed=0 skipped=0")
    # per-host lines: the 50 changed, the failed one and the unreachable one; never ok or skipped
    host_lines = [line for line in shown if re.match(r"\w[\w ()]*: \[node\d+\]", line)]
    assert sorted(line for line in host_lines if line.startswith("changed: ")) == \
        sorted(f"changed: [node{i}]" for i in range(1, 51))
    assert "failed: [node7] => this host is broken" in host_lines
    assert any(line.startswith("unreachable: [node51] => ") for line in host_lines)
    assert len(host_lines) == 52, host_lines
    # the live line was redrawn with a progress bar and done/total while the hosts finished
    drawn = frames(raw)
    assert any(re.search(r"\[#+-+\] [1-9]\d?/50 \d+\.\ds$", f) for f in drawn), drawn[:20]
    assert any(re.search(r"\[-{20}\] 0/50 ", f) for f in drawn)
    # the recap: natural order, each count coloured as Ansible's default callback does
    recap = shown[shown.index("PLAY RECAP") + 1:]
    assert [line.split()[0] for line in recap[:51]] == [f"node{i}" for i in range(1, 52)]
    raw_recap = {SGR.sub("", line).split()[0]: line for line in raw.split("PLAY RECAP")[1].splitlines()
                 if "node" in line}
    assert raw_recap["node1"].startswith("\x1b[33mnode1 ")                    # changed: yellow
    assert "\x1b[32mok=3   \x1b[0m \x1b[33mchanged=1   \x1b[0m" in raw_recap["node1"]
    assert "\x1b[36mskipped=1   \x1b[0m" in raw_recap["node1"]                 # skipped: cyan
    assert raw_recap["node7"].startswith("\x1b[31mnode7 ") and "\x1b[31mfailed=1   \x1b[0m" in raw_recap["node7"]
    assert raw_recap["node51"].startswith("\x1b[31mnode51") and "\x1b[31munreachable=1   \x1b[0m" in raw_recap["node51"]

    # 2. the no-op, NO_COLOR: a line per task and the recap, no colour, still redrawn in place
    rc, raw = run_in_pty([*PROVISION, str(playbook), "-i", str(inventory), "-e", "broken=none", "-l", "all:!node51"],
                         terminal_env(NO_COLOR="1"), cwd=str(tmp_path))
    shown = screen(raw)
    assert rc == 0, raw[-3000:]
    assert not SGR.search(raw), "NO_COLOR: no colour codes at all"
    assert "\r" in raw.replace("\r\n", "") and "\x1b[K" in raw       # the live line, without colour
    print("\n--- the 50-host no-op, as the terminal shows it ---\n" + "\n".join(shown[:12]))
    before_recap = [line for line in shown[:shown.index("PLAY RECAP")] if line.strip()]
    assert before_recap[0] == "PLAY [all] (50 hosts)"
    assert [re.sub(r"\d+\.\ds\)$", "", line) for line in before_recap[1:]] == [
        "TASK [Gathering Facts] ok=50 changed=0 failed=0 skipped=0 unreachable=0 (50 hosts, ",
        "TASK [Lab marker] ok=50 changed=0 failed=0 skipped=0 unreachable=0 (50 hosts, ",
        "TASK [Only on the broken one] ok=0 changed=0 failed=0 skipped=50 unreachable=0 (50 hosts, ",
        "TASK [Tools present] ok=50 changed=0 failed=0 skipped=0 unreachable=0 (50 hosts, ",
    ]                                                                 # 5 lines instead of 205
    assert shown[-2].startswith("50 host(s), nothing changed, in ")

    # 3. --output lines on the same terminal: Ansible's per-host lines, nothing redrawn
    rc, raw = run_in_pty([*PROVISION, str(playbook), "-i", str(inventory), "-e", "broken=none", "-l", "all:!node51",
                          "--output", "lines"], terminal_env(NO_COLOR="1"), cwd=str(tmp_path))
    shown = screen(raw)
    assert rc == 0 and "\x1b[K" not in raw
    assert sum(1 for line in shown if re.fullmatch(r"ok: \[node\d+\]", line)) == 150
    assert sum(1 for line in shown if re.fullmatch(r"skipping: \[node\d+\]|skipped: \[node\d+\]", line)) == 50


def test_a_long_install_shows_apt_progress_and_elapsed_time(fleet_factory: Callable[..., Fleet],
                                                            tmp_path: Path) -> None:
    fleet = fleet_factory(3, name="liveapt")
    inventory = renamed_inventory(fleet, tmp_path / "inv.yml", user="admin")   # through sudo: the become agent
    playbook = tmp_path / "pb.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "all", "become": True, "tasks": [
        {"name": "NumPy", "apt": {"name": "python3-numpy", "install_recommends": False}}]}]))
    rc, raw = run_in_pty([*PROVISION, str(playbook), "-i", str(inventory)], terminal_env(), cwd=str(tmp_path))
    shown = screen(raw)
    assert rc == 0, raw[-3000:]
    drawn = [f for f in frames(raw) if f.startswith("TASK [NumPy]")]
    print("\n--- the install's line, redrawn ---\n" + "\n".join(drawn[:: max(1, len(drawn) // 12)]))
    progress = [m for f in drawn if (m := re.search(r"apt (download|install) (\d+)% (node[123])(?: \(\+[12]\))?$", f))]
    assert progress, drawn[-20:]
    phases = {m.group(1) for m in progress}
    assert "install" in phases                        # dpkg's progress (the .debs may be cached already)
    assert len({int(m.group(2)) for m in progress if m.group(1) == "install"}) >= 3   # it moved
    # the running task's line showed hosts done/total and a growing elapsed time
    elapsed = [float(m.group(1)) for f in drawn if (m := re.search(r"\] [0-2]/3 (\d+\.\d)s", f))]
    assert elapsed and max(elapsed) >= 1.0
    assert any(line.startswith("TASK [NumPy] ok=0 changed=3 ") for line in shown)
    assert sorted(line for line in shown if line.startswith("changed: ")) == [
        "changed: [node1]", "changed: [node2]", "changed: [node3]"]
    for h in fleet.hosts:
        rc, out, _ = fleet.run(h, "python3 -c 'import numpy; print(numpy.__name__)'")
        assert (rc, out.strip()) == (0, "numpy")


