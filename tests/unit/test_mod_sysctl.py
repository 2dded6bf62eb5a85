"""sysctl with a sysctl_file under tmp: Ansible's normalised rewrite, absent, check/diff; reload's failure.

Setting a live value (sysctl -w, -p) would change this machine's kernel: the fleet test shows the
read-only /proc/sys failure; here `reload: false` manages the file only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.modhelp import run_module

pytestmark = pytest.mark.skipif(shutil.which("sysctl") is None and not Path("/usr/sbin/sysctl").exists(),
                                reason="sysctl (procps) is not installed")


def test_value_added_then_no_change(tmp_path: Path) -> None:
    f = tmp_path / "99-test.conf"
    res = run_module("sysctl", name="vm.swappiness", value=10, sysctl_file=str(f), reload=False)
    assert res["changed"] and f.read_text() == "vm.swappiness=10\n"
    assert run_module("sysctl", name="vm.swappiness", value="10", sysctl_file=str(f), reload=False)["changed"] is False


def test_file_is_rewritten_normalised_as_ansible_does(tmp_path: Path) -> None:
    f = tmp_path / "s.conf"
    f.write_text("# comment\n  net.ipv4.ip_forward = 0\nkernel.x = a b\nkernel.x=dup\n\n")
    run_module("sysctl", key="net.ipv4.ip_forward", val=True, sysctl_file=str(f), reload=False)
    assert f.read_text() == "# comment\nnet.ipv4.ip_forward=1\nkernel.x=a b\n\n"


def test_absent_removes_the_key(tmp_path: Path) -> None:
    f = tmp_path / "s.conf"
    f.write_text("a.b=1\nc.d=2\n")
    res = run_module("sysctl", name="a.b", state="absent", sysctl_file=str(f), reload=False, diff=True)
    assert res["changed"] and f.read_text() == "c.d=2\n" and res["diff"]["before"] == "a.b=1\nc.d=2\n"
    assert run_module("sysctl", name="a.b", state="absent", sysctl_file=str(f), reload=False)["changed"] is False


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    f = tmp_path / "s.conf"
    assert run_module("sysctl", check=True, name="vm.swappiness", value="5", sysctl_file=str(f))["changed"]
    assert not f.exists()


def test_blank_and_missing_values_are_refused(tmp_path: Path) -> None:
    f = str(tmp_path / "s.conf")
    assert run_module("sysctl", name="vm.x", value=" ", sysctl_file=f)["msg"] == "value cannot be blank"
    assert "missing: value" in run_module("sysctl", name="vm.x", sysctl_file=f)["msg"]
