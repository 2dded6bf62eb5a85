"""slurp: a file's bytes come back base64-encoded; missing files and directories fail clearly."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.unit.modhelp import run_module


def test_slurp_returns_base64_of_binary_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 3
    (tmp_path / "f.bin").write_bytes(data)
    out = run_module("slurp", src=str(tmp_path / "f.bin"))
    assert out["failed"] is False and out["changed"] is False
    assert base64.b64decode(out["content"]) == data
    assert out["encoding"] == "base64" and out["source"] == str(tmp_path / "f.bin")
    again = run_module("slurp", check=True, path=str(tmp_path / "f.bin"))  # alias, check mode reads too
    assert again["content"] == out["content"]


def test_slurp_missing_and_directory_fail(tmp_path: Path) -> None:
    out = run_module("slurp", src=str(tmp_path / "nope"))
    assert out["failed"] and "file not found" in out["msg"]
    out = run_module("slurp", src=str(tmp_path))
    assert out["failed"] and "is a directory" in out["msg"]
