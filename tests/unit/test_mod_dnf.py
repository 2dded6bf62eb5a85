"""dnf/yum decisions, against FakeRedHatHost.

This is a FAKE of another OS family: dnf and rpm cannot run on this Debian box, so the host
answers `rpm -q`, `dnf check-update`, `dnf install/upgrade/remove` the way they answer on
Fedora/RHEL, from an in-memory package database. It tests our plan/apply decisions, not dnf.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import CommandResult, Host
from provisioner.modules import host_modules, validate_args


class FakeRedHatHost(Host):
    """Answers like rpm/dnf on a RedHat-family host; records every argv."""

    def __init__(self, installed: dict[str, str], repo: dict[str, str],
                 provides: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(facts={"pkg_mgr": "dnf", "os_family": "RedHat"}, **kw)
        self.installed, self.repo, self.provides = dict(installed), dict(repo), dict(provides or {})
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:  # type: ignore[override]
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["rpm", "-q"]:
            specs = argv[argv.index("--") + 1:]
            if "--whatprovides" in argv:
                hits = {s: self.provides.get(s, s) for s in specs}
                lines = [f"{hits[s]}\t{self.installed[hits[s]]}\tx86_64" if hits[s] in self.installed
                         else f"no package provides {s}" for s in specs]
            else:
                lines = [f"{s}\t{self.installed[s]}\tx86_64" if s in self.installed
                         else f"package {s} is not installed" for s in specs]
            missing = sum(1 for line in lines if "\t" not in line)
            return CommandResult(missing, "\n".join(lines) + "\n", "")
        tool, verb, rest = argv[0], argv[1], [a for a in argv[2:] if not a.startswith("-")]
        assert tool == "dnf"
        if verb == "check-update":
            newer = [n for n in rest if n in self.installed and self.repo.get(n, "") > self.installed[n]]
            return CommandResult(100 if newer else 0, "".join(f"{n}.x86_64  {self.repo[n]}  baseos\n"
                                                               for n in newer), "")
        if verb in ("install", "upgrade"):
            unknown = [n for n in rest if n not in self.repo]
            if unknown:
                return CommandResult(1, "".join(f"No match for argument: {n}\n" for n in unknown),
                                     "Error: Unable to find a match: " + " ".join(unknown))
            todo = [n for n in rest if self.installed.get(n) != self.repo[n]]
            self.installed.update({n: self.repo[n] for n in todo})
            return CommandResult(0, "Nothing to do.\n" if not todo else
                                 "Installed:\n" + "".join(f"  {n}-{self.repo[n]}.x86_64\n" for n in todo), "")
        if verb == "remove":
            for n in rest:
                self.installed.pop(n, None)
            return CommandResult(0, "Removed:\n" + "".join(f"  {n}\n" for n in rest) + "Complete!\n", "")
        raise AssertionError(f"unexpected command {argv}")


def dnf(host: Host, module: str = "dnf", **raw: Any) -> dict[str, Any]:
    spec = host_modules()[module]
    return execute_module(spec.module, validate_args(spec, raw), host)


def redhat(**kw: Any) -> FakeRedHatHost:
    return FakeRedHatHost(installed={"bash": "5.1-1", "htop": "3.2-1"},
                          repo={"bash": "5.1-1", "htop": "3.3-1", "tmux": "3.2-2", "git": "2.43-1"},
                          provides={"python3dist(six)": "python3-six", "/usr/bin/bash": "bash"}, **kw)


def test_converged_host_costs_one_rpm_query() -> None:
    host = redhat()
    result = dnf(host, name=["bash", "htop"])
    assert result["changed"] is False
    assert [c[:2] for c in host.calls] == [["rpm", "-q"]]


def test_missing_packages_install_in_one_transaction_then_converge() -> None:
    host = redhat()
    result = dnf(host, name="tmux,git,bash", enablerepo="crb", disable_gpg_check=True)
    assert result["changed"]
    assert result["results"] == ["Installed: tmux-3.2-2.x86_64", "Installed: git-2.43-1.x86_64"]
    installs = [c for c in host.calls if c[:2] == ["dnf", "install"]]
    assert len(installs) == 1
    assert installs[0][-2:] == ["tmux", "git"]
    assert "--enablerepo=crb" in installs[0] and "--nogpgcheck" in installs[0]
    assert dnf(host, name=["tmux", "git", "bash"])["changed"] is False


def test_check_mode_plans_only() -> None:
    host = redhat(check_mode=True)
    result = dnf(host, name=["tmux"])
    assert result["changed"] and result["packages_to_install"] == ["tmux"]
    assert "would install tmux" in result["msg"]
    assert "tmux" not in host.installed
    assert not [c for c in host.calls if c[0] == "dnf"]


def test_latest_upgrades_only_what_is_outdated() -> None:
    host = redhat()
    result = dnf(host, name=["bash", "htop"], state="latest")
    assert result["changed"] and host.installed["htop"] == "3.3-1"
    assert next(c for c in host.calls if c[:2] == ["dnf", "upgrade"])[-1:] == ["htop"]
    assert dnf(host, name=["bash", "htop"], state="latest")["changed"] is False


def test_absent_removes_installed_only() -> None:
    host = redhat()
    result = dnf(host, name=["htop", "tmux"], state="absent")
    assert result["changed"] and "htop" not in host.installed
    assert next(c for c in host.calls if c[:2] == ["dnf", "remove"])[-1:] == ["htop"]
    assert dnf(host, name=["htop", "tmux"], state="removed")["changed"] is False


def test_capability_provided_by_an_installed_package_is_present() -> None:
    host = redhat()
    host.installed["python3-six"] = "1.16-1"
    assert dnf(host, name=["python3dist(six)", "/usr/bin/bash"])["changed"] is False


def test_unknown_package_fails_with_dnf_reason() -> None:
    result = dnf(redhat(), name=["no-such-thing"])
    assert result["failed"] and result["msg"] == "No package no-such-thing available."


def test_yum_name_and_group_refusal() -> None:
    host = redhat()
    assert dnf(host, "yum", pkg="bash")["changed"] is False
    assert "groups are not supported" in dnf(redhat(), name=["@development"])["msg"]
