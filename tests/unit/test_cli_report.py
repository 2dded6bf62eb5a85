"""What the command line promises a script or a person reading the run afterwards.

`--report FILE` holds the whole run as JSON (recap per host, every task result per host
with its status, name and duration); `provision facts` prints a host's facts as JSON;
`provision check` validates without touching a host.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from provisioner.cli import main
from tests.unit.test_executor_local import Project

COUNTERS = {"ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"}
RESULT_KEYS = {"host", "task", "action", "status", "msg", "ignored", "duration_s", "position", "result"}

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      copy: {content: "{{ inventory_hostname }}\\n", dest: "%D%/{{ inventory_hostname }}.txt"}
      notify: announce
    - name: only on h1
      debug: msg=h1
      when: inventory_hostname == 'h1'
    - name: h2 breaks
      command: "false"
      when: inventory_hostname == 'h2'
    - name: after
      debug: msg=after
  handlers:
    - name: announce
      debug: msg=announced
"""


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    p = Project(tmp_path, capsys)
    p.inventory(("h1", "h2"))
    return p


def test_report_holds_the_recap_and_every_task_result_per_host(project: Project) -> None:
    run = project.apply(PLAYBOOK, "--diff")
    report = run.report
    assert run.rc == 1
    assert {"tool", "version", "playbook", "inventory", "check_mode", "elapsed_s", "interrupted", "recap",
            "results"} <= set(report)
    assert report["tool"] == "provision" and report["check_mode"] is False and report["interrupted"] is False
    assert report["elapsed_s"] > 0
    assert set(report["recap"]) == {"h1", "h2"}
    for host, counters in report["recap"].items():
        assert set(counters) == COUNTERS
        statuses = Counter(r["status"] for r in report["results"] if r["host"] == host)
        assert counters["failed"] == statuses["failed"]
        assert counters["skipped"] == statuses["skipped"]
        assert counters["changed"] == statuses["changed"]
        assert counters["ok"] == statuses["ok"] + statuses["changed"]
    for r in report["results"]:
        assert set(r) >= RESULT_KEYS
        assert isinstance(r["duration_s"], float) and r["duration_s"] >= 0
    tasks = {(r["host"], r["task"]): r for r in report["results"]}
    expected = {
        ("h1", "write a file"): "changed", ("h1", "only on h1"): "ok", ("h1", "h2 breaks"): "skipped",
        ("h1", "after"): "ok", ("h1", "announce"): "ok",
        ("h2", "write a file"): "changed", ("h2", "only on h1"): "skipped", ("h2", "h2 breaks"): "failed",
    }
    for key, status in expected.items():
        assert tasks[key]["status"] == status, key
    assert ("h2", "after") not in tasks and ("h2", "announce") not in tasks, "a failed host stops"
    assert tasks[("h1", "announce")].get("handler") is True
    assert tasks[("h1", "write a file")]["position"].endswith("site.yml:4:7")
    assert tasks[("h1", "write a file")]["result"]["dest"].endswith("h1.txt")
    assert tasks[("h1", "write a file")]["diff"], "--diff puts the diff in the report"
    assert tasks[("h2", "h2 breaks")]["result"]["rc"] == 1


def test_report_in_check_mode_and_written_atomically(project: Project) -> None:
    run = project.apply(PLAYBOOK, "--check")
    assert run.report["check_mode"] is True
    assert not (project.root / "h1.txt").exists()
    leftovers = [p.name for p in project.root.iterdir() if p.name.startswith(".report.json")]
    assert leftovers == []


def test_quiet_prints_only_the_recap(project: Project) -> None:
    run = project.apply(PLAYBOOK, "-q")
    assert "TASK [" not in run.out
    assert "PLAY RECAP" in run.out
    assert "h2" in run.out and "failed=1" in run.out


def test_facts_of_this_machine_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert list(facts) == ["localhost"]
    local = facts["localhost"]
    documented = {"hostname", "os_id", "os_family", "distribution", "distribution_version", "architecture",
                  "kernel", "is_wsl", "processor_vcpus", "memtotal_mb", "pkg_mgr", "service_mgr", "python",
                  "gpus", "nvidia", "cuda", "cudnn", "rocm", "rust"}
    assert documented <= set(local), f"missing: {documented - set(local)}"
    assert local["processor_vcpus"] >= 1 and local["memtotal_mb"] > 0
    assert isinstance(local["gpus"], list)


def test_facts_of_named_hosts(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["facts", "h2", "-i", str(project.root / "inventory.yml")]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["h2"]


def test_check_exits_0_on_a_good_playbook_and_touches_nothing(project: Project,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write("site.yml", PLAYBOOK)
    assert main(["check", str(path), "-i", str(project.root / "inventory.yml")]) == 0
    out = capsys.readouterr().out
    assert "ok" in out
    assert not (project.root / "h1.txt").exists()


def test_a_missing_playbook_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(tmp_path / "nope.yml")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.yml'}: playbook not found"


def _statuses(report: dict[str, Any], host: str) -> list[str]:
    return [r["status"] for r in report["results"] if r["host"] == host]


def test_report_of_an_unreachable_host(project: Project) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    project.inventory({"h1": {"ansible_connection": "local"},
                       "down": {"ansible_host": "127.0.0.1", "ansible_port": port}})
    run = project.apply("- hosts: all\n  gather_facts: false\n  tasks: [{name: t, debug: msg=x}]\n", "-T", "3")
    assert run.rc == 1
    assert _statuses(run.report, "down") == ["unreachable"]
    assert run.recap("down")["unreachable"] == 1
    # gather_facts: false: no fact-gathering task; what could not be reached shows as "Connecting"
    assert run.result("Connecting", "down")["msg"]
    assert "TASK [Connecting]" in run.out and "Gathering Facts" not in run.out
    assert _statuses(run.report, "h1") == ["ok"]
