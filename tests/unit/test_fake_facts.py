"""Fake facts only where they are a feature: what-if plans (`provision plan`, `apply --check`) of a host
this machine cannot be. The fakes are tests/data/facts/*.json: another OS family (Rocky 9, RHEL) and
GPUs that cannot run here. A real apply with fake facts is refused in one line, exit 2, before any host
is touched, so an inventory typo cannot make a real host install another OS's packages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
FACTS = REPO / "tests" / "data" / "facts"
ROCKY = FACTS / "rocky9-l40s.json"       # FAKE: a RedHat-family host, which this Debian machine is not
UBUNTU = FACTS / "ubuntu2404-h100.json"  # FAKE: an H100 host


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


def project(tmp_path: Path, hosts: dict[str, dict[str, Any]], play_vars: dict[str, Any] | None = None,
            ) -> tuple[Path, Path]:
    """An inventory of local hosts and a playbook that reports the OS it sees, then writes a file per host."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local"}, "hosts": hosts}}))
    playbook = tmp_path / "site.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "what-if", "hosts": "all", "vars": play_vars or {},
        "tasks": [
            {"name": "os", "debug": {"msg": "{{ ansible_facts.os_family }} {{ ansible_facts.distribution }}"}},
            {"name": "touch the host", "copy": {"content": "x\n", "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}"}},
        ]}]))
    return inventory, playbook


def messages(report: Path, task: str) -> dict[str, str]:
    data = json.loads(report.read_text())
    return {r["host"]: r["msg"] for r in data["results"] if r["task"] == task}


def test_a_real_apply_with_fake_facts_in_the_inventory_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"real": {}, "typo": {"provision_fake_facts": str(ROCKY)}})
    out = provision("apply", str(playbook), "-i", str(inventory))
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "error: provision_fake_facts is set for typo: fake facts are for `provision plan` and `provision apply "
        "--check` only; a real apply acts on each host's own facts (remove the variable, or add --check)"]
    assert out.stdout == ""
    assert not (tmp_path / "real").exists() and not (tmp_path / "typo").exists()


def test_facts_from_and_extra_vars_are_refused_in_a_real_apply(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"real": {}})
    out = provision("apply", str(playbook), "-i", str(inventory), "--facts-from", str(ROCKY))
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (f"error: --facts-from {ROCKY}: fake facts are for `provision plan` and `provision apply "
                          "--check` only; a real apply acts on each host's own facts\n")
    out = provision("apply", str(playbook), "-i", str(inventory), "-e", f"provision_fake_facts={ROCKY}")
    assert out.returncode == 2 and out.stderr.startswith("error: -e provision_fake_facts: fake facts are for")
    assert not (tmp_path / "real").exists()


def test_a_limit_that_leaves_out_the_faked_host_applies_for_real(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"real": {}, "whatif": {"provision_fake_facts": str(ROCKY)}})
    out = provision("apply", str(playbook), "-i", str(inventory), "--limit", "real")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "real").read_text() == "x\n" and not (tmp_path / "whatif").exists()


def test_fake_facts_set_by_play_vars_fail_that_host_before_any_task(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"real": {}}, play_vars={"provision_fake_facts": str(ROCKY)})
    report = tmp_path / "report.json"
    out = provision("apply", str(playbook), "-i", str(inventory), "--report", str(report))
    assert out.returncode == 1, out.stdout + out.stderr
    assert messages(report, "Gathering Facts") == {
        "real": "provision_fake_facts is set for host real: fake facts are for `provision plan` and "
                "`provision apply --check` only"}
    assert messages(report, "touch the host") == {} and not (tmp_path / "real").exists()


def test_check_mode_plans_with_the_variables_facts(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"rocky": {"provision_fake_facts": str(ROCKY)}, "here": {}})
    report = tmp_path / "report.json"
    out = provision("apply", str(playbook), "-i", str(inventory), "--check", "--report", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    os_seen = messages(report, "os")
    assert os_seen["rocky"] == "RedHat Rocky"
    assert os_seen["here"].startswith("Debian ")       # this machine's own facts
    assert not (tmp_path / "rocky").exists() and not (tmp_path / "here").exists()


def test_check_mode_takes_facts_from_a_file_for_every_host_or_per_host(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"a": {}, "b": {}})
    report = tmp_path / "report.json"
    out = provision("apply", str(playbook), "-i", str(inventory), "--check", "--facts-from", str(ROCKY),
                    "--report", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    assert messages(report, "os") == {"a": "RedHat Rocky", "b": "RedHat Rocky"}

    per_host = tmp_path / "facts.json"   # what `provision facts` prints: {host: facts}
    per_host.write_text(json.dumps({"a": json.loads(ROCKY.read_text()), "b": json.loads(UBUNTU.read_text())}))
    out = provision("apply", str(playbook), "-i", str(inventory), "--check", "--facts-from", str(per_host),
                    "--report", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    assert messages(report, "os") == {"a": "RedHat Rocky", "b": "Debian Ubuntu"}

    only_a = tmp_path / "only-a.json"
    only_a.write_text(json.dumps({"a": json.loads(ROCKY.read_text())}))
    out = provision("apply", str(playbook), "-i", str(inventory), "--check", "--facts-from", str(only_a),
                    "--report", str(report))
    assert out.returncode == 1
    assert messages(report, "Gathering Facts")["b"] == "--facts-from: no facts for host 'b' (the file has ['a'])"


def test_plan_takes_facts_from_a_file(tmp_path: Path) -> None:
    inventory, _ = project(tmp_path, {"l40s": {"nvidia_driver_branch": "570"}})
    out = provision("plan", "playbooks/lab.yml", "-i", str(inventory), "--facts-from", str(ROCKY))
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "os rhel9: Rocky 9.4" in text and "driver branch 570" in text


def test_provision_facts_shows_the_gathered_facts_not_the_fake(tmp_path: Path) -> None:
    inventory, _ = project(tmp_path, {"whatif": {"provision_fake_facts": str(ROCKY)}})
    out = provision("facts", "-i", str(inventory))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["whatif"]["os_family"] == "Debian"


def test_an_unreadable_facts_file_is_one_line(tmp_path: Path) -> None:
    inventory, playbook = project(tmp_path, {"a": {}})
    out = provision("apply", str(playbook), "-i", str(inventory), "--check", "--facts-from", str(tmp_path / "nope.json"))
    assert (out.returncode, out.stderr) == (2, f"error: {tmp_path / 'nope.json'}: cannot read facts: "
                                               "No such file or directory\n")
