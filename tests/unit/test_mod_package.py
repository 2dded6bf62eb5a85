"""package hands name/state to the host's package manager: real apt here; dnf via a small FAKE
RedHat host (dnf cannot run on this Debian box), which only answers `rpm -q`."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import CommandResult, Host
from provisioner.modules import host_modules, validate_args

needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0,
                               reason="needs apt and root")


def package(host: Host, **raw: Any) -> dict[str, Any]:
    spec = host_modules()["package"]
    return execute_module(spec.module, validate_args(spec, raw), host)


def installed(name: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True,
                         check=False)
    return out.stdout.endswith(" installed")


class FakeRedHatHost(Host):
    """FAKE: a RedHat-family host where every asked package is installed (rpm -q answers rc 0)."""

    def __init__(self) -> None:
        super().__init__(facts={"pkg_mgr": "dnf", "os_family": "RedHat"})
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:  # type: ignore[override]
        self.calls.append(list(argv))
        specs = list(argv)[list(argv).index("--") + 1:]
        return CommandResult(0, "".join(f"{s}\t1.0-1\tx86_64\n" for s in specs), "")


@needs_apt
def test_apt_host_installs_and_converges() -> None:
    if installed("figlet"):
        pytest.skip("figlet is already installed here")
    facts = {"pkg_mgr": "apt", "os_family": "Debian"}
    try:
        assert package(Host(facts=facts, check_mode=True), name="figlet")["changed"]
        assert not installed("figlet")
        assert package(Host(facts=facts), name="figlet", state="installed")["changed"] and installed("figlet")
        assert package(Host(facts=facts), name="figlet")["changed"] is False
        assert package(Host(facts=facts), name="figlet", state="removed")["changed"]
        assert not installed("figlet")
    finally:
        if installed("figlet"):
            subprocess.run(["apt-get", "purge", "-y", "-q", "figlet"], check=False, capture_output=True)


@needs_apt
def test_without_facts_the_manager_is_found_on_path() -> None:
    assert package(Host(), name="bash")["changed"] is False


def test_dnf_host_is_handed_to_dnf() -> None:
    host = FakeRedHatHost()
    assert package(host, name=["git", "tmux"])["changed"] is False
    assert host.calls[0][:2] == ["rpm", "-q"]


def test_yum_hosts_use_dnf_module_and_unknown_managers_fail_clearly() -> None:
    host = FakeRedHatHost()
    host.facts["pkg_mgr"] = "yum"
    assert package(host, name="git")["changed"] is False
    result = package(Host(facts={"pkg_mgr": "pacman"}), name="git")
    assert result["failed"] and "no support for package manager 'pacman'" in result["msg"]
    assert "not supported by apt" in package(Host(), name="git", state="forcereinstall", use="apt")["msg"]
