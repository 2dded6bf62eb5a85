"""stat on real paths: Ansible's keys, checksums, links with and without follow; never a change."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.unit.modhelp import run_module


def test_missing_path_reports_exists_false(tmp_path: Path) -> None:
    res = run_module("stat", path=str(tmp_path / "nope"))
    assert res["stat"] == {"exists": False} and res["changed"] is False and not res["failed"]


def test_regular_file_with_sha1_and_sha256(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"data")
    f.chmod(0o640)
    st = run_module("stat", path=str(f))["stat"]
    assert st["exists"] and st["isreg"] and not st["isdir"] and st["mode"] == "0640" and st["size"] == 4
    assert st["checksum"] == hashlib.sha1(b"data").hexdigest()
    assert st["rusr"] and st["wusr"] and st["rgrp"] and not st["roth"] and "pw_name" in st
    sha = run_module("stat", path=str(f), checksum_algorithm="sha256")["stat"]
    assert sha["checksum"] == hashlib.sha256(b"data").hexdigest()
    assert "checksum" not in run_module("stat", path=str(f), get_checksum=False)["stat"]


def test_directory_and_symlink_follow(tmp_path: Path) -> None:
    assert run_module("stat", dest=str(tmp_path))["stat"]["isdir"]
    (tmp_path / "target").write_text("x")
    (tmp_path / "ln").symlink_to("target")
    link = run_module("stat", path=str(tmp_path / "ln"))["stat"]
    assert link["islnk"] and link["lnk_target"] == "target" and link["lnk_source"] == str(tmp_path / "target")
    assert "checksum" not in link
    followed = run_module("stat", path=str(tmp_path / "ln"), follow=True)["stat"]
    assert followed["isreg"] and not followed["islnk"] and followed["checksum"]


def test_check_mode_gives_the_same_answer(tmp_path: Path) -> None:
    res = run_module("stat", check=True, path=str(tmp_path))
    assert res["stat"]["isdir"] and res["changed"] is False and "skipped" not in res
