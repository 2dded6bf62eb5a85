"""Issue 12 for real: the chapter's Rust project on a Debian 13 fleet host, from Debian's packaged crates.

One host gets the rust role (distro rustc 1.85) and rust_project with rust_crate_source: debian; the
project builds offline as its user, prints every element 2048, and its plain and rayon timings land in
gpu_verify's table (the host has no GPU, so the CPU rows are all it has). A rerun changes nothing and
compiles nothing (the project directory is the same, mtimes included). The vendor source is built from a
small vendored directory made of Debian's rayon and its dependencies; crates-io only in check mode (this
machine has no route to crates.io: the auto probe is pointed at a closed port on 127.0.0.1).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.test_roles_fleet import Run, apply, extra_vars

pytestmark = pytest.mark.fleet

NO_CRATES_IO = "http://127.0.0.1:9/"          # discard port: refused at once, so auto falls back
BUILD = "rust_project : Build the project and time its matmul (cargo build --release as the user)"
WRITE = "rust_project : Write the chapter's project (Cargo.toml, src/main.rs, .cargo/config.toml)"
# rayon and what it needs, as Debian 13 packages them
RAYON_CRATES = ("rayon-", "rayon-core-", "crossbeam-deque-", "crossbeam-epoch-", "crossbeam-utils-", "either-")


def items(run: Run, host: str, task: str) -> dict[str, dict[str, Any]]:
    """A loop task's results by user (the build loops over the writes' results: its label is the user)."""
    return {r.get("_label") or r["item"]: r for r in run.task(host, task)["result"]["results"]}


@pytest.fixture(scope="module")
def rust_host(fleet_image: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Path]]:
    workdir = tmp_path_factory.mktemp("rust_project")
    fleet = Fleet(1, name="rust-project")
    fleet.up()
    try:
        for user in ("alice", "bob", "carol"):
            assert fleet.run(fleet.hosts[0], f"useradd -m {user}")[0] == 0
        yield fleet, workdir
    finally:
        fleet.close()


def test_debian_crates_build_offline_print_2048_fill_the_table_and_rerun_builds_nothing(
        rust_host: tuple[Fleet, Path]) -> None:
    fleet, workdir = rust_host
    h = fleet.hosts[0]
    inventory = fleet.write_inventory()
    variables = extra_vars(workdir, {"rust_project_users": ["alice"], "rust_crate_source": "auto",
                                     "rust_crates_io_probe_url": NO_CRATES_IO})
    first = apply(workdir, inventory, "--tags", "rust,rust_project", "-e", variables)
    assert first.rc == 0, first.out
    assert first.task(h.name, "rust_project : Choose the crate source")["result"]["ansible_facts"] == {
        "rust_crate_source_chosen": "debian"}                  # crates.io unreachable, Debian packages rayon
    wrote = items(first, h.name, WRITE)["alice"]
    assert wrote["forms"] == ["rayon"] and sorted(wrote["left_out"]) == ["cuda", "ndarray"]
    assert "not packaged by this distribution (no librust-cudarc-dev" in wrote["left_out"]["cuda"]
    built = items(first, h.name, BUILD)["alice"]
    assert built["changed"] and "gpu-ml" in built["compiled"] and "rayon" in built["compiled"]
    run = built["run"]
    assert run["n"] == 1024 and run["expected"] == 2048
    assert {form: (r["check"], r["ok"]) for form, r in run["forms"].items()} == {
        "plain": (2048, True), "rayon": (2048, True)}
    assert run["left_out"] == {"cuda": "built without the cuda feature"}

    project = h.path("/home/alice/gpu-ml")
    alice = project.stat().st_uid
    for rel in ("Cargo.toml", "src/main.rs", ".cargo/config.toml", "target/release/gpu-ml"):
        assert (project / rel).stat().st_uid == alice, rel
    assert 'directory = "/usr/share/cargo/registry"' in (project / ".cargo/config.toml").read_text()
    toml = (project / "Cargo.toml").read_text()
    assert 'rayon = { version = "1.8", optional = true }' in toml and "cudarc" not in toml and "lto = true" in toml
    by_hand = fleet.run(h, "runuser -u alice -- /home/alice/gpu-ml/target/release/gpu-ml 256")
    assert by_hand[0] == 0 and "every element 512" in by_hand[1]

    before = fleet.snapshot(h, paths=("/home/alice/gpu-ml",), mtimes=True)
    second = apply(workdir, inventory, "--tags", "rust,rust_project", "-e", variables)
    assert second.rc == 0, second.out
    assert second.changed(h.name) == 0, second.out
    again = items(second, h.name, BUILD)["alice"]
    assert again["compiled"] == [] and again["msg"].startswith("up to date: cargo compiled nothing")
    assert fleet.snapshot(h, paths=("/home/alice/gpu-ml",), mtimes=True) == before

    verified = apply(workdir, inventory, "--tags", "verify", "-e", variables)
    assert verified.rc != 0                                    # no GPU here: gpu_verify fails the host...
    lines = verified.out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("host ") and "GFLOP/s" in line)
    header, row = lines[at], lines[at + 1]
    assert "Rust CPU ms" in header and "Rust rayon ms" in header and "Rust GPU ms" not in header
    assert row.startswith(h.name + " ") and row.endswith("cannot run")   # ...and its CPU rows are still there
    perf = verified.task(h.name, "gpu_verify : Verify the GPU (checklist, exact 2048, naive kernel vs cuBLAS, "
                                 "matmul performance)")["result"]["gpu_verify"]["perf"]
    ms = {p["kernel"]: p["ms"] for p in perf if p.get("source") == "rust_project"}
    assert set(ms) == {"rust_plain", "rust_rayon"}
    print(f"\nrust + rust_project (debian) on Debian 13: first run {first.seconds:.0f}s "
          f"(build {built['build_s']}s), rerun {second.seconds:.1f}s; n=1024 plain {again['run']['forms']['plain']['ms']:.0f} ms, "
          f"rayon {again['run']['forms']['rayon']['ms']:.0f} ms ({again['run']['threads']} threads); table: {row}")


def test_a_file_the_user_changed_is_left_as_it_is(rust_host: tuple[Fleet, Path]) -> None:
    fleet, workdir = rust_host
    h = fleet.hosts[0]
    inventory = fleet.write_inventory()
    variables = extra_vars(workdir, {"rust_project_users": ["alice"], "rust_crate_source": "debian",
                                     "rust_project_build": False})
    first = apply(workdir, inventory, "--tags", "rust_project", "-e", variables)
    assert first.rc == 0, first.out
    main_rs = h.path("/home/alice/gpu-ml/src/main.rs")
    mine = main_rs.read_text().replace("fn main() {", "fn main() {\n    // my own line", 1)
    main_rs.write_text(mine)
    second = apply(workdir, inventory, "--tags", "rust_project", "-e", variables)
    assert second.rc == 0, second.out
    wrote = items(second, h.name, WRITE)["alice"]
    assert wrote["kept"] == ["src/main.rs"] and wrote["written"] == []
    assert "changed by the user, left as they are: src/main.rs" in wrote["msg"]
    assert main_rs.read_text() == mine


def test_vendored_crates_build_and_bad_input_fails_with_one_line(rust_host: tuple[Fleet, Path]) -> None:
    fleet, workdir = rust_host
    h = fleet.hosts[0]
    inventory = fleet.write_inventory()
    registry = h.path("/usr/share/cargo/registry")
    if not registry.is_dir():                                 # run alone: the debian test installs them
        assert apply(workdir, inventory, "--tags", "rust,rust_project", "-e", extra_vars(
            workdir, {"rust_project_users": ["bob"], "rust_crate_source": "debian",
                      "rust_project_build": False})).rc == 0
    # a small `cargo vendor`-like directory: Debian's rayon and its dependencies, each with its checksum file
    archive = workdir / "vendor.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for crate in sorted(registry.iterdir()):
            if crate.name.startswith(RAYON_CRATES) and crate.name.split("-")[-1][:1].isdigit():
                tar.add(crate, arcname="vendor/" + crate.name)
    archive.write_bytes(buf.getvalue())
    variables = {"rust_project_users": ["bob"], "rust_crate_source": "vendor", "rust_vendor_archive": str(archive),
                 "rust_project_dependencies": {"rayon": "1.8", "cudarc": "0.12"}, "rust_project_dev_dependencies": {},
                 "rust_project_n": 256}
    vendored = apply(workdir, inventory, "--tags", "rust_project", "-e", extra_vars(workdir, variables))
    assert vendored.rc == 0, vendored.out
    wrote = items(vendored, h.name, WRITE)["bob"]
    assert wrote["forms"] == ["rayon"]
    assert wrote["left_out"] == {"cuda": "needs cudarc: not in the vendored directory /usr/local/share/cargo-vendor/vendor"}
    assert 'directory = "/usr/local/share/cargo-vendor/vendor"' in \
        h.path("/home/bob/gpu-ml/.cargo/config.toml").read_text()
    run = items(vendored, h.name, BUILD)["bob"]["run"]
    assert {form: r["check"] for form, r in run["forms"].items()} == {"plain": 512, "rayon": 512}

    # crates-io, in check mode only: the chapter's whole list, no source replacement, nothing written
    check = apply(workdir, inventory, "--tags", "rust_project", "--check", "-e", extra_vars(
        workdir, {"rust_project_users": ["carol"], "rust_crate_source": "crates-io"}))
    assert check.rc == 0, check.out
    planned = items(check, h.name, WRITE)["carol"]
    assert planned["forms"] == ["rayon", "cuda"] and planned["left_out"] == {}
    assert planned["written"] == [".cargo/config.toml", "Cargo.toml", "src/main.rs"]
    assert items(check, h.name, BUILD)["carol"]["msg"].startswith("would build /home/carol/gpu-ml")
    assert not h.path("/home/carol/gpu-ml").exists()

    for bad, expected in (
            ({"rust_crate_source": "pypi"}, "rust_crate_source pypi is unknown: use one of auto, crates-io, vendor, debian"),
            ({"rust_project_users": ["nobody-here"]}, "rust_project: user 'nobody-here' does not exist on this host"),
            ({"rust_project_path": "/opt/gpu-ml"},
             "rust_project: /opt/gpu-ml is outside bob's home /home/bob; set rust_project_force_path to use it")):
        variables = {"rust_project_users": ["bob"], "rust_crate_source": "debian", **bad}
        refused = apply(workdir, inventory, "--tags", "rust_project", "-e", extra_vars(workdir, variables))
        assert refused.rc != 0
        failed = [r for r in refused.report["results"] if r["status"] == "failed"]
        assert len(failed) == 1, failed
        shown = failed[0]["msg"] if "results" not in failed[0]["result"] else \
            json.dumps([r.get("msg") for r in failed[0]["result"]["results"]])
        assert expected in shown, shown
