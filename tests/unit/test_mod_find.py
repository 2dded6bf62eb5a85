"""find: real directory trees; each criterion narrows the matches, nothing is ever changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.unit.modhelp import run_module


def _tree(root: Path) -> None:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.log").write_text("error: disk\n")
    (root / "b.txt").write_text("hello\n")
    (root / ".hidden.log").write_text("x\n")
    (root / "sub" / "c.log").write_text("ok\nerror: later\n")
    (root / "sub" / "deep" / "d.log").write_bytes(b"0" * 5000)
    os.symlink("b.txt", root / "link.txt")
    old = time.time() - 3 * 86400
    os.utime(root / "a.log", (old, old))


def _names(out: dict) -> list[str]:
    return sorted(os.path.basename(f["path"]) for f in out["files"])


def test_patterns_recurse_depth_hidden(tmp_path: Path) -> None:
    _tree(tmp_path)
    top = run_module("find", paths=[str(tmp_path)], patterns=["*.log"])
    assert _names(top) == ["a.log"] and top["matched"] == 1 and top["changed"] is False
    assert top["examined"] == 5  # a.log b.txt .hidden.log link.txt sub
    rec = run_module("find", paths=str(tmp_path), patterns="*.log", recurse=True)
    assert _names(rec) == ["a.log", "c.log", "d.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], patterns=["*.log"], recurse=True, depth=2)) == \
        ["a.log", "c.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], patterns=["*.log"], hidden=True)) == \
        [".hidden.log", "a.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], patterns=["*.log"], excludes=["a*"],
                             recurse=True)) == ["c.log", "d.log"]
    f = rec["files"][0]
    for key in ("path", "mode", "isreg", "isdir", "islnk", "uid", "gid", "size", "mtime", "inode",
                "pw_name", "gr_name", "rusr", "xoth"):
        assert key in f
    assert "exists" not in f


def test_regex_contains_type_age_size(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert _names(run_module("find", paths=[str(tmp_path)], patterns=[r"^[ab]\..*"], use_regex=True)) == \
        ["a.log", "b.txt"]
    # contains: re.match per line (line start), or search in the whole file
    assert _names(run_module("find", paths=[str(tmp_path)], recurse=True, contains="error")) == ["a.log", "c.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], recurse=True, contains="later")) == []
    assert _names(run_module("find", paths=[str(tmp_path)], recurse=True, contains="later",
                             read_whole_file=True)) == ["c.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], file_type="directory", recurse=True)) == ["deep", "sub"]
    assert _names(run_module("find", paths=[str(tmp_path)], file_type="link")) == ["link.txt"]
    assert _names(run_module("find", paths=[str(tmp_path)], age="2d")) == ["a.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], age="-1d")) == ["b.txt"]
    assert _names(run_module("find", paths=[str(tmp_path)], recurse=True, size="4k")) == ["d.log"]
    assert _names(run_module("find", paths=[str(tmp_path)], recurse=True, size="-10")) == ["b.txt"]  # 6 bytes
    sums = run_module("find", paths=[str(tmp_path)], patterns=["b.txt"], get_checksum=True)
    assert sums["files"][0]["checksum"] == "f572d396fae9206628714fb2ce00f72e94f2258f"


def test_missing_path_is_skipped_and_bad_age_fails(tmp_path: Path) -> None:
    out = run_module("find", paths=[str(tmp_path / "nope"), str(tmp_path)], check=True)
    assert out["failed"] is False and out["matched"] == 0
    assert str(tmp_path / "nope") in out["skipped_paths"]
    assert "Not all paths examined" in out["msg"]
    bad = run_module("find", paths=[str(tmp_path)], age="3 days")
    assert bad["failed"] and "age" in bad["msg"]
