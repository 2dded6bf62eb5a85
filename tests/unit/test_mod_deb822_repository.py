"""deb822_repository writes a .sources file apt itself accepts, once; keys from a URL are fetched once.

The sources and keyrings directories are pointed at tmp_path (the module's path constants), so
this host's real APT configuration is never touched; apt-get --print-uris reads the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.modules import deb822_repository as mod
from tests.unit.modhelp import run_module, serve_directory

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@pytest.fixture(autouse=True)
def apt_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    monkeypatch.setattr(mod, "SOURCES_DIR", str(tmp_path / "sources.list.d"))
    monkeypatch.setattr(mod, "KEYRINGS_DIR", str(tmp_path / "keyrings"))
    return tmp_path


def armored_key(tmp_path: Path) -> str:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    return subprocess.run(["gpg", "--homedir", str(home), "--no-default-keyring", "--keyring", DEBIAN_KEYRING,
                           "--export", "--armor"], capture_output=True, text=True, check=True).stdout


def apt_reads(sources_dir: Path) -> str:
    """The URIs apt would fetch for these sources: proves apt parses the file."""
    out = subprocess.run(["apt-get", "update", "--print-uris", "-o", f"Dir::Etc::SourceParts={sources_dir}",
                          "-o", "Dir::Etc::SourceList=/dev/null"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def deb822(check: bool = False, diff: bool = False, **raw: Any) -> dict[str, Any]:
    return run_module("deb822_repository", check=check, diff=diff, **raw)


REPO: dict[str, Any] = {"name": "debian extra", "uris": "http://deb.debian.org/debian", "suites": "bookworm",
        "components": ["main", "contrib"], "signed_by": DEBIAN_KEYRING, "architectures": "amd64"}


def test_writes_once_in_ansibles_format(apt_dirs: Path) -> None:
    dest = apt_dirs / "sources.list.d" / "debian-extra.sources"
    planned = deb822(check=True, diff=True, **REPO)
    assert planned["changed"] and not dest.exists()
    assert "X-Repolib-Name: debian extra" in planned["diff"]["after"]

    result = deb822(**REPO)
    assert result["changed"] and result["dest"] == str(dest) and result["key_filename"] == DEBIAN_KEYRING
    assert dest.read_text() == result["repo"] == (
        "Architectures: amd64\nComponents: main contrib\nX-Repolib-Name: debian extra\n"
        f"Signed-By: {DEBIAN_KEYRING}\n"
        "Suites: bookworm\nTypes: deb\nURIs: http://deb.debian.org/debian\n")
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    assert "bookworm/main/binary-amd64/Packages" in apt_reads(dest.parent)

    assert deb822(**REPO)["changed"] is False
    assert deb822(**{**REPO, "components": "main"})["changed"]
    assert "contrib" not in dest.read_text()
    assert deb822(**{**REPO, "components": "main", "mode": "0600"})["changed"]
    assert oct(dest.stat().st_mode & 0o777) == "0o600"


def test_inline_key_becomes_a_multiline_field(apt_dirs: Path) -> None:
    if not shutil.which("gpg"):
        pytest.skip("needs gpg to export a real key")
    key = armored_key(apt_dirs)
    args = {**REPO, "name": "inline", "signed_by": key, "enabled": True}
    result = deb822(**args)
    text = (apt_dirs / "sources.list.d" / "inline.sources").read_text()
    assert result["changed"] and result["key_filename"] is None
    assert "Enabled: yes\n" in text
    assert "Signed-By:\n    -----BEGIN PGP PUBLIC KEY BLOCK-----\n    .\n" in text
    assert apt_reads(apt_dirs / "sources.list.d")
    assert deb822(**args)["changed"] is False


@pytest.fixture
def key_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(DEBIAN_KEYRING, served / "key.gpg")
    with serve_directory(served) as (base, hits):
        yield f"{base}/key.gpg", hits


def test_key_url_is_fetched_once_into_keyrings(apt_dirs: Path, key_server: tuple[str, list[str]]) -> None:
    url, hits = key_server
    args = {**REPO, "name": "fetched", "signed_by": url}
    assert deb822(check=True, **args)["changed"]
    assert not (apt_dirs / "keyrings").exists()

    result = deb822(**args)
    key = apt_dirs / "keyrings" / "fetched.gpg"               # binary key: .gpg, as Ansible names it
    assert result["changed"] and result["key_filename"] == str(key)
    assert key.read_bytes() == Path(DEBIAN_KEYRING).read_bytes()
    assert f"Signed-By: {key}\n" in result["repo"]
    fetched = len(hits)
    assert deb822(**args)["changed"] is False
    assert len(hits) == fetched                                # present key file: no download

    gone = deb822(name="fetched", state="absent")
    assert gone["changed"] and not key.exists()
    assert not (apt_dirs / "sources.list.d" / "fetched.sources").exists()
    assert deb822(name="fetched", state="absent")["changed"] is False


def test_unreachable_key_url_fails_clearly() -> None:
    result = deb822(**{**REPO, "signed_by": "http://127.0.0.1:9/nokey.gpg"})
    assert result["failed"] and result["msg"].startswith("Could not fetch signed_by key")


def test_name_cannot_escape_the_directory() -> None:
    assert "invalid repository name" in deb822(**{**REPO, "name": "../x"})["msg"]
    assert os.path.exists(mod.SOURCES_DIR)
