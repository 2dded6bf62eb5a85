"""mount's fstab states on a real fstab file under tmp (present, absent_from_fstab, unmounted of a non-mount).

Mounting itself changes this machine: the fleet test mounts a tmpfs in a fleet host.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.modhelp import run_module


def test_present_adds_the_line_then_no_change(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text("# /etc/fstab\nUUID=1 / ext4 errors=remount-ro 0 1\n")
    args = {"path": "/mnt/scratch", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=64m", "state": "present",
            "fstab": str(fstab)}
    res = run_module("mount", **args)
    assert res["changed"] and res["name"] == "/mnt/scratch" and res["opts"] == "size=64m" and res["boot"] == "yes"
    assert fstab.read_text().splitlines()[-1] == "tmpfs /mnt/scratch tmpfs size=64m 0 0"
    assert run_module("mount", **args)["changed"] is False


def test_a_changed_option_rewrites_only_that_line_and_spaces_are_escaped(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text("tmpfs /mnt/a\\040b tmpfs defaults 0 0\nother /x ext4 defaults 0 2\n")
    res = run_module("mount", path="/mnt/a b", src="tmpfs", fstype="tmpfs", opts="ro", state="present",
                     fstab=str(fstab), diff=True)
    assert res["changed"] and fstab.read_text() == "tmpfs /mnt/a\\040b tmpfs ro 0 0\nother /x ext4 defaults 0 2\n"
    assert res["diff"]["before"].startswith("tmpfs /mnt/a\\040b tmpfs defaults")


def test_boot_false_adds_noauto(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    run_module("mount", path="/mnt/x", src="/dev/sdb1", fstype="ext4", boot=False, state="present", fstab=str(fstab))
    assert fstab.read_text() == "/dev/sdb1 /mnt/x ext4 defaults,noauto 0 0\n"


def test_absent_from_fstab_and_check_mode(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text("tmpfs /mnt/x tmpfs defaults 0 0\n/dev/sda1 / ext4 defaults 0 1\n")
    assert run_module("mount", check=True, path="/mnt/x", state="absent_from_fstab", fstab=str(fstab))["changed"]
    assert "/mnt/x" in fstab.read_text()
    assert run_module("mount", path="/mnt/x", state="absent_from_fstab", fstab=str(fstab))["changed"]
    assert fstab.read_text() == "/dev/sda1 / ext4 defaults 0 1\n"
    assert run_module("mount", path="/mnt/x", state="absent_from_fstab", fstab=str(fstab))["changed"] is False


def test_unmounted_of_a_path_that_is_not_mounted_is_ok(tmp_path: Path) -> None:
    res = run_module("mount", path=str(tmp_path / "nothing"), state="unmounted", fstab=str(tmp_path / "fstab"))
    assert res["changed"] is False and not res["failed"]


def test_state_is_required(tmp_path: Path) -> None:
    assert run_module("mount", path="/mnt/x", fstab=str(tmp_path / "fstab"))["msg"] == "missing required arguments: state"


def test_mounted_needs_src_and_fstype(tmp_path: Path) -> None:
    res = run_module("mount", path="/mnt/x", state="mounted", fstab=str(tmp_path / "fstab"))
    assert res["failed"] and res["msg"] == "state is mounted but all of the following are missing: src, fstype"


def test_opts_no_log_is_refused_not_ignored(tmp_path: Path) -> None:
    res = run_module("mount", path="/mnt/x", src="//srv/share", fstype="cifs", opts="password=secret",
                     opts_no_log=True, state="present", fstab=str(tmp_path / "fstab"))
    assert res["failed"] and "opts_no_log" in res["msg"] and not (tmp_path / "fstab").exists()
