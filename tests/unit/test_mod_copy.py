"""copy module on real files: content, controller bytes (content_b64), remote_src, backup, validate."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

from provisioner.host.runtime import Host, ModuleError
from provisioner.modules.copy import validate_bytes
from tests.unit.modhelp import run_module


def test_content_written_once_with_checksum_and_mode(tmp_path: Path) -> None:
    dest = tmp_path / "motd"
    first = run_module("copy", dest=str(dest), content="hello\n", mode="0640")
    assert first["changed"] and dest.read_text() == "hello\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert first["checksum"] == hashlib.sha1(b"hello\n").hexdigest() and first["size"] == 6
    assert first["mode"] == "0640" and first["dest"] == str(dest)
    assert run_module("copy", dest=str(dest), content="hello\n", mode="0640")["changed"] is False


def test_changed_content_diff_and_check_mode_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "conf"
    dest.write_text("old\n")
    res = run_module("copy", check=True, diff=True, dest=str(dest), content="new\n")
    assert res["changed"] and dest.read_text() == "old\n"
    assert res["diff"]["before"] == "old\n" and res["diff"]["after"] == "new\n"
    assert run_module("copy", dest=str(dest), content="new\n")["changed"] and dest.read_text() == "new\n"


def test_only_mode_differs_is_a_change_with_an_attribute_diff(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    dest.write_text("same")
    dest.chmod(0o600)
    res = run_module("copy", diff=True, dest=str(dest), content="same", mode="0644")
    assert res["changed"] and res["diff"] == {"path": str(dest), "before": "mode: 0600\n", "after": "mode: 0644\n"}
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_force_false_leaves_an_existing_file(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    dest.write_text("mine")
    res = run_module("copy", dest=str(dest), content="theirs", force=False)
    assert res["changed"] is False and res["msg"] == "file already exists" and dest.read_text() == "mine"


def test_backup_keeps_the_old_file_with_ansible_name(tmp_path: Path) -> None:
    dest = tmp_path / "f"
    dest.write_text("v1")
    res = run_module("copy", dest=str(dest), content="v2", backup=True)
    backup = Path(res["backup_file"])
    assert backup.read_text() == "v1" and dest.read_text() == "v2"
    assert backup.name.startswith(f"f.{os.getpid()}.") and backup.name.endswith("~")


def test_controller_bytes_into_a_directory_take_the_src_name_and_binary_diff(tmp_path: Path) -> None:
    blob = bytes(range(256))
    args: dict[str, Any] = {"dest": str(tmp_path) + "/", "src": "/controller/files/blob.bin",
            "content_b64": base64.b64encode(blob).decode()}
    res = run_module("copy", diff=True, **args)
    assert res["changed"] and (tmp_path / "blob.bin").read_bytes() == blob
    assert "binary" in res["diff"]["after"]
    assert run_module("copy", **args)["changed"] is False


def test_trailing_slash_creates_the_directory_with_directory_mode(tmp_path: Path) -> None:
    res = run_module("copy", dest=str(tmp_path / "new") + "/", src="/c/app.conf",
                     content_b64=base64.b64encode(b"x").decode(), directory_mode="0700")
    assert res["changed"] and (tmp_path / "new" / "app.conf").read_text() == "x"
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_remote_src_with_preserved_mode(tmp_path: Path) -> None:
    src = tmp_path / "tool.sh"
    src.write_text("#!/bin/sh\n")
    src.chmod(0o750)
    dest = tmp_path / "tool-copy.sh"
    res = run_module("copy", src=str(src), dest=str(dest), remote_src=True, mode="preserve")
    assert res["changed"] and dest.read_text() == "#!/bin/sh\n" and stat.S_IMODE(dest.stat().st_mode) == 0o750
    assert run_module("copy", src=str(src), dest=str(dest), remote_src=True, mode="preserve")["changed"] is False


def test_errors_are_clear(tmp_path: Path) -> None:
    assert "does not exist" in run_module("copy", dest=str(tmp_path / "no" / "f"), content="x")["msg"]
    assert "not found" in run_module("copy", dest=str(tmp_path / "f"), src=str(tmp_path / "zz"),
                                     remote_src=True)["msg"]
    assert "content_b64" in run_module("copy", dest=str(tmp_path / "f"), src="local.txt")["msg"]
    assert "dir as dest" in run_module("copy", dest=str(tmp_path), content="x")["msg"]
    bad = run_module("copy", dest=str(tmp_path / "f"), content="x", checksum="0" * 40)
    assert bad["failed"] and not (tmp_path / "f").exists()


def test_symlink_dest_is_replaced_unless_follow(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("old")
    link = tmp_path / "link"
    link.symlink_to("real")
    assert run_module("copy", dest=str(link), content="new", follow=True)["changed"]
    assert link.is_symlink() and real.read_text() == "new"
    assert run_module("copy", dest=str(link), content="other")["changed"]
    assert not link.is_symlink() and link.read_text() == "other" and real.read_text() == "new"


def test_validate_runs_on_a_temp_copy_before_the_rename(tmp_path: Path) -> None:
    dest = tmp_path / "sudoers"
    dest.write_text("ok old\n")
    check = "grep -q '^ok' %s"
    assert run_module("copy", dest=str(dest), content="ok new\n", validate=check)["changed"]
    res = run_module("copy", dest=str(dest), content="broken\n", validate=check)
    assert res["failed"] and "failed to validate" in res["msg"] and dest.read_text() == "ok new\n"
    assert "must contain %s" in run_module("copy", dest=str(dest), content="x", validate="true")["msg"]


def test_validate_passes_the_path_as_one_argument(tmp_path: Path) -> None:
    spaced = tmp_path / "dir with spaces"
    spaced.mkdir()
    host = Host(tmpdir=str(spaced))
    one_arg = f"{sys.executable} -c 'import sys; sys.exit(0 if len(sys.argv) == 2 else 3)' %s"
    validate_bytes(host, one_arg, b"data", None)
    try:
        validate_bytes(host, one_arg + " extra", b"data", None)
    except ModuleError as exc:
        assert exc.data["exit_status"] == 3
    else:
        raise AssertionError("validate should have failed")
    assert os.listdir(spaced) == []  # the temp copy is cleaned up


def test_check_mode_into_a_directory_an_earlier_task_would_make(tmp_path: Path) -> None:
    """--check on a fresh host: the directory is made by an earlier task, so it is not there yet."""
    dest = tmp_path / "not-yet" / "x.conf"
    result = run_module("copy", check=True, dest=str(dest), content="x\n")
    assert result["changed"] and not result["failed"] and "does not exist yet" in result["msg"]
    assert not dest.parent.exists()
    assert run_module("copy", dest=str(dest), content="x\n")["failed"]
