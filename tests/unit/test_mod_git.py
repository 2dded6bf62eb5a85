"""git: real repositories on this machine (a bare one served over file://): clone, no change on a
second run, update when the remote moves, versions (branch, tag, commit), local changes, check mode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.modhelp import run_module

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
       "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> dict[str, str]:
    """A bare repo: main (2 commits, tag v1 annotated on the first), branch dev; and a work tree to push from."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "a.txt").write_text("one\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "one")
    first = git(work, "rev-parse", "HEAD")
    git(work, "tag", "-a", "v1", "-m", "release 1")
    (work / "a.txt").write_text("two\n")
    git(work, "commit", "-qam", "two")
    git(work, "branch", "dev", first)
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    git(work, "remote", "add", "origin", str(bare))
    return {"url": f"file://{bare}", "work": str(work), "first": first, "head": git(work, "rev-parse", "HEAD")}


def test_clone_then_no_change_then_update(remote: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "co" / "app"
    check = run_module("git", check=True, repo=remote["url"], dest=str(dest))
    assert check["changed"] and check["after"] == remote["head"] and not dest.exists()
    out = run_module("git", repo=remote["url"], dest=str(dest))
    assert out["changed"] is True and out["before"] is None and out["after"] == remote["head"]
    assert (dest / "a.txt").read_text() == "two\n"
    again = run_module("git", repo=remote["url"], dest=str(dest))
    assert again["changed"] is False and again["before"] == again["after"] == remote["head"]
    assert again["remote_url_changed"] is False
    work = Path(remote["work"])
    (work / "a.txt").write_text("three\n")
    git(work, "commit", "-qam", "three")
    git(work, "push", "-q", "origin", "main")
    new = git(work, "rev-parse", "HEAD")
    check = run_module("git", check=True, repo=remote["url"], dest=str(dest))
    assert check["changed"] and check["after"] == new and (dest / "a.txt").read_text() == "two\n"
    out = run_module("git", repo=remote["url"], dest=str(dest))
    assert out["changed"] and out["before"] == remote["head"] and out["after"] == new
    assert (dest / "a.txt").read_text() == "three\n"
    assert run_module("git", repo=remote["url"], dest=str(dest), update=False)["changed"] is False


def test_versions_tag_branch_commit(remote: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "app"
    out = run_module("git", repo=remote["url"], dest=str(dest), version="v1")
    assert out["after"] == remote["first"] and (dest / "a.txt").read_text() == "one\n"
    assert run_module("git", repo=remote["url"], dest=str(dest), version="v1")["changed"] is False
    out = run_module("git", repo=remote["url"], dest=str(dest), version="main")
    assert out["changed"] and out["after"] == remote["head"]
    assert git(dest, "symbolic-ref", "--short", "HEAD") == "main"
    assert run_module("git", repo=remote["url"], dest=str(dest), version="main")["changed"] is False
    out = run_module("git", repo=remote["url"], dest=str(dest), version=remote["first"][:10])
    assert out["changed"] and out["after"] == remote["first"]
    assert run_module("git", repo=remote["url"], dest=str(dest), version=remote["first"][:10])["changed"] is False
    out = run_module("git", repo=remote["url"], dest=str(dest), version="dev")  # the same commit as v1:
    assert out["changed"] is False and git(dest, "symbolic-ref", "--short", "HEAD") == "dev"  # switched
    bad = run_module("git", repo=remote["url"], dest=str(dest), version="nope")
    assert bad["failed"] and "Cannot find version nope" in bad["msg"]


def test_local_changes_need_force_and_url_change(remote: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "app"
    run_module("git", repo=remote["url"], dest=str(dest))
    (dest / "a.txt").write_text("mine\n")
    out = run_module("git", repo=remote["url"], dest=str(dest))
    assert out["failed"] and "Local modifications exist" in out["msg"]
    out = run_module("git", repo=remote["url"], dest=str(dest), force=True)
    assert out["changed"] and (dest / "a.txt").read_text() == "two\n"
    other = remote["url"].replace("file://", "")  # the same repository by another URL
    out = run_module("git", repo=other, dest=str(dest))
    assert out["changed"] and out["remote_url_changed"] is True and out["before"] == out["after"]
    assert git(dest, "config", "--get", "remote.origin.url") == other


def test_depth_bare_clone_false_and_refusals(remote: dict[str, str], tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    out = run_module("git", repo=remote["url"], dest=str(shallow), depth=1)
    assert out["changed"] and git(shallow, "rev-list", "--count", "HEAD") == "1"
    bare = tmp_path / "mirror.git"
    out = run_module("git", repo=remote["url"], dest=str(bare), bare=True)
    assert out["changed"] and (bare / "HEAD").exists() and not (bare / ".git").exists()
    assert run_module("git", repo=remote["url"], dest=str(bare), bare=True)["changed"] is False
    out = run_module("git", repo=remote["url"], dest=str(tmp_path / "none"), clone=False)
    assert out["changed"] is True and out["after"] == remote["head"] and not (tmp_path / "none").exists()
    out = run_module("git", repo=remote["url"], dest=str(tmp_path / "x"), archive="/tmp/x.zip")
    assert out["failed"] and "archive is not supported" in out["msg"]
    down = run_module("git", repo=f"file://{tmp_path}/missing.git", dest=str(tmp_path / "y"))
    assert down["failed"] and "ls-remote" in down["msg"]
