"""hostname: the host's name, through the strategy Ansible picks for the platform.

With systemd running (or use: systemd/debian): hostnamectl, transient and static. Without it, on
Debian-like, SUSE and Arch systems, Ansible's file strategy: /etc/hostname only, which is also
what it compares (the running name is left to the next boot, exactly as Ansible does). `use:
alpine` writes /etc/hostname then runs `hostname -F /etc/hostname`, which also renames the
running system. Strategies for other platforms (redhat, openrc, BSDs...) are refused by name.
"""

from __future__ import annotations

import os
import socket

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

FILE = "/etc/hostname"
FILE_FAMILIES = ("Debian", "Suse", "Archlinux", "Gentoo", "Mandrake", "Altlinux")


class Args(ModuleArgs):
    name: str
    use: Literal["alpine", "debian", "freebsd", "generic", "macos", "macosx", "darwin", "openbsd", "openrc",
                 "redhat", "sles", "solaris", "systemd"] | None = None


def strategy(args: Args, host: Host) -> str:
    if args.use in ("systemd", "debian"):   # Ansible maps `debian` to its systemd strategy
        return "systemd"
    if args.use in ("alpine", "sles"):
        return "alpine" if args.use == "alpine" else "file"
    if args.use is not None:
        raise ModuleError(f"hostname: use={args.use} is not supported by provision (supported: systemd, debian, "
                          "alpine, sles)")
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    family = host.facts.get("os_family") or _os_family()
    if family in FILE_FAMILIES:
        return "file"
    if family == "Alpine":
        return "alpine"
    raise ModuleError(f"hostname module cannot be used on platform Linux ({family}) without systemd in provision")


def _os_family() -> str:
    """Enough of Ansible's os_family, from /etc/os-release, when facts were not gathered."""
    ids: list[str] = []
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key in ("ID", "ID_LIKE"):
                    ids += value.strip("\"'").split()
    except OSError:
        return ""
    for family, names in (("Debian", ("debian", "ubuntu")), ("Alpine", ("alpine",)), ("Suse", ("suse", "opensuse")),
                          ("Archlinux", ("arch",)), ("RedHat", ("rhel", "fedora", "centos"))):
        if any(i in names for i in ids):
            return family
    return ids[0] if ids else ""


def hostnamectl(host: Host, *argv: str) -> str:
    cmd = host.which("hostnamectl")
    if not cmd:
        raise ModuleError("Failed to find required executable \"hostnamectl\" in paths: " + os.environ.get("PATH", ""))
    res = host.run([cmd, *argv])
    if res.rc != 0:
        raise ModuleError("Command failed rc=%d, out=%s, err=%s" % (res.rc, res.stdout, res.stderr))
    return res.stdout.strip()


def read_file_name(host: Host) -> str:
    text = host.read_text(FILE) if os.path.isfile(FILE) else None
    return (text or "").strip()


def plan(args: Args, host: Host) -> Change:
    how = strategy(args, host)
    name = args.name
    steps: list[str] = []
    if how == "systemd":
        if len(name) > 64:
            raise ModuleError("name cannot be longer than 64 characters on systemd servers, try a shorter name")
        permanent = hostnamectl(host, "--static", "status")
        current = hostnamectl(host, "--transient", "status")
        steps = (["static"] if permanent != name else []) + (["transient"] if current != name else [])
    else:
        permanent = current = read_file_name(host)
        steps = ["file"] if permanent != name else []
    before = permanent if name == current else current
    fqdn = socket.getfqdn()
    data = {"name": name, "ansible_facts": {"ansible_hostname": name.split(".")[0], "ansible_nodename": name,
                                            "ansible_fqdn": fqdn, "ansible_domain": ".".join(fqdn.split(".")[1:])}}
    diff = {"before": f"hostname = {before}\n", "after": f"hostname = {name}\n"}
    return Change(bool(steps), diff=diff, todo=(how, steps), data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    how, steps = change.todo
    if how == "systemd":
        if "static" in steps:
            hostnamectl(host, "--pretty", "--static", "set-hostname", args.name)
        if "transient" in steps:
            hostnamectl(host, "--transient", "set-hostname", args.name)
        return {}
    try:
        host.write_atomic(FILE, f"{args.name}\n".encode())
    except OSError as exc:
        raise ModuleError(f"failed to update hostname: {exc}")
    if how == "alpine":
        cmd = host.which("hostname") or "/bin/hostname"
        res = host.run([cmd, "-F", FILE])
        if res.rc != 0:
            raise ModuleError("Command failed rc=%d, out=%s, err=%s" % (res.rc, res.stdout, res.stderr))
    return {}
