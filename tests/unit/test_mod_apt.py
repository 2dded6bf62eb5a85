"""apt on this Debian host, for real: install, converge, check mode, batch, remove.

The packages used (sl, tree, sysvbanner, hello) are small, dependency-free and not installed
here; every test leaves them removed. `RecordingHost` only counts the commands a module runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import Host
from provisioner.modules import host_modules, validate_args
from tests.unit.modhelp import RecordingHost

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0,
                                reason="needs apt-get and root")
TEST_PACKAGES = ("sl", "tree", "sysvbanner", "hello")


def apt(host: Host | None = None, **raw: Any) -> dict[str, Any]:
    spec = host_modules()["apt"]
    return execute_module(spec.module, validate_args(spec, raw), host or Host())


def installed(name: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True,
                         check=False)
    return out.stdout.endswith(" installed")


def apt_get_runs(host: RecordingHost, verb: str) -> list[list[str]]:
    return [c for c in host.calls if c[0] == "apt-get" and verb in c and "-s" not in c]


@pytest.fixture(scope="module", autouse=True)
def test_packages() -> Iterator[None]:
    if not [f for f in os.listdir("/var/lib/apt/lists") if "_Packages" in f]:
        subprocess.run(["apt-get", "update", "-q"], check=True)
    already = [p for p in TEST_PACKAGES if installed(p)]
    if already:
        pytest.skip(f"test packages already installed here: {already}")
    yield
    leftovers = [p for p in TEST_PACKAGES if installed(p)]
    if leftovers:
        subprocess.run(["apt-get", "purge", "-y", "-q", *leftovers], check=False, capture_output=True)


def test_install_is_planned_in_check_mode_then_done_once_then_removed() -> None:
    planned = apt(Host(check_mode=True), name="sl")
    assert planned["changed"] and planned["packages_to_install"] == ["sl"]
    assert "would install sl" in planned["msg"]
    assert not installed("sl")

    first = apt(name="sl", state="present")
    assert first["changed"] and not first["failed"] and installed("sl")

    host = RecordingHost()
    second = apt(host, name="sl")
    assert second["changed"] is False
    assert [c[0] for c in host.calls] == ["dpkg-query"]           # a converged host costs one command

    assert apt(name="sl", state="latest")["changed"] is False     # already the newest version
    assert apt(Host(check_mode=True), name="sl", state="absent")["changed"] and installed("sl")
    gone = apt(name="sl", state="absent", purge=True)
    assert gone["changed"] and not installed("sl")
    assert apt(name="sl", state="absent")["changed"] is False


def test_a_list_is_one_transaction_each_way() -> None:
    host = RecordingHost()
    result = apt(host, pkg="tree,sysvbanner", install_recommends=False)   # Ansible's alias and comma string
    assert result["changed"] and installed("tree") and installed("sysvbanner")
    installs = apt_get_runs(host, "install")
    assert len(installs) == 1 and installs[0][-2:] == ["tree", "sysvbanner"]
    assert "--no-install-recommends" in installs[0]
    assert "Dpkg::Options::=--force-confold" in installs[0]

    host = RecordingHost()
    assert apt(host, name=["tree", "sysvbanner"], state="absent")["changed"]
    assert len(apt_get_runs(host, "remove")) == 1
    assert not installed("tree") and not installed("sysvbanner")


def test_local_deb_installs_once(tmp_path: Any) -> None:
    subprocess.run(["apt-get", "download", "-q", "hello"], cwd=tmp_path, check=True, capture_output=True)
    deb = str(next(tmp_path.glob("hello_*.deb")))
    assert apt(deb=deb)["changed"] and installed("hello")
    assert apt(deb=deb)["changed"] is False
    assert apt(name="hello", state="absent")["changed"]


def test_fresh_cache_is_not_updated() -> None:
    host = RecordingHost()
    result = apt(host, name="bash", update_cache=True, cache_valid_time=10 * 365 * 86400)
    assert result["changed"] is False and result["cache_updated"] is False
    assert not apt_get_runs(host, "update")


def test_virtual_package_provided_by_an_installed_one_is_present() -> None:
    assert apt(name="awk")["changed"] is False                       # provided by mawk


def test_version_pins() -> None:
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "bash"],
                             capture_output=True, text=True, check=True).stdout
    assert apt(name=f"bash={version}")["changed"] is False
    assert apt(name=f"bash={version.split('-')[0]}*")["changed"] is False
    wrong = apt(Host(check_mode=True), name="bash=0.0.1-nope")
    assert wrong["failed"] and "0.0.1-nope" in wrong["msg"]


def test_unknown_package_fails_clearly_even_in_check_mode() -> None:
    for check in (True, False):
        result = apt(Host(check_mode=check), name=["sl", "no-such-package-xyz"])
        assert result["failed"]
        assert result["msg"] == "No package matching 'no-such-package-xyz' is available"
    assert not installed("sl")


def test_invalid_name_never_reaches_apt() -> None:
    assert apt(name="-oAPT::Foo=1")["msg"].startswith("invalid package name")


def test_noop_plan_for_ten_installed_packages_is_fast() -> None:
    names = ["bash", "coreutils", "dpkg", "apt", "tar", "gzip", "sed", "grep", "findutils", "libc6"]
    spec = host_modules()["apt"]
    args = validate_args(spec, {"name": names})
    spec.module.plan(args, Host())                                   # warm the page cache
    best = min(_timed(lambda: spec.module.plan(args, Host())) for _ in range(5))
    print(f"apt no-op plan, 10 installed packages: {best * 1000:.1f} ms")
    assert best < 0.5


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    assert fn().changed is False
    return time.perf_counter() - start
