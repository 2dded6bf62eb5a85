"""file module on real paths under tmp_path: directories, links, touch, absent, mode and owner."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from provisioner.modules import host_modules, validate_args
from tests.unit.modhelp import run_module


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_directory_with_parents_then_no_change(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    first = run_module("file", path=str(target), state="directory", mode="0750")
    assert first["changed"] and not first["failed"]
    assert target.is_dir() and mode_of(target) == 0o750
    assert mode_of(tmp_path / "a") == 0o750  # new parents get the mode too, as in Ansible
    assert first["state"] == "directory" and first["mode"] == "0750"
    second = run_module("file", path=str(target), state="directory", mode="0750")
    assert second["changed"] is False


def test_check_mode_creates_nothing_and_diff_tells_the_state(tmp_path: Path) -> None:
    target = tmp_path / "d"
    res = run_module("file", check=True, diff=True, path=str(target), state="directory")
    assert res["changed"] and not target.exists()
    assert "state: absent" in res["diff"]["before"] and "state: directory" in res["diff"]["after"]


def test_mode_change_on_existing_file_and_diff(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o644)
    res = run_module("file", diff=True, dest=str(f), mode="u=rw,g=,o=")  # alias dest, symbolic mode, no state
    assert res["changed"] and mode_of(f) == 0o600
    assert res["diff"]["before"].endswith("mode: 0644\n") and res["diff"]["after"].endswith("mode: 0600\n")
    assert run_module("file", path=str(f), mode="0600")["changed"] is False
    assert validate_args(host_modules()["file"], {"name": str(f)}).path == str(f)  # Ansible's other alias


def test_state_file_on_missing_path_fails_like_ansible(tmp_path: Path) -> None:
    res = run_module("file", path=str(tmp_path / "nope"), state="file")
    assert res["failed"] and "is absent, cannot continue" in res["msg"]
    assert run_module("file", path=str(tmp_path / "nope"))["failed"]  # default state is file


def test_directory_over_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = run_module("file", path=str(tmp_path / "f"), state="directory")
    assert res["failed"] and "already exists as a file" in res["msg"]


def test_touch_creates_then_always_changes_unless_preserved(tmp_path: Path) -> None:
    f = tmp_path / "t"
    assert run_module("file", path=str(f), state="touch")["changed"] and f.is_file()
    assert run_module("file", path=str(f), state="touch")["changed"]  # times set to now: Ansible says changed
    kept = run_module("file", path=str(f), state="touch", access_time="preserve", modification_time="preserve")
    assert kept["changed"] is False


def test_explicit_modification_time_is_set_once(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("x")
    args: dict[str, Any] = {"path": str(f), "state": "file", "modification_time": "202001021504.05"}
    assert run_module("file", **args)["changed"]
    assert os.stat(f).st_mtime == time.mktime((2020, 1, 2, 15, 4, 5, 0, 0, -1))
    assert run_module("file", **args)["changed"] is False
    bad = run_module("file", path=str(f), modification_time="yesterday")
    assert bad["failed"] and "timestamp" in bad["msg"]


def test_relative_symlink_create_retarget_and_no_change(tmp_path: Path) -> None:
    (tmp_path / "v1").write_text("1")
    (tmp_path / "v2").write_text("2")
    link = tmp_path / "cur"
    res = run_module("file", path=str(link), src="v1", state="link", diff=True)
    assert res["changed"] and os.readlink(link) == "v1" and res["dest"] == str(link) and res["src"] == "v1"
    assert "src: v1" in res["diff"]["after"]
    assert run_module("file", path=str(link), src="v1", state="link")["changed"] is False
    assert run_module("file", path=str(link), src="v2", state="link")["changed"]
    assert os.readlink(link) == "v2"


def test_link_to_missing_src_needs_force(tmp_path: Path) -> None:
    link = tmp_path / "l"
    res = run_module("file", path=str(link), src="missing", state="link")
    assert res["failed"] and "force" in res["msg"] and not os.path.lexists(link)
    assert run_module("file", path=str(link), src="missing", state="link", force=True)["changed"]
    assert os.readlink(link) == "missing"


def test_link_over_a_file_needs_force(tmp_path: Path) -> None:
    (tmp_path / "src").write_text("s")
    f = tmp_path / "f"
    f.write_text("x")
    res = run_module("file", path=str(f), src=str(tmp_path / "src"), state="link")
    assert res["failed"] and f.is_file() and not f.is_symlink()
    assert run_module("file", path=str(f), src=str(tmp_path / "src"), state="link", force=True)["changed"]
    assert f.is_symlink()


def test_hard_link_then_no_change(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_text("s")
    dst = tmp_path / "dst"
    assert run_module("file", path=str(dst), src=str(src), state="hard")["changed"]
    assert os.stat(dst).st_ino == os.stat(src).st_ino
    assert run_module("file", path=str(dst), src=str(src), state="hard")["changed"] is False


def test_absent_removes_a_tree_once_and_check_mode_keeps_it(tmp_path: Path) -> None:
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    assert run_module("file", check=True, path=str(d), state="absent")["changed"] and d.exists()
    res = run_module("file", path=str(d), state="absent")
    assert res["changed"] and not d.exists() and res["state"] == "absent"
    assert run_module("file", path=str(d), state="absent")["changed"] is False


def test_recurse_applies_mode_to_contents(tmp_path: Path) -> None:
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    (d / "sub" / "f").chmod(0o600)
    args: dict[str, Any] = {"path": str(d), "state": "directory", "recurse": True, "mode": "u=rwX,g=rX,o=rX"}
    assert run_module("file", **args)["changed"]
    assert mode_of(d / "sub") == 0o755 and mode_of(d / "sub" / "f") == 0o644
    assert run_module("file", **args)["changed"] is False
    assert run_module("file", path=str(d / "sub" / "f"), recurse=True, state="file")["failed"]


def test_follow_applies_mode_to_the_link_target(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "real").chmod(0o644)
    (tmp_path / "ln").symlink_to("real")
    assert run_module("file", path=str(tmp_path / "ln"), state="file", mode="0640")["changed"]
    assert mode_of(tmp_path / "real") == 0o640 and (tmp_path / "ln").is_symlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_owner_and_group_change_once(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    res = run_module("file", diff=True, path=str(f), owner="nobody", group="nogroup")
    assert res["changed"] and res["owner"] == "nobody"
    assert "owner: nobody" in res["diff"]["after"]
    assert run_module("file", path=str(f), owner="nobody", group="nogroup")["changed"] is False


def test_unknown_owner_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = run_module("file", path=str(tmp_path / "f"), owner="no-such-user-xyz")
    assert res["failed"] and "no such user" in res["msg"]
