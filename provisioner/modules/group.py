"""group: a local group present (with a gid) or absent, through groupadd/groupmod/groupdel.

As Ansible's Linux group: the group's gid is changed only when `gid` is given and differs;
`system` counts only when the group is created. libuser's `local: true` is refused.
"""

from __future__ import annotations

import grp

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules._accounts import find_tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal


class Args(ModuleArgs):
    name: str
    state: Literal["present", "absent"] = "present"
    force: bool = False
    gid: int | None = None
    system: bool = False
    local: bool = False
    non_unique: bool = False
    gid_min: int | None = None
    gid_max: int | None = None


def named_group(name: str) -> Any:
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def checked(host: Host, data: dict[str, Any]) -> dict[str, Any]:
    """In check mode Ansible reports only `changed` for a group it would add or delete."""
    return {} if host.check_mode else data


def plan(args: Args, host: Host) -> Change:
    if args.local:
        raise ModuleError("local: true (libuser's lgroupadd/lgroupmod) is not supported by provision")
    if args.non_unique and args.gid is None:
        raise ModuleError("non_unique is True but all of the following are missing: gid")
    entry = named_group(args.name)
    data: dict[str, Any] = {"name": args.name, "state": args.state}
    if entry is not None and args.state == "present":
        data.update(system=args.system, gid=entry.gr_gid)
    if args.state == "absent":
        if entry is None:
            return Change(False, data=data)
        argv = [find_tool(host, "groupdel")] + (["-f"] if args.force else []) + [args.name]
        return Change(True, todo=argv, diff={"path": "/etc/group", "before": f"group {args.name}\n", "after": ""}, data=checked(host, data))
    if entry is None:
        argv = [find_tool(host, "groupadd")]
        if args.gid is not None:
            argv += ["-g", str(args.gid)] + (["-o"] if args.non_unique else [])
        if args.system:
            argv.append("-r")
        for key, value in (("GID_MIN", args.gid_min), ("GID_MAX", args.gid_max)):
            if value is not None:
                argv += ["-K", f"{key}={value}"]
        return Change(True, todo=argv + [args.name], diff={"path": "/etc/group", "before": "", "after": f"group {args.name}\n"},
                      data=checked(host, data))
    if args.gid is None or entry.gr_gid == args.gid:
        return Change(False, data=data)
    argv = [find_tool(host, "groupmod"), "-g", str(args.gid)] + (["-o"] if args.non_unique else []) + [args.name]
    diff = {"before": f"gid: {entry.gr_gid}\n", "after": f"gid: {args.gid}\n", "path": f"group {args.name}"}
    return Change(True, todo=argv, diff=diff, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    res = host.run(change.todo)
    if res.rc != 0:
        raise ModuleError(res.stderr, name=args.name)
    out: dict[str, Any] = {}
    if res.stdout:
        out["stdout"] = res.stdout
    if res.stderr:
        out["stderr"] = res.stderr
    entry = named_group(args.name)
    if entry is not None:
        out.update(system=args.system, gid=entry.gr_gid)
    return out
