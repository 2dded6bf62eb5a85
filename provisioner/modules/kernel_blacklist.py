"""kernel_blacklist (community.general): a `blacklist NAME` line in a modprobe.d file (by default
/etc/modprobe.d/blacklist-ansible.conf, as community.general's), added at the end or removed, so
the kernel module is not loaded automatically.
"""

from __future__ import annotations

import os
import re

from provisioner.host.runtime import Change, Host, ModuleArgs, text_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Literal


class Args(ModuleArgs):
    name: str
    state: Literal["present", "absent"] = "present"
    blacklist_file: str = "/etc/modprobe.d/blacklist-ansible.conf"  # community.general's default


def plan(args: Args, host: Host) -> Change:
    path = args.blacklist_file
    old = host.read_text(path)
    lines = (old or "").splitlines()
    pattern = re.compile(r"^blacklist\s+%s$" % re.escape(args.name))
    present = any(pattern.match(ln) for ln in lines)
    if args.state == "present" and not present:
        new_lines = lines + ["blacklist %s" % args.name]
    elif args.state == "absent" and present:
        new_lines = [ln for ln in lines if not pattern.match(ln)]
    else:
        return Change(False, data={"name": args.name, "state": args.state, "blacklist_file": path})
    new = "".join(ln + "\n" for ln in new_lines)
    verb = "add" if args.state == "present" else "remove"
    return Change(True, "%s blacklist %s in %s" % (verb, args.name, path), text_diff(path, old, new),
                  todo=new, data={"name": args.name, "state": args.state, "blacklist_file": path})


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    directory = os.path.dirname(os.path.abspath(args.blacklist_file))
    os.makedirs(directory, exist_ok=True)
    host.write_atomic(args.blacklist_file, change.todo.encode())
    return {}
