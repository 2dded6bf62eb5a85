"""lineinfile: make sure one line is in a file (or absent), replacing the line a regexp finds.

Ansible's algorithm, on bytes as Ansible does it: the LAST regexp/search_string match is
replaced (the first with firstmatch), else the line goes after/before the insertafter/
insertbefore match or at EOF; with backrefs and no match nothing changes.
"""

from __future__ import annotations

import os
import re

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules.copy import plan_content, run_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"dest": "path", "destfile": "path", "name": "path", "regex": "regexp", "value": "line"}
NL = os.linesep.encode()


class Args(ModuleArgs):
    path: str
    line: str | None = None
    regexp: str | None = None
    search_string: str | None = None
    state: Literal["present", "absent"] = "present"
    insertafter: str | None = None
    insertbefore: str | None = None
    create: bool = False
    backup: bool = False
    firstmatch: bool = False
    backrefs: bool = False
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None
    validate: str | None = None


def readlines(raw: bytes) -> list[bytes]:
    """Split like a binary file's readlines(): on b'\\n' only, endings kept."""
    parts = raw.split(b"\n")
    return [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _present(args: Args, lines: list[bytes]) -> tuple[str, bool]:
    line = (args.line or "").encode("utf-8", "surrogateescape")
    after, before = args.insertafter, args.insertbefore
    if after is None and before is None:
        after = "EOF"
    ins_re = (re.compile(after.encode()) if after not in (None, "BOF", "EOF")
              else re.compile(before.encode()) if before not in (None, "BOF") else None)
    index, matched, rx_match = [-1, -1], False, None
    if args.regexp is not None:
        rx = re.compile(args.regexp.encode("utf-8", "surrogateescape"))
        for n, cur in enumerate(lines):
            found = rx.search(cur)
            if found:
                index[0], matched, rx_match = n, True, found
                if args.firstmatch:
                    break
    if args.search_string is not None:
        needle = args.search_string.encode("utf-8", "surrogateescape")
        for n, cur in enumerate(lines):
            if needle in cur:
                index[0], matched = n, True
                if args.firstmatch:
                    break
    if not matched:
        for n, cur in enumerate(lines):
            if line == cur.rstrip(b"\r\n"):
                index[0] = n
            elif ins_re is not None and ins_re.search(cur):
                index[1] = n + 1 if after else n
                if args.firstmatch:
                    break
    if index[0] != -1:
        new = rx_match.expand(line) if args.backrefs and rx_match else line
        new = new if new.endswith(NL) else new + NL
        if lines[index[0]] == new:
            return "", False
        lines[index[0]] = new
        return "line replaced", True
    if args.backrefs:
        return "", False  # no match to fill the backrefs from: Ansible leaves the file alone
    if before == "BOF" or after == "BOF":
        lines.insert(0, line + NL)
    elif after == "EOF" or index[1] == -1:
        if lines and lines[-1][-1:] not in (b"\n", b"\r"):
            lines.append(NL)
        lines.append(line + NL)
    elif after and index[1] != -1:
        if len(lines) == index[1]:
            if lines[index[1] - 1].rstrip(b"\r\n") == line:
                return "", False
            lines.append(line + NL)
        elif line == lines[index[1]].rstrip(b"\r\n"):
            return "", False
        else:
            lines.insert(index[1], line + NL)
    else:
        lines.insert(index[1], line + NL)
    return "line added", True


def _absent(args: Args, lines: list[bytes]) -> tuple[list[bytes], int]:
    rx = re.compile(args.regexp.encode("utf-8", "surrogateescape")) if args.regexp is not None else None
    needle = None if args.search_string is None else args.search_string.encode("utf-8", "surrogateescape")
    line = (args.line or "").encode("utf-8", "surrogateescape")

    def matches(cur: bytes) -> bool:
        if rx is not None:
            return bool(rx.search(cur))
        if needle is not None:
            return needle in cur
        return line == cur.rstrip(b"\r\n")
    kept = [cur for cur in lines if not matches(cur)]
    return kept, len(lines) - len(kept)


def _check(args: Args) -> None:
    for a, b in (("insertbefore", "insertafter"), ("regexp", "search_string"), ("backrefs", "search_string")):
        if getattr(args, a) not in (None, False) and getattr(args, b) is not None:
            raise ModuleError(f"parameters are mutually exclusive: {a}|{b}")
    if args.state == "present":
        if args.backrefs and args.regexp is None:
            raise ModuleError("regexp is required with backrefs=true")
        if args.line is None:
            raise ModuleError("line is required with state=present")
    elif (args.regexp, args.search_string, args.line) == (None, None, None):
        raise ModuleError("one of line, search_string, or regexp is required with state=absent")


def plan(args: Args, host: Host) -> Change:
    path = os.path.expanduser(args.path)
    if os.path.isdir(path):
        raise ModuleError(f"Path {path} is a directory !", rc=256)
    _check(args)
    real = os.path.realpath(path)  # like Ansible, write through a symlink to the real file
    raw = host.read_bytes(real)
    data: dict[str, Any] = {"backup": ""}
    if raw is None:
        if args.state == "absent":
            return Change(False, "file not present", data=data)
        if not args.create:
            raise ModuleError(f"Destination {path} does not exist !", rc=257)
    lines = readlines(raw or b"")
    try:
        if args.state == "present":
            msg, changed = _present(args, lines)
        else:
            lines, found = _absent(args, lines)
            changed, msg = found > 0, f"{found} line(s) removed" if found else ""
            data["found"] = found
    except re.error as exc:
        raise ModuleError(f"invalid regular expression: {exc}")
    return plan_content(host, args, real, b"".join(lines), msg, data, before=raw,
                        changed=changed or raw is None)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    return {"backup": run_write(host, change.todo).get("backup_file", "")}
