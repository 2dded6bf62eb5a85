"""rust_project and cargo_build on real files, with this machine's real cargo (no crates needed: the
project is written without dependencies, so only its plain form is built)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.modhelp import run_module

ROOT = Path(__file__).resolve().parents[2]
MAIN_RS = (ROOT / "roles" / "rust_project" / "files" / "main.rs").read_text()
DEPS = {"ndarray": "0.15", "cudarc": {"version": "0.12", "default-features": False, "features": ["driver"]},
        "rayon": "1.8", "serde": {"version": "1.0", "features": ["derive"]}}
FORMS = {"rayon": ["rayon"], "cuda": ["cudarc"]}


def project(path: Path, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"user": getpass.getuser(), "path": str(path), "force_path": True, "main_rs": MAIN_RS,
                            "dependencies": DEPS, "dev_dependencies": {"criterion": "0.5"}, "forms": FORMS,
                            "profile_release": {"opt-level": 3, "lto": True, "codegen-units": 1}}
    args.update(kw)
    check = args.pop("check", False)
    return run_module("rust_project", check=check, **args)


def debian_registry(tmp_path: Path) -> Path:
    """A directory source laid out as Debian's: rayon and serde (and criterion), no ndarray, no cudarc."""
    registry = tmp_path / "registry"
    for crate in ("rayon-1.10.0", "rayon-core-1.12.1", "serde-1.0.217", "criterion-0.5.1"):
        (registry / crate).mkdir(parents=True)
        (registry / crate / "Cargo.toml").write_text("[package]\n")
    return registry


def test_crates_io_writes_the_chapters_project_then_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gpu-ml"
    planned = project(path, check=True)
    assert planned["changed"] and planned["written"] == [".cargo/config.toml", "Cargo.toml", "src/main.rs"]
    assert not path.exists()                                   # check mode writes nothing
    first = project(path)
    assert first["changed"] and first["forms"] == ["rayon", "cuda"] and first["left_out"] == {}
    toml = (path / "Cargo.toml").read_text()
    assert 'cudarc = { version = "0.12", default-features = false, features = ["driver"], optional = true }' in toml
    assert 'ndarray = "0.15"' in toml and '[dev-dependencies]\ncriterion = "0.5"' in toml
    assert 'default = ["rayon", "cuda"]\nrayon = ["dep:rayon"]\ncuda = ["dep:cudarc"]' in toml
    assert "[profile.release]\nopt-level = 3\nlto = true\ncodegen-units = 1\n" in toml
    assert "replace-with" not in (path / ".cargo/config.toml").read_text()
    assert (path / "src/main.rs").read_text() == MAIN_RS
    record = json.loads((path / ".provision-rust-project.json").read_text())
    assert sorted(record) == [".cargo/config.toml", "Cargo.toml", "src/main.rs"]
    assert project(path)["changed"] is False


def test_debian_source_leaves_out_what_is_not_packaged_and_says_why(tmp_path: Path) -> None:
    registry = debian_registry(tmp_path)
    res = project(tmp_path / "p", crate_source="debian", source_dir=str(registry))
    assert res["forms"] == ["rayon"]
    assert res["left_out"] == {
        "cuda": f"needs cudarc: not packaged by this distribution (no librust-cudarc-dev in {registry})",
        "ndarray": f"not packaged by this distribution (no librust-ndarray-dev in {registry})"}
    toml = (tmp_path / "p/Cargo.toml").read_text()
    assert "cudarc" not in toml and "ndarray" not in toml and 'default = ["rayon"]\nrayon = ["dep:rayon"]\n' in toml
    config = (tmp_path / "p/.cargo/config.toml").read_text()
    assert f'replace-with = "provision-debian"\n\n[source.provision-debian]\ndirectory = "{registry}"' in config


def test_a_file_the_user_changed_is_kept_and_an_untouched_one_is_updated(tmp_path: Path) -> None:
    path = tmp_path / "p"
    project(path)
    (path / "src/main.rs").write_text("fn main() { println!(\"mine\"); }\n")
    res = project(path, edition="2024")                        # Cargo.toml is still provision's: updated
    assert res["changed"] and res["kept"] == ["src/main.rs"] and res["written"] == ["Cargo.toml"]
    assert "changed by the user, left as they are: src/main.rs" in res["msg"]
    assert (path / "src/main.rs").read_text() == "fn main() { println!(\"mine\"); }\n"
    assert 'edition = "2024"' in (path / "Cargo.toml").read_text()
    again = project(path, edition="2024")
    assert again["changed"] is False and again["kept"] == ["src/main.rs"]


@pytest.mark.parametrize(("kw", "msg"), [
    ({"crate_source": "pypi"}, "rust_project: unknown crate source 'pypi' (use one of: auto, crates-io, vendor, debian)"),
    ({"user": "no-such-user-here"}, "rust_project: user 'no-such-user-here' does not exist on this host"),
    ({"path": "/opt/elsewhere", "force_path": False}, "rust_project: /opt/elsewhere is outside"),
    ({"crate_source": "vendor", "source_dir": "/nonexistent"}, "rust_project: crate source vendor needs its directory"),
])
def test_bad_input_is_one_line(tmp_path: Path, kw: dict[str, Any], msg: str) -> None:
    res = project(kw.pop("path", tmp_path / "p"), **kw)
    assert res["failed"] and res["msg"].startswith(msg), res["msg"]
    assert "\n" not in res["msg"]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed on this machine")
def test_cargo_builds_once_runs_the_plain_form_and_records_its_timing(tmp_path: Path) -> None:
    path = tmp_path / "p"
    project(path, dependencies={}, dev_dependencies={}, forms={})
    results = tmp_path / "results" / "me.json"
    args = {"path": str(path), "name": "gpu-ml", "run_args": ["64"], "results_file": str(results),
            "extra_path": [os.path.dirname(shutil.which("cargo") or "")]}
    assert run_module("cargo_build", check=True, **args)["msg"].startswith("would run cargo build")
    first = run_module("cargo_build", **args)
    assert not first["failed"], first["msg"]
    assert first["changed"] and first["compiled"] == ["gpu-ml"]
    assert first["run"]["forms"]["plain"]["check"] == 128 and first["run"]["expected"] == 128
    assert first["run"]["left_out"] == {"rayon": "built without the rayon feature",
                                        "cuda": "built without the cuda feature"}
    assert json.loads(results.read_text())["forms"]["plain"]["ok"] is True
    second = run_module("cargo_build", **args)
    assert second["changed"] is False and second["compiled"] == []
    assert second["msg"].startswith("up to date: cargo compiled nothing; plain ")
    assert run_module("cargo_build", check=True, **args)["changed"] is False   # the binary is newer
    (path / "src/main.rs").write_text(MAIN_RS.replace("fn main() {", "fn main() {\n    let _ = 0;", 1))
    assert run_module("cargo_build", check=True, **args)["changed"] is True


def test_check_mode_before_the_crates_are_installed_says_what_it_waits_for(tmp_path: Path) -> None:
    res = project(tmp_path / "p", crate_source="debian", source_dir=str(tmp_path / "not-yet"), check=True)
    assert res["changed"] and not res["failed"] and f"once {tmp_path / 'not-yet'} exists" in res["msg"]
    assert not (tmp_path / "p").exists()
