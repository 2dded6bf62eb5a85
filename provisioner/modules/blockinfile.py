"""blockinfile: keep a block of lines between two marker lines in a file (or remove it).

Ansible's algorithm: an existing marked block is replaced in place; otherwise the block
goes after the last insertafter match / before the last insertbefore match, or at EOF.
"""

from __future__ import annotations

import os
import re

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules.copy import plan_content, run_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"dest": "path", "destfile": "path", "name": "path", "content": "block"}
NL = os.linesep.encode()


class Args(ModuleArgs):
    path: str
    block: str = ""
    state: Literal["present", "absent"] = "present"
    marker: str = "# {mark} ANSIBLE MANAGED BLOCK"
    marker_begin: str = "BEGIN"
    marker_end: str = "END"
    insertafter: str | None = None
    insertbefore: str | None = None
    create: bool = False
    backup: bool = False
    append_newline: bool = False
    prepend_newline: bool = False
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None
    validate: str | None = None


def _position(args: Args, lines: list[bytes], original: bytes) -> int:
    """Where a block not yet in the file goes, as Ansible computes it."""
    after, before = args.insertafter, args.insertbefore
    if after is None and before is None:
        after = "EOF"
    pattern = after if after not in (None, "EOF") else before if before not in (None, "BOF") else None
    if pattern is None:
        return 0 if before is not None else len(lines)
    rx = re.compile(pattern.encode("utf-8", "surrogateescape"))
    n0: int | None = None
    if rx.flags & re.MULTILINE:  # a multi-line pattern is matched against the whole file
        m = rx.search(original)
        if m:
            n0 = original.count(b"\n", 0, m.end() if after else m.start())
    else:
        for i, line in enumerate(lines):
            if rx.search(line):
                n0 = i
    if n0 is None:
        return len(lines)
    return n0 + 1 if after is not None else n0


def render(args: Args, original: bytes) -> bytes:
    lines = original.splitlines(True)
    present = args.state == "present"
    marker = args.marker.encode("utf-8", "surrogateescape")
    begin = marker.replace(b"{mark}", args.marker_begin.encode()) + NL
    end = marker.replace(b"{mark}", args.marker_end.encode()) + NL
    block = args.block.encode("utf-8", "surrogateescape")
    blocklines: list[bytes] = []
    if present and block:
        block = block if block.endswith(NL) else block + NL
        blocklines = [begin] + block.splitlines(True) + [end]
    n0 = n1 = None
    for i, line in enumerate(lines):
        if line == begin:
            n0 = i
        if line == end:
            n1 = i
    if n0 is None or n1 is None:
        n0 = _position(args, lines, original)
    elif n0 < n1:
        lines[n0:n1 + 1] = []
    else:
        lines[n1:n0 + 1] = []
        n0 = n1
    if n0 > 0 and not lines[n0 - 1].endswith(NL):
        lines[n0 - 1] += NL
    if args.prepend_newline and present and n0 != 0 and lines[n0 - 1] != NL:
        lines[n0:n0] = [NL]
        n0 += 1
    lines[n0:n0] = blocklines
    after_block = n0 + len(blocklines)
    if args.append_newline and present and after_block < len(lines) and lines[after_block] != NL:
        lines[after_block:after_block] = [NL]
    return b"".join(lines)


def plan(args: Args, host: Host) -> Change:
    path = os.path.expanduser(args.path)
    if args.insertafter is not None and args.insertbefore is not None:
        raise ModuleError("parameters are mutually exclusive: insertbefore|insertafter")
    if os.path.isdir(path):
        raise ModuleError(f"Path {path} is a directory !", rc=256)
    real = os.path.realpath(path)  # like Ansible, write through a symlink to the real file
    original = host.read_bytes(real)
    if original is None:
        if args.state == "absent":
            return Change(False, f"File {path} not present")
        if not args.create:
            raise ModuleError(f"Path {path} does not exist !", rc=257)
    try:
        result = render(args, original or b"")
    except re.error as exc:
        raise ModuleError(f"invalid regular expression: {exc}")
    if original == result:
        msg = ""
    elif original is None:
        msg = "File created"
    else:
        msg = "Block inserted" if args.state == "present" and args.block else "Block removed"
    return plan_content(host, args, real, result, msg, {}, before=original)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    return run_write(host, change.todo)
