"""apt_repository keeps one source line, in a file apt itself reads, and refreshes the cache only on change.

sources.list and sources.list.d are pointed at tmp_path (the module's path constants). Because apt
would never read those, `apt-get update` is answered by UpdateCountingHost (a stand-in for that one
command, counting it); every other command runs for real.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import CommandResult, Host
from provisioner.modules import apt_repository as mod
from provisioner.modules import host_modules, validate_args

LINE = ("deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm contrib")


class UpdateCountingHost(Host):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.updates = 0

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:  # type: ignore[override]
        if list(argv[:2]) == ["apt-get", "update"]:
            self.updates += 1
            return CommandResult(0, "Reading package lists...\n", "")
        return super().run(argv, **kw)


def apt_repository(host: Host | None = None, **raw: Any) -> dict[str, Any]:
    spec = host_modules()["apt_repository"]
    return execute_module(spec.module, validate_args(spec, raw), host or UpdateCountingHost())


@pytest.fixture(autouse=True)
def apt_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    monkeypatch.setattr(mod, "SOURCES_LIST", str(tmp_path / "sources.list"))
    monkeypatch.setattr(mod, "SOURCES_DIR", str(tmp_path / "sources.list.d"))
    return tmp_path


def apt_reads(root: Path) -> str:
    out = subprocess.run(["apt-get", "update", "--print-uris",
                          "-o", f"Dir::Etc::SourceParts={root}/sources.list.d",
                          "-o", f"Dir::Etc::SourceList={root}/sources.list"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_add_once_update_once(apt_dirs: Path) -> None:
    target = apt_dirs / "sources.list.d" / "deb_debian_org_debian.list"
    host = UpdateCountingHost(check_mode=True, diff_mode=True)
    planned = apt_repository(host, repo=LINE)
    assert planned["changed"] and planned["diff"]["after"] == LINE + "\n"
    assert not target.exists() and host.updates == 0

    host = UpdateCountingHost()
    result = apt_repository(host, repo=LINE)
    assert result["changed"] and result["sources_added"] == [str(target)] and host.updates == 1
    assert target.read_text() == LINE + "\n" and oct(target.stat().st_mode & 0o777) == "0o644"
    assert "bookworm/contrib/binary-amd64/Packages" in apt_reads(apt_dirs)

    host = UpdateCountingHost()
    assert apt_repository(host, repo="  " + LINE.replace(" ", "  "))["changed"] is False
    assert host.updates == 0


def test_filename_mode_and_no_update(apt_dirs: Path) -> None:
    host = UpdateCountingHost()
    result = apt_repository(host, repo=LINE, filename="extra", mode="0600", update_cache=False)
    path = apt_dirs / "sources.list.d" / "extra.list"
    assert result["changed"] and path.exists() and host.updates == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_source_present_elsewhere_or_commented_out(apt_dirs: Path) -> None:
    assert apt_repository(repo="deb http://deb.debian.org/debian bookworm main")["changed"] is False
    other = apt_dirs / "sources.list.d" / "other.list"
    other.write_text("# a comment\n# " + LINE + "\n")
    assert apt_repository(repo=LINE)["changed"]
    assert other.read_text() == "# a comment\n" + LINE + "\n"
    assert not (apt_dirs / "sources.list.d" / "deb_debian_org_debian.list").exists()


def test_absent_removes_the_line_and_an_emptied_file(apt_dirs: Path) -> None:
    apt_repository(repo=LINE)
    target = apt_dirs / "sources.list.d" / "deb_debian_org_debian.list"
    host = UpdateCountingHost()
    gone = apt_repository(host, repo=LINE, state="absent")
    assert gone["changed"] and gone["sources_removed"] == [str(target)] and not target.exists()
    assert host.updates == 1
    assert apt_repository(repo=LINE, state="absent")["changed"] is False
    assert (apt_dirs / "sources.list").read_text().startswith("deb http")


def test_refusals() -> None:
    assert "not supported" in apt_repository(repo="ppa:deadsnakes/ppa")["msg"]
    assert "Invalid repository" in apt_repository(repo="http://example.com stable main")["msg"]
