"""modprobe / kernel_blacklist: the persistent files are real files under tmp_path (the module's
directories are pointed there); which kernel modules are loaded is a file we write, a fake for what
this machine's kernel cannot show (it has no loadable modules: no /proc/modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.modules import modprobe as mod
from tests.unit.modhelp import run_module


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "modules-load.d").mkdir()
    (tmp_path / "modprobe.d").mkdir()
    (tmp_path / "proc_modules").write_text("dummy 16384 0 - Live 0x0\nnvidia_drm 1 0 - Live 0x0\n")
    monkeypatch.setattr(mod, "MODULES_LOAD_DIR", str(tmp_path / "modules-load.d"))
    monkeypatch.setattr(mod, "MODPROBE_DIR", str(tmp_path / "modprobe.d"))
    monkeypatch.setattr(mod, "PROC_MODULES", str(tmp_path / "proc_modules"))
    return tmp_path


def test_persistent_present_writes_files_once(dirs: Path) -> None:
    args = {"name": "dummy", "params": "numdummies=2 foo=1", "persistent": "present"}
    check = run_module("modprobe", check=True, diff=True, **args)
    assert check["changed"] is True and not (dirs / "modules-load.d" / "dummy.conf").exists()
    assert "options dummy numdummies=2" in check["diff"]["after"]
    out = run_module("modprobe", **args)
    assert out["changed"] is True and out["name"] == "dummy" and out["params"] == "numdummies=2 foo=1"
    assert (dirs / "modules-load.d" / "dummy.conf").read_text() == "dummy\n"
    assert (dirs / "modprobe.d" / "dummy.conf").read_text() == "options dummy numdummies=2\noptions dummy foo=1\n"
    assert run_module("modprobe", **args)["changed"] is False
    # new params: the old lines are commented out, the file rewritten
    (dirs / "modprobe.d" / "local.conf").write_text("options dummy numdummies=9\noptions other x=1\n")
    out = run_module("modprobe", name="dummy", params="numdummies=3", persistent="present")
    assert out["changed"] is True
    assert (dirs / "modprobe.d" / "local.conf").read_text() == "#options dummy numdummies=9\noptions other x=1\n"
    assert (dirs / "modprobe.d" / "dummy.conf").read_text() == "options dummy numdummies=3\n"


def test_persistent_absent_comments_out(dirs: Path) -> None:
    (dirs / "modules-load.d" / "gpu.conf").write_text("nvidia_drm\nother\n")
    (dirs / "modprobe.d" / "gpu.conf").write_text("options nvidia_drm modeset=1\n")
    (dirs / "proc_modules").write_text("")
    args = {"name": "nvidia_drm", "state": "absent", "persistent": "absent"}
    out = run_module("modprobe", **args)
    assert out["changed"] is True
    assert (dirs / "modules-load.d" / "gpu.conf").read_text() == "#nvidia_drm\nother\n"
    assert (dirs / "modprobe.d" / "gpu.conf").read_text() == "#options nvidia_drm modeset=1\n"
    assert run_module("modprobe", **args)["changed"] is False


def test_loading_fails_clearly_without_modules(dirs: Path) -> None:
    (dirs / "proc_modules").write_text("")
    out = run_module("modprobe", name="dummy", persistent="present")
    assert out["failed"] is True and out["msg"]  # no kmod, or no module tree on this kernel: its words
    assert not (dirs / "modules-load.d" / "dummy.conf").exists()
    assert run_module("modprobe", name="dummy", state="absent")["changed"] is False


def test_kernel_blacklist_add_remove(tmp_path: Path) -> None:
    f = tmp_path / "modprobe.d" / "blacklist.conf"
    check = run_module("kernel_blacklist", check=True, diff=True, name="nouveau", blacklist_file=str(f))
    assert check["changed"] and check["diff"]["after"] == "blacklist nouveau\n" and not f.exists()
    assert run_module("kernel_blacklist", name="nouveau", blacklist_file=str(f))["changed"] is True
    assert run_module("kernel_blacklist", name="nouveau", blacklist_file=str(f))["changed"] is False
    f.write_text("# mine\nblacklist nouveau\nblacklist pcspkr\n")
    out = run_module("kernel_blacklist", name="nouveau", state="absent", blacklist_file=str(f))
    assert out["changed"] and f.read_text() == "# mine\nblacklist pcspkr\n"
    assert run_module("kernel_blacklist", name="nouveau", state="absent", blacklist_file=str(f))["changed"] is False
