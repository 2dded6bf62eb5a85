"""Over a real sshd on 127.0.0.1: apply twice → changed=0, one exec session per run, host keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from provisioner.cli import main
from tests.sshd import LocalSshd


def twenty_task_playbook(tmp: Path) -> Path:
    tasks = []
    for i in range(5):
        tasks.append({"name": f"file {i}", "copy": {"content": f"line {i}\n", "dest": str(tmp / f"f{i}.txt"),
                                                  "mode": "0644"}})
        tasks.append({"name": f"dir {i}", "file": {"path": str(tmp / f"d{i}"), "state": "directory"}})
        tasks.append({"name": f"line {i}", "lineinfile": {"path": str(tmp / f"l{i}.conf"), "line": "extra",
                                                          "create": True}})
        tasks.append({"name": f"cmd {i}", "command": {"cmd": f"touch {tmp}/c{i}", "creates": str(tmp / f"c{i}")}})
    pb = tmp / "pb.yml"
    pb.write_text(json.dumps([{"hosts": "all", "gather_facts": True, "tasks": tasks}]))
    return pb


def run(args: list[str], capsys) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_apply_twice_over_ssh_second_run_changes_nothing(sshd: LocalSshd, tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    work.mkdir()
    pb = twenty_task_playbook(work)
    inv = sshd.inventory(tmp_path / "inv.yml")
    report = tmp_path / "r.json"
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(sshd.known_hosts), "--report",
                   str(report)], capsys)
    assert rc == 0, out
    first = json.loads(report.read_text())
    assert first["recap"]["s1"]["changed"] == 20
    assert (work / "f3.txt").read_text() == "line 3\n"
    assert (work / "l3.conf").read_text() == "extra\n"
    before = sshd.exec_sessions()
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(sshd.known_hosts), "--report",
                   str(report)], capsys)
    assert rc == 0, out
    second = json.loads(report.read_text())
    assert second["recap"]["s1"] == {"ok": 21, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0,
                                     "rescued": 0, "ignored": 0}
    assert "nothing changed" in out
    # facts and all twenty checks travelled over one exec session
    assert sshd.exec_sessions() - before == 1


def test_unknown_host_key_is_refused_then_accepted_when_asked(sshd: LocalSshd, tmp_path: Path, capsys) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - ping:\n")
    inv = sshd.inventory(tmp_path / "inv.yml")
    empty = tmp_path / "kh_empty"
    empty.write_text("")
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(empty)], capsys)
    assert rc == 1
    assert "is unknown" in out and "refused" in out and "--accept-new-host-keys" in out
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(empty), "--accept-new-host-keys"], capsys)
    assert rc == 0, out
    recorded = empty.read_text()
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in recorded
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(empty)], capsys)
    assert rc == 0, out


def test_changed_host_key_is_always_refused(sshd: LocalSshd, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    forged = tmp_path / "kh_forged"
    forged.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks:\n    - ping:\n")
    inv = sshd.inventory(tmp_path / "inv.yml")
    for extra in ([], ["--accept-new-host-keys"]):
        rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(forged), *extra], capsys)
        assert rc == 1
        assert "HOST KEY CHANGED" in out and "man-in-the-middle" in out
    assert forged.read_text().count("\n") == 1  # nothing was added or replaced


def test_injected_values_stay_literal(sshd: LocalSshd, tmp_path: Path, capsys) -> None:
    pwned = tmp_path / "pwned"
    evil = f"; touch {pwned}; $(touch {pwned}) `touch {pwned}`"
    pb = tmp_path / "pb.yml"
    pb.write_text(
        "- hosts: all\n  vars:\n    evil: " + json.dumps(evil) + "\n  tasks:\n"
        "    - command: echo {{ evil }}\n      register: out\n"
        f"    - copy:\n        content: \"{{{{ evil }}}}\"\n        dest: {tmp_path}/content.txt\n"
        f"    - file:\n        path: \"{tmp_path}/{{{{ evil | replace('/', '_') }}}}\"\n        state: touch\n"
        "    - assert:\n        that: out.stdout == evil\n")
    inv = sshd.inventory(tmp_path / "inv.yml")
    rc, out = run(["apply", str(pb), "-i", str(inv), "--known-hosts", str(sshd.known_hosts)], capsys)
    assert rc == 0, out
    assert not pwned.exists()
    assert (tmp_path / "content.txt").read_text() == evil
