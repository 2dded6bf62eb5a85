"""apt_key stores Debian's real archive key as a keyring file, byte-identical to `gpg --dearmor`, once.

The keyrings directory is tmp_path (the module's KEYRINGS_DIR); keys come from this host's
debian-archive-keyring package, exported with a throwaway gpg home.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.modules import apt_key as mod
from tests.unit.modhelp import run_module, serve_directory

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg to prepare keys")
BOOKWORM = "/usr/share/keyrings/debian-archive-bookworm-stable.gpg"


def apt_key(check: bool = False, **raw: Any) -> dict[str, Any]:
    return run_module("apt_key", check=check, **raw)


def gpg(tmp_path: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", *argv], check=True, capture_output=True,
                          input=stdin.encode() if stdin is not None else None)


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(mod, "KEYRINGS_DIR", str(tmp_path / "keyrings"))
    exported = gpg(tmp_path, "--no-default-keyring", "--keyring", BOOKWORM, "--export", "--armor")
    armored = exported.stdout.decode()
    colons = gpg(tmp_path, "--with-colons", "--show-keys", BOOKWORM).stdout.decode()
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    return {"armored": armored, "binary": gpg(tmp_path, "--dearmor", stdin=armored).stdout, "fpr": fpr,
            "dir": tmp_path / "keyrings"}


def test_armored_data_is_stored_dearmored_once(key: dict[str, Any]) -> None:
    planned = apt_key(check=True, data=key["armored"], keyring="bookworm.gpg")
    assert planned["changed"] and not key["dir"].exists()
    result = apt_key(data=key["armored"], keyring="bookworm.gpg")
    path = key["dir"] / "bookworm.gpg"
    assert result["changed"] and result["keyring"] == str(path)
    assert path.read_bytes() == key["binary"]                     # what gpg --dearmor writes
    assert result["fp"] == key["fpr"] and result["short_id"] == key["fpr"][-8:]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert apt_key(data=key["armored"], keyring="bookworm.gpg")["changed"] is False


def test_asc_keyring_keeps_the_armor(key: dict[str, Any]) -> None:
    assert apt_key(data=key["armored"], keyring="bookworm.asc")["changed"]
    assert (key["dir"] / "bookworm.asc").read_text() == key["armored"]


def test_binary_file_is_named_after_it(key: dict[str, Any]) -> None:
    result = apt_key(file=BOOKWORM)
    assert result["changed"] and result["keyring"] == str(key["dir"] / "debian-archive-bookworm-stable.gpg")
    assert Path(result["keyring"]).read_bytes() == Path(BOOKWORM).read_bytes()
    assert apt_key(file=BOOKWORM)["changed"] is False


@pytest.fixture
def served(tmp_path: Path, key: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    www = tmp_path / "www"
    www.mkdir()
    (www / "debian.asc").write_text(key["armored"])
    with serve_directory(www) as (base, hits):
        yield f"{base}/debian.asc", hits


def test_url_with_id_is_not_fetched_again(key: dict[str, Any], served: tuple[str, list[str]]) -> None:
    url, hits = served
    assert apt_key(url=url, id=key["fpr"][-16:])["changed"]
    assert (key["dir"] / f"{key['fpr'][-16:]}.gpg").read_bytes() == key["binary"]
    fetched = len(hits)
    assert apt_key(url=url, id=key["fpr"][-16:])["changed"] is False and len(hits) == fetched
    assert apt_key(url=url)["changed"]                            # named debian.gpg: a new file
    assert apt_key(url=url)["changed"] is False and len(hits) == fetched + 2   # no id: fetched, same bytes


def test_absent_and_refusals(key: dict[str, Any]) -> None:
    apt_key(data=key["armored"], keyring="bookworm.gpg")
    assert apt_key(keyring="bookworm.gpg", state="absent")["changed"]
    assert not (key["dir"] / "bookworm.gpg").exists()
    assert apt_key(keyring="bookworm.gpg", state="absent")["changed"] is False
    wrong = apt_key(data=key["armored"], keyring="x.gpg", id="0xDEADBEEF")
    assert wrong["failed"] and "does not have id 0xDEADBEEF" in wrong["msg"]
    assert "not an OpenPGP public key" in apt_key(data="hello", keyring="x.gpg")["msg"]
    assert "keyserver is not supported" in apt_key(id="ABCD", keyserver="keyserver.ubuntu.com")["msg"]
