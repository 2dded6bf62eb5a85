"""lineinfile on real files: Ansible's placement and replacement rules, check mode, diff, errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.unit.modhelp import run_module


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "conf"
    f.write_text(text)
    return f


def test_line_added_at_eof_then_no_change(tmp_path: Path) -> None:
    f = write(tmp_path, "a\nb\n")
    res = run_module("lineinfile", path=str(f), line="c")
    assert res["changed"] and res["msg"] == "line added" and f.read_text() == "a\nb\nc\n"
    assert run_module("lineinfile", path=str(f), line="c")["changed"] is False


def test_missing_final_newline_is_completed_before_adding(tmp_path: Path) -> None:
    f = write(tmp_path, "a")
    run_module("lineinfile", path=str(f), line="b")
    assert f.read_text() == "a\nb\n"


def test_regexp_replaces_the_last_match_or_the_first_with_firstmatch(tmp_path: Path) -> None:
    f = write(tmp_path, "x=1\ny\nx=2\n")
    res = run_module("lineinfile", path=str(f), regexp="^x=", line="x=9")
    assert res["msg"] == "line replaced" and f.read_text() == "x=1\ny\nx=9\n"
    f.write_text("x=1\ny\nx=2\n")
    run_module("lineinfile", path=str(f), regexp="^x=", line="x=9", firstmatch=True)
    assert f.read_text() == "x=9\ny\nx=2\n"
    assert run_module("lineinfile", path=str(f), regexp="^x=", line="x=9", firstmatch=True)["changed"] is False


def test_regexp_without_match_appends_and_is_then_stable(tmp_path: Path) -> None:
    f = write(tmp_path, "a\n")
    assert run_module("lineinfile", path=str(f), regexp="^x=", line="x=1")["changed"]
    assert f.read_text() == "a\nx=1\n"
    assert run_module("lineinfile", path=str(f), regexp="^x=", line="x=1")["changed"] is False


def test_backrefs_expand_groups_and_do_nothing_without_a_match(tmp_path: Path) -> None:
    f = write(tmp_path, "GRUB_CMDLINE=\"quiet\"\n")
    args: dict[str, Any] = {"path": str(f), "regexp": r'^(GRUB_CMDLINE=")(.*)"$', "line": r'\1\2 nouveau.modeset=0"',
            "backrefs": True}
    assert run_module("lineinfile", **args)["changed"]
    assert f.read_text() == 'GRUB_CMDLINE="quiet nouveau.modeset=0"\n'
    none = run_module("lineinfile", path=str(f), regexp="^NOPE(.*)", line=r"\1", backrefs=True)
    assert none["changed"] is False and f.read_text() == 'GRUB_CMDLINE="quiet nouveau.modeset=0"\n'


def test_insertafter_and_insertbefore_use_the_last_match(tmp_path: Path) -> None:
    f = write(tmp_path, "[a]\nk=1\n[a]\nend\n")
    run_module("lineinfile", path=str(f), line="new", insertafter=r"^\[a\]")
    assert f.read_text() == "[a]\nk=1\n[a]\nnew\nend\n"
    assert run_module("lineinfile", path=str(f), line="new", insertafter=r"^\[a\]")["changed"] is False
    f.write_text("[a]\nk=1\n[a]\nend\n")
    run_module("lineinfile", path=str(f), line="new", insertbefore=r"^\[a\]", firstmatch=True)
    assert f.read_text() == "new\n[a]\nk=1\n[a]\nend\n"


def test_insertbefore_bof_and_unmatched_insertafter_goes_to_eof(tmp_path: Path) -> None:
    f = write(tmp_path, "a\n")
    run_module("lineinfile", path=str(f), line="# top", insertbefore="BOF")
    assert f.read_text() == "# top\na\n"
    run_module("lineinfile", path=str(f), line="z", insertafter="^nothing-matches")
    assert f.read_text() == "# top\na\nz\n"


def test_search_string_is_literal(tmp_path: Path) -> None:
    f = write(tmp_path, "opt[1] = a\n")
    run_module("lineinfile", path=str(f), search_string="opt[1]", line="opt[1] = b")
    assert f.read_text() == "opt[1] = b\n"


def test_absent_by_regexp_line_or_search_string(tmp_path: Path) -> None:
    f = write(tmp_path, "#x\nx=1\ny\nx=2\n")
    res = run_module("lineinfile", path=str(f), regexp="^x=", state="absent")
    assert res["changed"] and res["found"] == 2 and res["msg"] == "2 line(s) removed"
    assert f.read_text() == "#x\ny\n"
    assert run_module("lineinfile", path=str(f), line="y", state="absent")["found"] == 1
    assert run_module("lineinfile", path=str(f), search_string="#", state="absent")["changed"]
    assert f.read_text() == ""
    gone = run_module("lineinfile", path=str(tmp_path / "missing"), line="y", state="absent")
    assert gone["changed"] is False and gone["msg"] == "file not present"


def test_check_mode_and_diff(tmp_path: Path) -> None:
    f = write(tmp_path, "a\n")
    res = run_module("lineinfile", check=True, diff=True, path=str(f), line="b")
    assert res["changed"] and f.read_text() == "a\n"
    assert res["diff"]["before"] == "a\n" and res["diff"]["after"] == "a\nb\n"


def test_create_makes_the_file_and_missing_file_fails_otherwise(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "new.conf"
    res = run_module("lineinfile", path=str(target), line="k=v")
    assert res["failed"] and res["rc"] == 257 and "does not exist" in res["msg"]
    assert run_module("lineinfile", check=True, path=str(target), line="k=v", create=True)["changed"]
    assert not target.parent.exists()
    assert run_module("lineinfile", path=str(target), line="k=v", create=True, mode="0600")["changed"]
    assert target.read_text() == "k=v\n" and (target.stat().st_mode & 0o777) == 0o600


def test_mode_only_change_has_ansible_message(tmp_path: Path) -> None:
    f = write(tmp_path, "a\n")
    f.chmod(0o644)
    res = run_module("lineinfile", path=str(f), line="a", mode="0600")
    assert res["changed"] and res["msg"] == "ownership, perms or SE linux context changed"
    both = run_module("lineinfile", path=str(f), line="b", mode="0640")
    assert both["msg"] == "line added and ownership, perms or SE linux context changed"


def test_backup_and_symlink_are_written_through(tmp_path: Path) -> None:
    real = write(tmp_path, "a\n")
    link = tmp_path / "link"
    link.symlink_to("conf")
    res = run_module("lineinfile", dest=str(link), line="b", backup=True)
    assert link.is_symlink() and real.read_text() == "a\nb\n"
    assert Path(res["backup"]).read_text() == "a\n"


def test_validate_failure_leaves_the_file(tmp_path: Path) -> None:
    f = write(tmp_path, "ok\n")
    no_bad = f"{sys.executable} -c \"import sys; sys.exit('bad' in open(sys.argv[1]).read())\" %s"
    res = run_module("lineinfile", path=str(f), line="bad", validate=no_bad)
    assert res["failed"] and "failed to validate" in res["msg"] and f.read_text() == "ok\n"


def test_argument_errors(tmp_path: Path) -> None:
    f = write(tmp_path, "a\n")
    assert "line is required" in run_module("lineinfile", path=str(f), regexp="a")["msg"]
    assert "mutually exclusive" in run_module("lineinfile", path=str(f), line="x", insertafter="a",
                                              insertbefore="b")["msg"]
    assert "regexp is required" in run_module("lineinfile", path=str(f), line="x", backrefs=True)["msg"]
    assert "one of line" in run_module("lineinfile", path=str(f), state="absent")["msg"]
    assert "is a directory" in run_module("lineinfile", path=str(tmp_path), line="x")["msg"]
    assert "invalid regular expression" in run_module("lineinfile", path=str(f), line="x", regexp="(")["msg"]
