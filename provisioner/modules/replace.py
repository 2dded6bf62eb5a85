"""replace: every match of a Python regexp in a file replaced, as Ansible's `replace` does it.

The file is decoded with `encoding` (utf-8), the pattern compiled with re.MULTILINE; `after`/
`before` narrow the search to the text between their (DOTALL) matches. The path must exist.
"""

from __future__ import annotations

import os
import re

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules.copy import plan_content, run_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ALIASES = {"dest": "path", "destfile": "path", "name": "path"}


class Args(ModuleArgs):
    path: str
    regexp: str
    replace: str = ""
    after: str | None = None
    before: str | None = None
    backup: bool = False
    validate: str | None = None
    encoding: str = "utf-8"
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None


def replaced(args: Args, contents: str) -> tuple[str, int, str]:
    """(new contents, number of replacements, message when the after/before section is missing)."""
    pattern = ""
    if args.after and args.before:
        pattern = f"{args.after}(?P<subsection>.*?){args.before}"
    elif args.after:
        pattern = f"{args.after}(?P<subsection>.*)"
    elif args.before:
        pattern = f"(?P<subsection>.*){args.before}"
    start, end = 0, len(contents)
    if pattern:
        found = re.search(re.compile(pattern, re.DOTALL), contents)
        if not found:
            return contents, 0, f"Pattern for before/after params did not match the given file: {pattern}"
        start, end = found.start("subsection"), found.end("subsection")
    section = contents[start:end]
    try:
        new, count = re.subn(re.compile(args.regexp, re.MULTILINE), args.replace, section)
    except re.error as exc:
        raise ModuleError(f"Unable to process replace due to error: {exc}")
    if count == 0 or new == section:
        return contents, 0, ""
    return contents[:start] + new + contents[end:], count, ""


def plan(args: Args, host: Host) -> Change:
    path = os.path.expanduser(args.path)
    if os.path.isdir(path):
        raise ModuleError(f"Path {path} is a directory !", rc=256)
    raw = host.read_bytes(path)
    if raw is None:
        raise ModuleError(f"Path {path} does not exist !", rc=257)
    try:
        contents = raw.decode(args.encoding, "surrogateescape")
    except LookupError:
        raise ModuleError(f"unknown encoding: {args.encoding}")
    new, count, missing = replaced(args, contents)
    if missing:
        return Change(False, missing, data={"rc": 0})
    msg = f"{count} replacements made" if count else ""
    after = new.encode(args.encoding, "surrogateescape")
    # like Ansible, write through a symlink to the real file
    return plan_content(host, args, os.path.realpath(path), after, msg, {"rc": 0}, before=raw, changed=count > 0)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    out = run_write(host, change.todo)
    return {"backup_file": out["backup_file"]} if "backup_file" in out else {}
