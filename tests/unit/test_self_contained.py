"""The suite and the product carry their own data: nothing under tests/ or provisioner/ reads a
checkout's sibling directories, so that a plain clone runs every test."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/work/" + "shared", '"shared" / "fix' + 'tures"')


def test_no_source_reads_outside_the_repo() -> None:
    offenders = []
    for top in ("tests", "provisioner"):
        for path in sorted((REPO / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if any(needle in line for needle in OUTSIDE):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "reads outside the repo (copy the data into tests/data/):\n" + "\n".join(offenders)


def test_captured_fixtures_are_in_the_repo() -> None:
    data = REPO / "tests" / "data" / "h100-ubuntu2404"
    for name in ("nvidia-smi.txt", "nvidia-smi-query.csv", "sysfs-pci.txt", "os-release.txt"):
        assert (data / name).stat().st_size > 0, name
