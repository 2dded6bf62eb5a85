"""blockinfile on real files: insert, update in place, remove, markers, placement, check mode, diff."""

from __future__ import annotations

from pathlib import Path

from tests.unit.modhelp import run_module

BEGIN, END = "# BEGIN ANSIBLE MANAGED BLOCK\n", "# END ANSIBLE MANAGED BLOCK\n"


def test_block_inserted_at_eof_then_no_change(tmp_path: Path) -> None:
    f = tmp_path / "bashrc"
    f.write_text("alias ll='ls -l'\n")
    res = run_module("blockinfile", path=str(f), block="export CUDA_HOME=/usr/local/cuda\nexport X=1")
    assert res["changed"] and res["msg"] == "Block inserted"
    assert f.read_text() == "alias ll='ls -l'\n" + BEGIN + "export CUDA_HOME=/usr/local/cuda\nexport X=1\n" + END
    again = run_module("blockinfile", path=str(f), block="export CUDA_HOME=/usr/local/cuda\nexport X=1")
    assert again["changed"] is False


def test_block_updated_in_place_and_removed(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("top\n" + BEGIN + "old\n" + END + "bottom\n")
    assert run_module("blockinfile", path=str(f), content="new")["changed"]  # alias content
    assert f.read_text() == "top\n" + BEGIN + "new\n" + END + "bottom\n"
    res = run_module("blockinfile", path=str(f), state="absent")
    assert res["msg"] == "Block removed" and f.read_text() == "top\nbottom\n"
    assert run_module("blockinfile", path=str(f), state="absent")["changed"] is False


def test_empty_block_removes_the_markers(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text(BEGIN + "x\n" + END)
    assert run_module("blockinfile", path=str(f), block="")["changed"] and f.read_text() == ""


def test_custom_marker_and_begin_end_words(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("")
    run_module("blockinfile", path=str(f), block="k", marker="// {mark} provision", marker_begin="START",
               marker_end="STOP")
    assert f.read_text() == "// START provision\nk\n// STOP provision\n"


def test_insertbefore_bof_and_insertafter_regex(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("a\n[section]\nb\n")
    run_module("blockinfile", path=str(f), block="first", insertbefore="BOF", marker="# {mark} one")
    assert f.read_text().startswith("# BEGIN one\nfirst\n# END one\na\n")
    run_module("blockinfile", path=str(f), block="in", insertafter=r"^\[section\]", marker="# {mark} two")
    assert "[section]\n# BEGIN two\nin\n# END two\nb\n" in f.read_text()


def test_prepend_and_append_newline(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("a\nb\n")
    run_module("blockinfile", path=str(f), block="x", insertafter="^a$", prepend_newline=True, append_newline=True)
    assert f.read_text() == "a\n\n" + BEGIN + "x\n" + END + "\nb\n"
    again = run_module("blockinfile", path=str(f), block="x", insertafter="^a$", prepend_newline=True,
                       append_newline=True)
    assert again["changed"] is False


def test_check_mode_diff_and_create(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "new.conf"
    missing = run_module("blockinfile", path=str(f), block="x")
    assert missing["failed"] and missing["rc"] == 257
    res = run_module("blockinfile", check=True, diff=True, path=str(f), block="x", create=True)
    assert res["changed"] and res["msg"] == "File created" and not f.exists()
    assert res["diff"]["before"] == "" and res["diff"]["after"] == BEGIN + "x\n" + END
    assert run_module("blockinfile", path=str(f), block="x", create=True)["changed"]
    assert f.read_text() == BEGIN + "x\n" + END


def test_backup_file_is_returned(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("a\n")
    res = run_module("blockinfile", path=str(f), block="x", backup=True)
    assert Path(res["backup_file"]).read_text() == "a\n"
