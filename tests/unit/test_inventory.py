"""Ansible's YAML inventory read unchanged: groups, children, vars, var directories, patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import UserError
from provisioner.load.inventory import load_inventory

LAB = """\
all:
  vars:
    ansible_user: admin
    site: lab
  hosts:
    ctl:
      ansible_connection: local
  children:
    gpu:
      vars:
        site: gpu-room
        cuda_version: "12.4"
      children:
        h100:
          vars:
            cuda_version: "12.6"
          hosts:
            gpu01: {ansible_host: 10.0.0.11}
            gpu02: {ansible_host: 10.0.0.12, ansible_port: 2222}
        a100:
          hosts:
            gpu03:
    cpu:
      hosts:
        cpu01:
        cpu02:
          ansible_user: root
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    path = tmp_path / "lab.yml"
    path.write_text(LAB)
    return path


def test_hosts_groups_and_children(lab: Path) -> None:
    inv = load_inventory(str(lab))
    assert list(inv.hosts) == ["ctl", "gpu01", "gpu02", "gpu03", "cpu01", "cpu02"]
    assert inv.group_members("gpu") == ["gpu01", "gpu02", "gpu03"]
    assert inv.group_members("h100") == ["gpu01", "gpu02"]
    assert inv.group_names("gpu02") == ["gpu", "h100"]
    assert inv.group_members("ungrouped") == ["ctl"]
    assert inv.group_names("ctl") == []


def test_vars_from_all_then_parent_then_child_then_host(lab: Path) -> None:
    inv = load_inventory(str(lab))
    assert inv.host_vars("gpu01")["cuda_version"] == "12.6", "child group beats parent"
    assert inv.host_vars("gpu03")["cuda_version"] == "12.4"
    assert inv.host_vars("gpu03")["site"] == "gpu-room", "group beats all"
    assert inv.host_vars("cpu01")["site"] == "lab"
    assert inv.host_vars("cpu02")["ansible_user"] == "root", "host beats all"
    assert inv.host_vars("cpu01")["ansible_user"] == "admin"


def test_connection_address_and_port(lab: Path) -> None:
    inv = load_inventory(str(lab))
    assert inv.hosts["ctl"].connection == "local"
    assert inv.hosts["gpu02"].connection == "ssh"
    assert (inv.hosts["gpu02"].address, inv.hosts["gpu02"].port) == ("10.0.0.12", 2222)
    assert (inv.hosts["gpu03"].address, inv.hosts["gpu03"].port) == ("gpu03", 22)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("all", ["ctl", "gpu01", "gpu02", "gpu03", "cpu01", "cpu02"]),
    ("*", ["ctl", "gpu01", "gpu02", "gpu03", "cpu01", "cpu02"]),
    ("gpu", ["gpu01", "gpu02", "gpu03"]),
    ("gpu01", ["gpu01"]),
    ("gpu0*", ["gpu01", "gpu02", "gpu03"]),
    ("h100:a100", ["gpu01", "gpu02", "gpu03"]),
    ("cpu,ctl", ["ctl", "cpu01", "cpu02"]),
    ("gpu:!h100", ["gpu03"]),
    ("gpu:&h100", ["gpu01", "gpu02"]),
    ("all:!gpu:!cpu", ["ctl"]),
    ("~cpu0[12]", ["cpu01", "cpu02"]),
    (["h100", "cpu01"], ["gpu01", "gpu02", "cpu01"]),
    ("nothing*", []),
])
def test_host_patterns(lab: Path, pattern: str | list[str], expected: list[str]) -> None:
    assert load_inventory(str(lab)).select(pattern) == expected


def test_an_unknown_name_in_a_pattern_is_an_error(lab: Path) -> None:
    with pytest.raises(UserError, match="'gpu9' matches no host or group"):
        load_inventory(str(lab)).select("gpu:gpu9")


def test_group_vars_and_host_vars_directories(lab: Path) -> None:
    (lab.parent / "group_vars").mkdir()
    (lab.parent / "group_vars" / "h100.yml").write_text("cuda_version: '12.8'\n")
    (lab.parent / "group_vars" / "cpu").mkdir()
    (lab.parent / "group_vars" / "cpu" / "main.yml").write_text("role: compute\n")
    (lab.parent / "host_vars").mkdir()
    (lab.parent / "host_vars" / "gpu01.yml").write_text("ansible_port: 2201\n")
    inv = load_inventory(str(lab))
    assert inv.host_vars("gpu02")["cuda_version"] == "12.8"
    assert inv.host_vars("cpu02")["role"] == "compute"
    assert inv.hosts["gpu01"].port == 2201


def test_an_inventory_directory_merges_its_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("all:\n  hosts:\n    one:\n")
    (tmp_path / "b.yml").write_text("lab:\n  hosts:\n    two:\n    one: {x: 1}\n")
    inv = load_inventory(str(tmp_path))
    assert list(inv.hosts) == ["one", "two"]
    assert inv.group_members("lab") == ["two", "one"]
    assert inv.host_vars("one")["x"] == 1


def test_a_comma_list_and_no_inventory() -> None:
    inv = load_inventory("ws01,ws02:2222,")
    assert list(inv.hosts) == ["ws01", "ws02"]
    assert inv.hosts["ws02"].port == 2222
    assert inv.select("all") == ["ws01", "ws02"]
    local = load_inventory(None)
    assert list(local.hosts) == ["localhost"]
    assert local.hosts["localhost"].connection == "local"


@pytest.mark.parametrize(("text", "phrase"), [
    ("ws01,ws02:99999,", "out of range"),
    ("ws01,bad host!,", "malformed host name"),
])
def test_a_bad_comma_list(text: str, phrase: str) -> None:
    with pytest.raises(UserError, match=phrase):
        load_inventory(text)


def test_an_ini_inventory_is_refused_with_the_conversion_command(tmp_path: Path) -> None:
    ini = tmp_path / "hosts.ini"
    ini.write_text("[lab]\nws01\n")
    with pytest.raises(UserError, match="ansible-inventory"):
        load_inventory(str(ini))


def test_an_empty_inventory_file_has_no_hosts(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("# nothing yet\n")
    inv = load_inventory(str(path))
    assert inv.hosts == {}
    with pytest.raises(UserError, match="matches no host"):
        inv.select("ws01")


def test_host_ranges_expand_as_in_ansible(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("all:\n  children:\n    gpu:\n      hosts:\n        gpu[08:11]:\n          cuda: '12.4'\n"
                    "        node[a:c]-[1:2]:\n        even[0:6:3]:\n")
    inv = load_inventory(str(path))
    assert list(inv.hosts) == ["gpu08", "gpu09", "gpu10", "gpu11", "nodea-1", "nodea-2", "nodeb-1", "nodeb-2",
                               "nodec-1", "nodec-2", "even0", "even3", "even6"]
    assert inv.host_vars("gpu10")["cuda"] == "12.4"
    assert inv.group_members("gpu")[:2] == ["gpu08", "gpu09"]


def test_a_group_that_contains_itself_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "loop.yml"
    path.write_text("all:\n  children:\n    lab:\n      children:\n        gpu:\n          children:\n            lab:\n")
    with pytest.raises(UserError, match="group 'lab' cannot be a child of 'gpu'"):
        load_inventory(str(path))
