"""Ansible Vault on the real test fleet: the admin's sudo password lives in a vaulted
group_vars file, an API token in a vaulted vars file (vault id `lab`) goes through a
template. The play converges; neither secret shows in stdout at -vv, in the --report, in
the hosts' sshd logs, nor anywhere in the hosts' files but the one the play writes the
token to. A wrong vault password stops the run before any host is contacted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner import vault
from tests.fleet.fleet import Fleet

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
TOKEN = "lab-api-Token-93c1e7"
SUDO_PASSWORD = "Vaulted-Sudo-Pass-42"

PLAY = """\
- name: vaulted lab
  hosts: all
  become: true
  vars_files: [secrets/token.yml]
  tasks:
    - name: who am I
      command: id -un
      register: who
      changed_when: false
    - name: as root, through sudo with the vaulted password
      assert: {that: ["who.stdout == 'root'"]}
    - name: the service config carries the token (the play's intent)
      template: {src: lab.conf.j2, dest: /etc/lab.conf, mode: "0600"}
    - name: a readable config without it
      copy: {content: "endpoint=https://lab.example\\n", dest: /etc/lab-endpoint.conf}
    - name: look at the token
      debug: var=api_token
    - name: use the token in a command
      command: echo "auth {{ api_token }}"
      register: used
      changed_when: false
    - name: show what the command said
      debug: msg="{{ used.stdout }}"
    - name: a failure that quotes the token
      command: ls /nonexistent/{{ api_token }}
      ignore_errors: true
      changed_when: false
"""


def provision(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", *args], cwd=REPO, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    return proc.returncode, proc.stdout


def lab(fleet: Fleet, root: Path) -> dict[str, Path]:
    """The lab directory an admin would keep: inventory without the sudo password, a vaulted
    group_vars/all.yml holding it, a vaulted token (vault id `lab`), a template, password files."""
    inventory = yaml.safe_load(fleet.write_inventory(root / "inv.yml", user="admin").read_text())
    del inventory["all"]["vars"]["ansible_become_password"]
    (root / "inventory").mkdir()
    (root / "inventory/hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (root / "inventory/group_vars").mkdir()
    (root / "inventory/group_vars/all.yml").write_text(
        vault.encrypt(f"ansible_become_password: {SUDO_PASSWORD}\n".encode(), b"default vault pass"))
    (root / "secrets").mkdir()
    (root / "secrets/token.yml").write_text(vault.encrypt(f"api_token: {TOKEN}\n".encode(), b"lab pass", "lab"))
    (root / "templates").mkdir()
    (root / "templates/lab.conf.j2").write_text("[api]\ntoken = {{ api_token }}\n")
    (root / "site.yml").write_text(PLAY)
    default_pass = root / "default-pass.sh"  # a script, as a password manager would be
    default_pass.write_text("#!/bin/sh\necho 'default vault pass'\n")
    default_pass.chmod(0o700)
    lab_pass = root / "lab-pass.txt"
    lab_pass.write_text("lab pass\n")
    return {"site": root / "site.yml", "inventory": root / "inventory", "default": default_pass, "lab": lab_pass}


def host_files_holding(fleet: Fleet, secret: str) -> list[str]:
    out: list[str] = []
    for h in fleet.hosts:
        for p in h.upper.rglob("*"):
            if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes():
                out.append(f"{h.name}:/{p.relative_to(h.upper)}")
    return sorted(out)


def test_vaulted_become_password_and_token_converge_and_never_leak(fleet_factory: Any, tmp_path: Path) -> None:
    fleet = fleet_factory(2, admin_password=SUDO_PASSWORD)
    paths = lab(fleet, tmp_path)
    fleet.reset_log()
    report = tmp_path / "report.json"
    rc, out = provision("apply", str(paths["site"]), "-i", str(paths["inventory"]), "-vv", "--diff",
                        "--vault-password-file", str(paths["default"]), "--vault-id", f"lab@{paths['lab']}",
                        "--report", str(report))
    assert rc == 0, out
    data = json.loads(report.read_text())
    for h in fleet.hosts:
        assert data["recap"][h.name]["failed"] == 0 and data["recap"][h.name]["ignored"] == 1
        assert data["recap"][h.name]["changed"] == 2
        conf = h.path("/etc/lab.conf")
        assert conf.read_text() == f"[api]\ntoken = {TOKEN}\n"
        assert (conf.stat().st_uid, conf.stat().st_mode & 0o777) == (0, 0o600)
        assert "Accepted publickey for admin" in fleet.log_text(h, since_reset=True)
    shown = {r["task"]: r for r in data["results"] if r["host"] == "host01"}
    assert "censored" in shown["look at the token"]["result"]
    assert "censored" in shown["show what the command said"]["result"]
    assert shown["a readable config without it"]["result"]["dest"] == "/etc/lab-endpoint.conf"
    assert "censored" in out

    # converged: a second run changes nothing
    rc, again = provision("apply", str(paths["site"]), "-i", str(paths["inventory"]),
                          "--vault-password-file", str(paths["default"]), "--vault-id", f"lab@{paths['lab']}")
    assert rc == 0 and "nothing changed" in again, again

    for secret in (TOKEN, SUDO_PASSWORD):
        assert secret not in out and secret not in again
        assert secret not in report.read_text()
        for h in fleet.hosts:
            assert secret not in fleet.log_text(h), h.name
    assert host_files_holding(fleet, TOKEN) == ["host01:/etc/lab.conf", "host02:/etc/lab.conf"]
    assert host_files_holding(fleet, SUDO_PASSWORD) == []


def test_wrong_vault_password_stops_before_any_host(fleet_factory: Any, tmp_path: Path) -> None:
    fleet = fleet_factory(1, admin_password=SUDO_PASSWORD)
    paths = lab(fleet, tmp_path)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the password\n")
    fleet.reset_log()
    rc, out = provision("apply", str(paths["site"]), "-i", str(paths["inventory"]),
                        "--vault-password-file", str(wrong), "--vault-id", f"lab@{paths['lab']}")
    assert rc == 2
    [line] = out.splitlines()
    assert line.startswith("error: ") and "group_vars/all.yml:1:1: no vault password given decrypts this" in line
    assert fleet.session_counts(fleet.hosts[0])["connections"] == 0
    assert not fleet.hosts[0].path("/etc/lab.conf").exists()
