"""replace on real files: every match replaced (Python re, MULTILINE), after/before sections, check, diff."""

from __future__ import annotations

from pathlib import Path

from tests.unit.modhelp import run_module


def test_every_match_is_replaced_then_no_change(tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("old.example.com a\nb old.example.com\n")
    res = run_module("replace", path=str(f), regexp=r"old\.example\.com", replace="new.example.com")
    assert res["changed"] and res["msg"] == "2 replacements made" and res["rc"] == 0
    assert f.read_text() == "new.example.com a\nb new.example.com\n"
    again = run_module("replace", path=str(f), regexp=r"old\.example\.com", replace="new.example.com")
    assert again["changed"] is False and again["msg"] == ""


def test_groups_and_multiline_anchors(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("x = 1\ny = 2\n")
    run_module("replace", dest=str(f), regexp=r"^(\w+) = (\d)$", replace=r"\1=\2\2")
    assert f.read_text() == "x=11\ny=22\n"


def test_after_and_before_limit_the_section(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("a=1\n[s]\na=1\n[t]\na=1\n")
    res = run_module("replace", path=str(f), regexp="^a=1", replace="a=2", after=r"\[s\]", before=r"\[t\]")
    assert res["msg"] == "1 replacements made" and f.read_text() == "a=1\n[s]\na=2\n[t]\na=1\n"
    missing = run_module("replace", path=str(f), regexp="a", after="NOPE")
    assert missing["changed"] is False and "did not match" in missing["msg"]


def test_check_mode_and_diff_leave_the_file(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("k=v\n")
    res = run_module("replace", check=True, diff=True, path=str(f), regexp="v", replace="w")
    assert res["changed"] and res["diff"]["before"] == "k=v\n" and res["diff"]["after"] == "k=w\n"
    assert f.read_text() == "k=v\n"


def test_backup_and_mode(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("k=v\n")
    res = run_module("replace", path=str(f), regexp="v", replace="w", backup=True, mode="0600")
    assert Path(res["backup_file"]).read_text() == "k=v\n"
    assert f.stat().st_mode & 0o777 == 0o600


def test_errors_say_what_is_wrong(tmp_path: Path) -> None:
    res = run_module("replace", path=str(tmp_path / "nope"), regexp="x")
    assert res["failed"] and res["msg"] == f"Path {tmp_path / 'nope'} does not exist !"
    assert run_module("replace", path=str(tmp_path), regexp="x")["msg"].endswith("is a directory !")
    (tmp_path / "f").write_text("x\n")
    bad = run_module("replace", path=str(tmp_path / "f"), regexp="(")
    assert bad["failed"] and bad["msg"].startswith("Unable to process replace due to error")
