"""What a host IS, for "the second run changes nothing" judged on the host rather than by the
tool's own recap: every file under the managed paths (content hash, mode, owner, mtime) and the
package state (dpkg's status file, per package), read from the host's overlay root.

    before = host_state(fleet, h)
    second = provision.apply(...)
    assert_unchanged(before, host_state(fleet, h), h.name)

A run that rewrote a file with the same bytes changes its mtime, so it shows here even when
the recap says ok.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tests.fleet.fleet import Entry, Fleet, FleetHost

# Where roles and playbooks put what they manage (/var/lib/dpkg: the package database).
MANAGED_PATHS = ("/etc", "/usr", "/var/lib/dpkg", "/root", "/home", "/opt", "/srv")

# Paths a run legitimately changes without changing what the host is: the login users' cache
# directories (~/.cache, disposable by definition), where the agent keeps its bytecode cache,
# written by the agent itself after a run (provisioner/host/bundle.py): provision's own compiled
# code, not something a playbook manages. (Logs and apt's lists and their timestamps live outside
# MANAGED_PATHS; the package state is /var/lib/dpkg/status, compared per package.)
NOT_STATE = ("/root/.cache", "/home/admin/.cache")
# ...and so the home directories holding them get a new mtime on a host's first run (~/.cache
# created): their mode, owner and entries are still compared, their mtime is not.
DIR_MTIME_NOT_STATE = ("/root", "/home/admin")


@dataclass(frozen=True)
class HostState:
    files: dict[str, Entry]
    packages: dict[str, str]     # "name:arch" (arch when given) -> "version status"


def dpkg_packages(h: FleetHost) -> dict[str, str]:
    """Every package dpkg knows of, with its version and status, parsed from the status file."""
    text = h.path("/var/lib/dpkg/status").read_text(errors="replace")
    packages: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            name = fields["Package"] + (":" + fields["Architecture"] if fields.get("Architecture") else "")
            packages[name] = f"{fields.get('Version', '-')} {fields.get('Status', '-')}"
    return packages


def host_state(fleet: Fleet, host: str | int | FleetHost, paths: Sequence[str] = MANAGED_PATHS,
               exclude: Sequence[str] = NOT_STATE) -> HostState:
    h = fleet.host(host)
    return HostState(fleet.snapshot(h, paths, mtimes=True, exclude=exclude), dpkg_packages(h))


def _describe(old: Entry, new: Entry) -> str:
    what = []
    if old.digest != new.digest:
        what.append(f"content {str(old.digest)[:12]} -> {str(new.digest)[:12]}")
    if old.mode != new.mode:
        what.append(f"mode {oct(old.mode)} -> {oct(new.mode)}")
    if (old.uid, old.gid) != (new.uid, new.gid):
        what.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid}")
    if old.size != new.size:
        what.append(f"size {old.size} -> {new.size}")
    if old.mtime_ns != new.mtime_ns:
        what.append("mtime changed (rewritten)" if len(what) == 0 else "mtime changed")
    return ", ".join(what)


def state_diff(before: HostState, after: HostState) -> list[str]:
    """One readable line per difference: files added, removed or modified, packages changed."""
    lines = []
    for path in sorted(set(before.files) | set(after.files)):
        old, new = before.files.get(path), after.files.get(path)
        if old is None:
            lines.append(f"added    {path}")
        elif new is None:
            lines.append(f"removed  {path}")
        elif old != new and not (path in DIR_MTIME_NOT_STATE and old._replace(mtime_ns=None) ==
                                 new._replace(mtime_ns=None)):
            lines.append(f"modified {path}: {_describe(old, new)}")
    for name in sorted(set(before.packages) | set(after.packages)):
        old_p, new_p = before.packages.get(name, "(absent)"), after.packages.get(name, "(absent)")
        if old_p != new_p:
            lines.append(f"package  {name}: {old_p} -> {new_p}")
    return lines


def assert_unchanged(before: HostState, after: HostState, host: str, limit: int = 40) -> None:
    diff = state_diff(before, after)
    assert not diff, (f"{host}: the run changed the host ({len(diff)} differences):\n  "
                      + "\n  ".join(diff[:limit]) + ("\n  ..." if len(diff) > limit else ""))
