"""unarchive with real archives built in the test: a cuDNN-like tar.xz with a symlink chain, tgz, zip,
idempotence against dest, creates, include/exclude, and refusal of members that escape dest."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.unit.modhelp import run_module

MTIME = 1_700_000_000


def add(tf: tarfile.TarFile, name: str, data: bytes | None = None, link: str | None = None,
        mode: int = 0o644, kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = MTIME, mode
    if data is None and link is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif link is not None:
        info.type, info.linkname = kind if kind != tarfile.REGTYPE else tarfile.SYMTYPE, link
    else:
        info.size = len(data or b"")
    tf.addfile(info, io.BytesIO(data) if data is not None else None)


def cudnn_tar(path: Path, compression: str = "xz") -> Path:
    """Laid out like cudnn-linux-x86_64-9.x_cudaXX-archive.tar.xz: include/, lib/ with .so chains."""
    with tarfile.open(path, f"w:{compression}") as tf:  # type: ignore[call-overload]
        add(tf, "cudnn/")
        add(tf, "cudnn/include/")
        add(tf, "cudnn/include/cudnn.h", b"#define CUDNN_MAJOR 9\n")
        add(tf, "cudnn/lib/")
        add(tf, "cudnn/lib/libcudnn.so.9.1.0", b"\x7fELF" + b"\0" * 100, mode=0o755)
        add(tf, "cudnn/lib/libcudnn.so.9", link="libcudnn.so.9.1.0")
        add(tf, "cudnn/lib/libcudnn.so", link="libcudnn.so.9")
        add(tf, "cudnn/LICENSE", b"license\n")
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "opt"
    d.mkdir()
    return d


def test_tar_xz_extracts_with_symlinks_then_no_change(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "cudnn.tar.xz")
    res = run_module("unarchive", src=str(src), dest=str(dest), remote_src=True, list_files=True)
    assert res["changed"] and not res["failed"] and res["handler"] == "TarXzArchive"
    lib = dest / "cudnn" / "lib"
    assert os.readlink(lib / "libcudnn.so") == "libcudnn.so.9" and os.readlink(lib / "libcudnn.so.9") == "libcudnn.so.9.1.0"
    assert (lib / "libcudnn.so").read_bytes().startswith(b"\x7fELF")
    assert (lib / "libcudnn.so.9.1.0").stat().st_mode & 0o777 == 0o755
    assert (dest / "cudnn" / "include" / "cudnn.h").stat().st_mtime == MTIME
    assert "cudnn/lib/libcudnn.so" in res["files"]
    again = run_module("unarchive", src=str(src), dest=str(dest), remote_src=True)
    assert again["changed"] is False


def test_check_mode_writes_nothing_and_diff_lists_members(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "cudnn.tgz", "gz")
    res = run_module("unarchive", check=True, diff=True, src=str(src), dest=str(dest))
    assert res["changed"] and list(dest.iterdir()) == [] and res["handler"] == "TgzArchive"
    assert "cudnn/lib/libcudnn.so\n" in res["diff"]["after"]


def test_only_the_changed_member_is_rewritten(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "cudnn.tar.bz2", "bz2")
    run_module("unarchive", src=str(src), dest=str(dest))
    header = dest / "cudnn" / "include" / "cudnn.h"
    header.write_text("edited by hand\n")
    lic_inode = (dest / "cudnn" / "LICENSE").stat().st_ino
    res = run_module("unarchive", diff=True, src=str(src), dest=str(dest))
    assert res["changed"] and res["diff"]["after"] == "cudnn/include/cudnn.h\n"
    assert header.read_text() == "#define CUDNN_MAJOR 9\n"
    assert (dest / "cudnn" / "LICENSE").stat().st_ino == lic_inode


def test_keep_newer_leaves_a_newer_file(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "c.tar")
    run_module("unarchive", src=str(src), dest=str(dest))
    lic = dest / "cudnn" / "LICENSE"
    lic.write_text("local\n")  # mtime now, newer than the archive's
    assert run_module("unarchive", src=str(src), dest=str(dest), keep_newer=True)["changed"] is False
    assert lic.read_text() == "local\n"


def test_zip_with_a_symlink(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "a.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("pkg/", "")
        info = zipfile.ZipInfo("pkg/run.sh", date_time=(2024, 1, 2, 3, 4, 6))
        info.external_attr = (0o100755 << 16)
        zf.writestr(info, "#!/bin/sh\n")
        link = zipfile.ZipInfo("pkg/run", date_time=(2024, 1, 2, 3, 4, 6))
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "run.sh")
    res = run_module("unarchive", src=str(src), dest=str(dest))
    assert res["changed"] and res["handler"] == "ZipArchive"
    assert os.readlink(dest / "pkg" / "run") == "run.sh" and (dest / "pkg" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert run_module("unarchive", src=str(src), dest=str(dest))["changed"] is False


def test_creates_short_circuits(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "c.tar.xz")
    (dest / "marker").write_text("")
    res = run_module("unarchive", src=str(src), dest=str(dest), creates=str(dest / "marker"))
    assert res["changed"] is False and res["skipped"] and "skipped, since" in res["msg"]
    assert not (dest / "cudnn").exists()


def test_include_and_exclude(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "c.tar.xz")
    run_module("unarchive", src=str(src), dest=str(dest), exclude=["cudnn/LICENSE", "cudnn/include/*"])
    assert not (dest / "cudnn" / "LICENSE").exists() and not (dest / "cudnn" / "include" / "cudnn.h").exists()
    assert (dest / "cudnn" / "lib" / "libcudnn.so.9.1.0").exists()
    only = tmp_path / "only"
    only.mkdir()
    run_module("unarchive", src=str(src), dest=str(only), include="cudnn/include/*")  # comma list form
    assert [p.name for p in (only / "cudnn").iterdir()] == ["include"]


def test_mode_and_owner_arguments_apply_to_every_member(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "c.tar.xz")
    run_module("unarchive", src=str(src), dest=str(dest), mode="u=rwX,g=rX,o=")
    assert (dest / "cudnn" / "LICENSE").stat().st_mode & 0o777 == 0o640
    assert (dest / "cudnn" / "lib").stat().st_mode & 0o777 == 0o750
    assert run_module("unarchive", src=str(src), dest=str(dest), mode="u=rwX,g=rX,o=")["changed"] is False


def test_url_src_is_downloaded_to_a_temp_file_and_removed(tmp_path: Path, dest: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = cudnn_tar(tmp_path / "c.tar.xz")
    temps = tmp_path / "tmp"
    temps.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temps))
    url = src.as_uri()
    assert run_module("unarchive", check=True, src=url, dest=str(dest))["changed"]
    res = run_module("unarchive", src=url, dest=str(dest))
    assert res["changed"] and res["src"] == url and (dest / "cudnn" / "LICENSE").exists()
    assert run_module("unarchive", src=url, dest=str(dest))["changed"] is False
    assert list(temps.iterdir()) == []


@pytest.mark.parametrize("name, link, why", [
    ("../evil", None, "outside dest"),
    ("/etc/evil", None, "outside dest"),
    ("a/../../evil", None, "outside dest"),
    ("escape", "../../etc/passwd", "points outside"),
    ("abs", "/etc/passwd", "points outside"),
])
def test_members_escaping_dest_are_refused_before_writing(tmp_path: Path, dest: Path, name: str,
                                                          link: str | None, why: str) -> None:
    src = tmp_path / "evil.tar"
    with tarfile.open(src, "w") as tf:
        add(tf, "ok.txt", b"fine")
        add(tf, name, b"x" if link is None else None, link=link)
    res = run_module("unarchive", src=str(src), dest=str(dest))
    assert res["failed"] and why in res["msg"]
    assert list(dest.iterdir()) == []


def test_link_through_a_link_chain_cannot_escape(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "chain.tar"
    with tarfile.open(src, "w") as tf:
        add(tf, "d", link=".")  # d -> . : "d/d/../.." looks inside but resolves above dest
        add(tf, "x", link="d/d/../../outside")
    res = run_module("unarchive", src=str(src), dest=str(dest))
    assert res["failed"] and "points outside" in res["msg"]
    assert list(dest.iterdir()) == []  # seen in the plan, before anything is written


def test_file_under_a_link_to_outside_is_refused(tmp_path: Path, dest: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "lib").symlink_to(outside)  # already on disk, not from the archive
    src = tmp_path / "a.tar"
    with tarfile.open(src, "w") as tf:
        add(tf, "lib/libx.so", b"x")
    res = run_module("unarchive", src=str(src), dest=str(dest))
    assert res["failed"] and "leads outside" in res["msg"] and list(outside.iterdir()) == []


def test_bad_inputs(tmp_path: Path, dest: Path) -> None:
    src = cudnn_tar(tmp_path / "c.tar.xz")
    assert "is not a directory" in run_module("unarchive", src=str(src), dest=str(tmp_path / "no"))["msg"]
    assert "does not exist" in run_module("unarchive", src=str(tmp_path / "none.tgz"), dest=str(dest))["msg"]
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive at all" * 10)
    assert "not a readable tar" in run_module("unarchive", src=str(junk), dest=str(dest))["msg"]


def test_check_mode_with_archive_and_directory_not_there_yet(tmp_path: Path) -> None:
    result = run_module("unarchive", check=True, src=str(tmp_path / "later.tar.xz"), dest=str(tmp_path / "later"),
                        remote_src=True)
    assert result["changed"] and not result["failed"] and "not there yet" in result["msg"]
    assert not (tmp_path / "later").exists()
