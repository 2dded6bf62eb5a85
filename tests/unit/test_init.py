"""`provision init DIR`: a starter lab that checks and lists at once, built on the shipped roles,
and never overwrites a file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from provisioner.cli import main
from provisioner.load.inventory import load_inventory
from provisioner.load.playbook import Loader
from provisioner.shipped import shipped_roles

FILES = {"inventory.yml", "lab.yml", "group_vars/all.yml", "README.md"}
LAB_ROLES = ["build_essentials", "rust", "rust_project", "nvidia_driver", "cuda_toolkit", "cudnn",
             "nvidia_container_toolkit", "rocm", "gpu_verify"]


def files_under(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def init(directory: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["init", str(directory)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_init_writes_a_lab_that_checks_and_lists_the_shipped_roles(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "mylab"
    rc, out, _ = init(lab, capsys)
    assert rc == 0
    assert files_under(lab) == FILES
    assert f"provision apply {lab}/lab.yml -i {lab}/inventory.yml --check" in out
    assert main(["check", str(lab / "lab.yml"), "-i", str(lab / "inventory.yml")]) == 0
    assert main(["apply", str(lab / "lab.yml"), "-i", str(lab / "inventory.yml"), "--list-tasks"]) == 0
    listed = capsys.readouterr().out
    for role in LAB_ROLES:
        assert f"      {role} : " in listed
    # the lab directory has no roles/: every role comes from provision's own
    playbook = Loader(lab / "lab.yml").load()
    assert [r.name for r in playbook.plays[0].roles] == LAB_ROLES
    assert {r.path.parent for r in playbook.plays[0].roles} == {shipped_roles().resolve()}


def test_the_inventory_is_this_machine_and_its_commented_group_is_valid(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    init(tmp_path / "lab", capsys)
    path = tmp_path / "lab" / "inventory.yml"
    inventory = load_inventory(str(path))
    assert list(inventory.hosts) == ["localhost"]
    assert inventory.host_vars("localhost")["ansible_connection"] == "local"
    # uncommented as a user would, the remote group is a working inventory too
    lines = [line for line in path.read_text().splitlines() if not line.startswith("  # Machines reached")]
    (tmp_path / "remote.yml").write_text("\n".join(re.sub(r"^  # ", "  ", line) for line in lines))
    remote = load_inventory(str(tmp_path / "remote.yml"))
    assert set(remote.hosts) == {"localhost", "gpu01", "gpu02"}
    assert remote.group_members("workstations") == ["gpu01", "gpu02"]
    gpu02 = remote.host_vars("gpu02")
    assert gpu02["ansible_host"] == "10.0.1.12" and gpu02["ansible_user"] == "admin"
    assert gpu02["ansible_ssh_common_args"] == "-o ProxyJump=admin@bastion.example.org"
    assert gpu02["ansible_ssh_private_key_file"] == "~/.ssh/id_ed25519"


def test_group_vars_names_the_main_variables_with_the_roles_defaults(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    init(tmp_path / "lab", capsys)
    text = (tmp_path / "lab" / "group_vars" / "all.yml").read_text()
    assert yaml.safe_load(text) is None  # all commented: the roles' defaults apply
    commented = yaml.safe_load("\n".join(m.group(1) for m in re.finditer(r"(?m)^# ([a-z_]+: .*)$", text)))
    defaults: dict[str, object] = {}
    for role in LAB_ROLES:
        defaults.update(yaml.safe_load((shipped_roles() / role / "defaults" / "main.yml").read_text()) or {})
    assert {"gpu_stack", "cuda_version", "cudnn_version", "nvidia_driver_branch", "rocm_version",
            "rust_method"} <= set(commented)
    for name, value in commented.items():
        if name == "gpu_stack":  # the preflight's, not a role default
            assert value == "auto"
            continue
        assert name in defaults, name
        assert value == defaults[name], name


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    (lab / "group_vars").mkdir(parents=True)
    (lab / "group_vars" / "all.yml").write_text("cuda_version: '12.6'\n")
    rc, out, err = init(lab, capsys)
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"error: {lab}/group_vars/all.yml: already exists: provision init never "
                                "overwrites a file, nothing was written"]
    assert files_under(lab) == {"group_vars/all.yml"}
    assert (lab / "group_vars" / "all.yml").read_text() == "cuda_version: '12.6'\n"


def test_init_into_an_empty_existing_directory_works_and_a_second_init_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, capsys)[0] == 0
    before = {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    rc, _, err = init(tmp_path, capsys)
    assert rc == 2 and "already exists (and 3 more)" in err
    assert {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_init_onto_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lab").write_text("")
    rc, _, err = init(tmp_path / "lab", capsys)
    assert rc == 2
    assert err.strip() == f"error: {tmp_path}/lab: exists and is not a directory: provision init writes a lab " \
                          "into a directory"
