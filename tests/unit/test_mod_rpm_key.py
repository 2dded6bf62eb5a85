"""rpm_key imports a key once, by key id, against FakeRedHatHost.

This is a FAKE of another OS family: rpm's database cannot be used on this Debian box, so the
host answers `rpm -q gpg-pubkey` / `rpm --import` / `rpm -e` from a set of key ids. The key is
real: Debian's archive key from this host, its id computed by gpg for comparison.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import CommandResult, Host
from provisioner.modules import host_modules, validate_args

BOOKWORM = "/usr/share/keyrings/debian-archive-bookworm-stable.gpg"


class FakeRedHatHost(Host):
    """Answers like rpm on a RedHat-family host; `rpm --import` adds the id the test says the file has."""

    def __init__(self, imported: set[str], id_of_imported_file: str, **kw: Any) -> None:
        super().__init__(facts={"pkg_mgr": "dnf", "os_family": "RedHat"}, **kw)
        self.imported, self.file_id = set(imported), id_of_imported_file
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:  # type: ignore[override]
        argv = list(argv)
        self.calls.append(argv)
        if argv[:3] == ["rpm", "-q", "gpg-pubkey"]:
            if not self.imported:
                return CommandResult(1, "package gpg-pubkey is not installed\n", "")
            return CommandResult(0, "".join(f"{k}\n" for k in sorted(self.imported)), "")
        if argv[:2] == ["rpm", "--import"]:
            assert Path(argv[2]).read_bytes()[:1] in (b"\x99", b"\x98", b"\xc6")   # a binary key file
            self.imported.add(self.file_id)
            return CommandResult(0, "", "")
        if argv[:3] == ["rpm", "-e", "--allmatches"]:
            self.imported.discard(argv[3].removeprefix("gpg-pubkey-"))
            return CommandResult(0, "", "")
        raise AssertionError(f"unexpected command {argv}")


def rpm_key(host: Host, **raw: Any) -> dict[str, Any]:
    spec = host_modules()["rpm_key"]
    return execute_module(spec.module, validate_args(spec, raw), host)


@pytest.fixture(scope="module")
def fpr(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("gnupg")
    out = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--show-keys", BOOKWORM],
                         capture_output=True, text=True, check=True).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def test_import_once(fpr: str) -> None:
    short = fpr[-8:].lower()
    host = FakeRedHatHost(set(), short, check_mode=True)
    planned = rpm_key(host, key=BOOKWORM)
    assert planned["changed"] and planned["key_ids"] == [short] and not host.imported

    host = FakeRedHatHost({"abcdef01"}, short)
    assert rpm_key(host, key=BOOKWORM, fingerprint=fpr)["changed"] and short in host.imported
    assert rpm_key(host, key=BOOKWORM)["changed"] is False
    assert len([c for c in host.calls if c[:2] == ["rpm", "--import"]]) == 1


def test_absent_by_file_or_id(fpr: str) -> None:
    short = fpr[-8:].lower()
    host = FakeRedHatHost({short, "abcdef01"}, short)
    assert rpm_key(host, key=f"0x{fpr[-16:]}", state="absent")["changed"]
    assert host.imported == {"abcdef01"}
    assert rpm_key(host, key=BOOKWORM, state="absent")["changed"] is False


def test_refusals(fpr: str, tmp_path: Path) -> None:
    host = FakeRedHatHost(set(), "x")
    assert "does not match" in rpm_key(host, key=BOOKWORM, fingerprint="0000 1111")["msg"]
    assert "is not imported" in rpm_key(host, key="DEADBEEF")["msg"]
    (tmp_path / "junk").write_text("junk")
    assert "not an OpenPGP public key" in rpm_key(host, key=str(tmp_path / "junk"))["msg"]
    assert "key not found" in rpm_key(host, key="/nonexistent/key.asc")["msg"]
