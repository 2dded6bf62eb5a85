"""sysctl (ansible.posix.sysctl): a kernel parameter in a sysctl file, optionally set now and reloaded.

Ansible's rules: the file is rewritten normalised (`key=value`, one line per key, comments kept);
`reload` runs `sysctl -p FILE` when anything changed, `sysctl_set` runs `sysctl -w`. Where /proc/sys is
read-only (a container, the test fleet) the reload fails with sysctl's own message, as in Ansible:
use `reload: false` there to manage the file only.
"""

from __future__ import annotations

import os
import re

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff
from provisioner.modules._accounts import find_tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"key": "name", "val": "value"}
LANG_C = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
TRUE = ("y", "yes", "on", "1", "true", "t")
FALSE = ("n", "no", "off", "0", "false", "f")
SET_FAILED = r'^sysctl: setting key "[^"]+": (Invalid argument|Read-only file system)$'


class Args(ModuleArgs):
    name: str
    value: Any = None
    state: Literal["present", "absent"] = "present"
    reload: bool = True
    sysctl_set: bool = False
    ignoreerrors: bool = False
    sysctl_file: str = "/etc/sysctl.conf"


def parse_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    return "1" if text.lower() in TRUE else "0" if text.lower() in FALSE else text.strip()


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.split() == b.split()


def file_lines(text: str, name: str, state: str, value: str) -> tuple[list[str], dict[str, str]]:
    """The file's lines as Ansible rewrites them, and the values it held before."""
    values: dict[str, str] = {}
    out: list[str] = []
    for line in (x.strip() for x in text.splitlines()):
        if not line or line.startswith(("#", ";")) or "=" not in line:
            out.append(line)
            continue
        key, val = (x.strip() for x in line.split("=", 1))
        if key in values:
            values[key] = val  # a later duplicate: the value Ansible reads, the line it drops
            continue
        values[key] = val
        if key != name:
            out.append(f"{key}={val}")
        elif state == "present":
            out.append(f"{key}={value}")
    if name not in values and state == "present":
        out.append(f"{name}={value}")
    return out, values


def plan(args: Args, host: Host) -> Change:
    name, value = args.name.strip(), parse_value(args.value)
    if name == "":
        raise ModuleError("name cannot be blank")
    if args.state == "present" and args.value is None:
        raise ModuleError("state is present but all of the following are missing: value")
    if args.state == "present" and value == "":
        raise ModuleError("value cannot be blank")
    sysctl = find_tool(host, "sysctl")
    res = host.run([sysctl, "-e", "-n", name], env=LANG_C)
    proc = res.stdout if res.rc == 0 else None
    path = os.path.expanduser(args.sysctl_file)
    text = (host.read_text(path) or "") if os.path.isfile(path) else ""
    lines, values = file_lines(text, name, args.state, value)
    current = values.get(name)
    changed = write = set_proc = False
    if current is None:
        changed = write = args.state == "present"
    elif (current and args.state == "absent") or current != value:
        changed = write = True
    elif args.reload and not same(proc, value):
        changed = True
    if args.sysctl_set and args.state == "present":
        if proc is None:
            changed = True
        elif not same(proc, value):
            changed = set_proc = True
    after = "".join(line + "\n" for line in lines)
    todo = {"sysctl": sysctl, "name": name, "value": value, "set": set_proc,
            "write": after if write else None, "path": path}
    return Change(changed, diff=text_diff(path, text, after if write else text), todo=todo)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    if todo["set"]:
        res = host.run([todo["sysctl"]] + (["-e"] if args.ignoreerrors else []) + ["-w", f"{todo['name']}={todo['value']}"],
                       env=LANG_C)
        if res.rc != 0 or re.search(SET_FAILED, res.stderr, re.M):
            raise ModuleError(f"setting {todo['name']} failed: {res.stdout + res.stderr}")
    if todo["write"] is not None:
        host.write_atomic(os.path.realpath(todo["path"]), todo["write"].encode())
    if args.reload:
        res = host.run([todo["sysctl"]] + (["-e"] if args.ignoreerrors else []) + ["-p", todo["path"]], env=LANG_C)
        if res.rc != 0 or re.search(SET_FAILED, res.stderr, re.M):
            raise ModuleError(f"Failed to reload sysctl: {res.stdout}{res.stderr}")
    return {}
