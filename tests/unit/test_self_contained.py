"""The suite and the product carry their own data: nothing under tests/ or provisioner/ reads a
checkout's sibling directories, so that a plain clone runs every test.

The needles are the siblings that really stand beside this checkout (CI lays a data folder there),
each as `../NAME` and as its absolute path, plus a climb out of the repo by `parents[N]`; so this file
names no directory of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _needles() -> list[str]:
    siblings = [p for p in REPO.parent.iterdir() if p.is_dir() and p != REPO] if REPO.parent != REPO else []
    return [needle for p in siblings for needle in (f"../{p.name}/", f"../{p.name}\"", f"{p}/")]


def _climbs_out(path: Path, line: str) -> bool:
    """`Path(__file__)...parents[N]` reaching above the repo root from this file's depth."""
    depth = len(path.relative_to(REPO).parts)  # parents[depth - 1] is the repo root
    return any(int(n) >= depth for n in re.findall(r"__file__.*\.parents\[(\d+)\]", line))


def test_no_source_reads_outside_the_repo() -> None:
    needles = _needles()
    offenders = []
    for top in ("tests", "provisioner"):
        for path in sorted((REPO / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".png", ".sqlite"):
                continue
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if any(needle in line for needle in needles) or _climbs_out(path, line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "reads outside the repo (copy the data into tests/data/):\n" + "\n".join(offenders)


def test_the_guard_sees_a_climb_out_of_the_repo() -> None:
    """The check itself can fail: a file two levels down reaching three parents up is caught."""
    here = REPO / "tests" / "unit" / "x.py"
    climb = "DATA = Path(__file__).resolve().parents[" + "3] / 'x'"  # in pieces: not a match of this file
    assert _climbs_out(here, climb)
    assert not _climbs_out(here, "REPO = Path(__file__).resolve().parents[2]")


def test_captured_fixtures_are_in_the_repo() -> None:
    data = REPO / "tests" / "data" / "h100-ubuntu2404"
    for name in ("nvidia-smi.txt", "nvidia-smi-query.csv", "sysfs-pci.txt", "os-release.txt"):
        assert (data / name).stat().st_size > 0, name
