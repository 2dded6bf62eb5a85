"""package: OS-neutral name/state, handed to apt or dnf by the host's package manager (Ansible's package).

Only `name`, `state` and `use` are accepted: options of one backend would silently mean nothing
on another, so a task that needs them names apt or dnf itself.
"""

from __future__ import annotations

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules import apt, dnf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ALIASES = {"pkg": "name"}
BACKENDS: dict[str, Any] = {"apt": apt, "dnf": dnf, "dnf5": dnf, "yum": dnf}
STATES = {apt.__name__: ("present", "absent", "latest", "fixed"),
          dnf.__name__: ("present", "installed", "latest", "absent", "removed")}


class Args(ModuleArgs):
    name: list[str] = []
    state: str = "present"        # present, absent, latest; installed/removed as each backend reads them
    use: str = "auto"             # auto: host.facts["pkg_mgr"]; or apt, dnf, yum


def package_manager(args: Args, host: Host) -> str:
    if args.use != "auto":
        return args.use
    mgr = host.facts.get("pkg_mgr")
    if not mgr:       # no facts gathered (e.g. run in-process): look at what is installed
        tools = (("apt", "apt-get"), ("dnf", "dnf"), ("yum", "yum"))
        mgr = next((m for m, tool in tools if host.which(tool)), "")
    return mgr or "unknown"


def plan(args: Args, host: Host) -> Change:
    mgr = package_manager(args, host)
    backend = BACKENDS.get(mgr)
    if backend is None:
        raise ModuleError(f"package: no support for package manager '{mgr}' here; supported: apt, dnf, yum")
    state = {"installed": "present", "removed": "absent"}.get(args.state, args.state) if backend is apt \
        else args.state
    if state not in STATES[backend.__name__]:
        raise ModuleError(f"package: state '{args.state}' is not supported by {mgr}")
    sub_args = backend.Args(name=list(args.name), state=state)
    inner = backend.plan(sub_args, host)
    return Change(inner.changed, inner.msg, inner.diff, todo=(mgr, sub_args, inner), data=inner.data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    mgr, sub_args, inner = change.todo
    return BACKENDS[mgr].apply(sub_args, inner, host)
