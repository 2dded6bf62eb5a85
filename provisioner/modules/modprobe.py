"""modprobe (community.general): load or unload a kernel module now, and (with `persistent`) at
every boot through /etc/modules-load.d/<name>.conf and /etc/modprobe.d/<name>.conf options.

As community.general does: a persistent entry is added as a new file, and an old one is disabled
by commenting its line out (never deleted); `persistent: disabled` (the default) touches no file.
"""

from __future__ import annotations

import os
import re
import shlex

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional, Tuple

MODULES_LOAD_DIR = "/etc/modules-load.d"
MODPROBE_DIR = "/etc/modprobe.d"
PROC_MODULES = "/proc/modules"


class Args(ModuleArgs):
    name: str
    state: Literal["present", "absent"] = "present"
    params: str = ""
    persistent: Literal["disabled", "absent", "present"] = "disabled"


def _conf_files(directory: str) -> List[str]:
    try:
        return sorted(p for p in (os.path.join(directory, f) for f in os.listdir(directory)) if os.path.isfile(p))
    except FileNotFoundError:
        return []


def _read_lines(path: str) -> List[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readlines()


def is_loaded(name: str) -> bool:
    """In /proc/modules (dashes read as underscores), or built into the running kernel. A kernel
    without /proc/modules has no loadable modules: nothing is loaded (community.general fails here)."""
    wanted = name.replace("-", "_") + " "
    try:
        with open(PROC_MODULES) as f:
            if any(line.startswith(wanted) for line in f):
                return True
    except FileNotFoundError:
        pass
    builtin = os.path.join("/lib/modules", os.uname().release, "modules.builtin")
    try:
        with open(builtin) as f:
            return any(line.rstrip().endswith("/" + name + ".ko") for line in f)
    except FileNotFoundError:
        return False


def _edits(args: Args) -> Dict[str, Tuple[Optional[str], str]]:
    """{path: (old text or None, new text)} for the persistent files, by community.general's rules:
    one `options NAME k=v` line per parameter in /etc/modprobe.d/NAME.conf; old lines commented out."""
    name = re.escape(args.name)
    module_line = re.compile(r" *%s *(?:[#;].*)?\n?" % name)
    option_line = re.compile(r"options %s (\w+=\S+) *(?:[#;].*)?\n?" % name)
    loads = {p: _read_lines(p) for p in _conf_files(MODULES_LOAD_DIR)}
    options = {p: _read_lines(p) for p in _conf_files(MODPROBE_DIR)}
    listed = any(module_line.fullmatch(ln) for lines in loads.values() for ln in lines)
    current = {m.group(1) for lines in options.values() for m in map(option_line.fullmatch, lines) if m}
    out: Dict[str, Tuple[Optional[str], str]] = {}

    def comment_out(files: Dict[str, List[str]], pattern: Any) -> None:
        for path, lines in files.items():
            new = ["#" + ln if pattern.fullmatch(ln) else ln for ln in lines]
            if new != lines:
                out[path] = ("".join(lines), "".join(new))
    if args.persistent == "present":
        if not listed:
            out[os.path.join(MODULES_LOAD_DIR, args.name + ".conf")] = (None, args.name + "\n")
        if set(args.params.split()) != current:
            comment_out(options, option_line)
            path = os.path.join(MODPROBE_DIR, args.name + ".conf")
            text = "".join("options %s %s\n" % (args.name, p) for p in args.params.split()) or "\n"
            out[path] = ("".join(options[path]) if path in options else None, text)
    elif args.persistent == "absent":
        if listed:
            comment_out(loads, module_line)
        if current:
            comment_out(options, option_line)
    return out


def plan(args: Args, host: Host) -> Change:
    todo: Dict[str, Any] = {"load": None, "files": {}}
    msgs = []
    loaded = is_loaded(args.name)
    if args.state == "present" and not loaded:
        todo["load"] = [args.name] + shlex.split(args.params)
        msgs.append("load %s" % args.name)
    elif args.state == "absent" and loaded:
        todo["load"] = ["-r", args.name]
        msgs.append("unload %s" % args.name)
    if todo["load"] is not None and host.check_mode:
        _modprobe(host, ["-n"] + todo["load"])
    files = _edits(args)
    todo["files"] = {p: new for p, (_, new) in files.items()}
    if files:
        msgs.append("%s %s" % ("write" if args.persistent == "present" else "disable in", ", ".join(sorted(files))))
    diff = None
    if files:  # --diff shows one text: each changed file's lines under its name
        before = "".join("# %s\n%s" % (p, files[p][0] or "") for p in sorted(files))
        after = "".join("# %s\n%s" % (p, files[p][1]) for p in sorted(files))
        diff = text_diff(", ".join(sorted(files)), before, after)
    data = {"name": args.name, "params": args.params, "state": args.state}
    return Change(bool(todo["load"] or files), "; ".join(msgs), diff, todo=todo, data=data)


def _modprobe(host: Host, argv: List[str]) -> None:
    binary = host.which("modprobe") or next((p for p in ("/usr/sbin/modprobe", "/sbin/modprobe")
                                             if os.path.exists(p)), None)
    if binary is None:
        raise ModuleError("modprobe is not installed on the host (Debian/Ubuntu: package kmod)", rc=127)
    res = host.run([binary] + argv)
    if res.rc != 0:
        raise ModuleError(res.stderr.strip() or "modprobe %s failed" % " ".join(argv), rc=res.rc,
                          stdout=res.stdout, stderr=res.stderr)


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    if change.todo["load"] is not None:
        _modprobe(host, change.todo["load"])
    for path, text in change.todo["files"].items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        host.write_atomic(path, text.encode(), mode=None)
    return {}
