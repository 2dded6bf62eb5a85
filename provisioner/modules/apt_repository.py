"""apt_repository: one-line APT source ("deb [signed-by=...] URI suite comps") present or absent.

As Ansible: a source already enabled in any .list file counts as present, a commented-out copy is
re-enabled in place, new lines go to sources.list.d/<filename>.list, and the cache is updated
only when a file changed. Launchpad "ppa:" shorthands are refused (give the deb line).
"""

from __future__ import annotations

import os
import re
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, glob_paths, parse_mode, text_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

SOURCES_LIST = "/etc/apt/sources.list"
SOURCES_DIR = "/etc/apt/sources.list.d"
ALIASES = {"update-cache": "update_cache"}


class Args(ModuleArgs):
    repo: str
    state: Literal["present", "absent"] = "present"
    filename: str | None = None           # without .list; default from the repository URI
    mode: Any = None                      # default 0644 for a new file
    update_cache: bool = True
    update_cache_retries: int = 5
    update_cache_retry_max_delay: int = 12
    validate_certs: bool = True           # accepted for compatibility; nothing is downloaded
    codename: str | None = None           # only meaningful for ppa:, which is not supported
    install_python_apt: bool = True       # accepted for compatibility; python-apt is not used


def normalize(line: str) -> str:
    text = " ".join(line.split())
    return re.sub(r"\s*\]", "]", re.sub(r"\[\s*", "[", text))


def parse_line(line: str) -> tuple[bool, str] | None:
    """(enabled, normalized source) for a deb/deb-src line, commented out or not; None otherwise."""
    text = line.strip()
    enabled = not text.startswith("#")
    text = text.lstrip("#").strip()
    if not re.match(r"^deb(-src)?\s", text):
        return None
    return enabled, normalize(text.split("#", 1)[0])


def default_filename(repo: str) -> str:
    """Ansible's suggestion: the URI's host and path, non-alphanumerics as underscores."""
    line = re.sub(r"\w+://", "", re.sub(r"\[[^\]]+\]", "", repo))
    parts = [p for p in line.split() if p not in ("deb", "deb-src")]
    return "_".join(re.sub("[^a-zA-Z0-9]", " ", parts[0].split("@")[-1]).split())


def source_files() -> list[str]:
    return ([SOURCES_LIST] if os.path.exists(SOURCES_LIST) else []) + \
        sorted(glob_paths(os.path.join(SOURCES_DIR, "*.list")))


def plan(args: Args, host: Host) -> Change:
    if args.repo.startswith("ppa:"):
        raise ModuleError("ppa: repositories are not supported; give the 'deb [signed-by=...] URI suite "
                          "components' line instead")
    wanted = normalize(args.repo)
    parsed = parse_line(wanted)
    if parsed is None or not parsed[0]:
        raise ModuleError(f"Invalid repository string: {args.repo}")
    name = args.filename or default_filename(wanted)
    if "/" in name or not name:
        raise ModuleError(f"invalid filename: {name!r}")
    target = os.path.join(SOURCES_DIR, name + ".list")
    texts = {path: host.read_text(path) or "" for path in source_files()}
    matches = {path: [parse_line(line) for line in text.splitlines()] for path, text in texts.items()}
    new: dict[str, str] = {}
    if args.state == "present":
        if not any(m == (True, wanted) for found in matches.values() for m in found):
            disabled = next((p for p, found in matches.items() if (False, wanted) in found), None)
            if disabled:            # re-enable the commented-out copy where it is
                new[disabled] = "".join(normalize(line.strip().lstrip("#")) + "\n"
                                        if parse_line(line) == (False, wanted) else line + "\n"
                                        for line in texts[disabled].splitlines())
            else:
                before = texts.get(target, "")
                new[target] = before + ("\n" if before and not before.endswith("\n") else "") + wanted + "\n"
    else:
        for path, found in matches.items():
            if (True, wanted) in found:
                new[path] = "".join(line + "\n" for line in texts[path].splitlines()
                                    if parse_line(line) != (True, wanted))
    added = [p for p in new if p not in texts]
    removed = [p for p, text in new.items() if not text.strip()]
    data = {"repo": args.repo, "state": args.state, "sources_added": added, "sources_removed": removed}
    if not new:
        return Change(False, "", data=data)
    first = next(iter(new))
    return Change(True, ("would " if host.check_mode else "") + f"change {', '.join(new)}",
                  diff=text_diff(first, texts.get(first), new[first]), todo=new, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    mode = parse_mode(args.mode)
    for path, text in change.todo.items():
        if text.strip():
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            keep = os.path.exists(path)        # an existing file keeps its mode unless one is given
            host.write_atomic(path, text.encode(), mode=mode if mode is not None else None if keep else 0o644)
        elif os.path.exists(path):
            os.unlink(path)
    if not args.update_cache:
        return {"changed": True}
    for attempt in range(max(args.update_cache_retries, 1)):
        res = host.run(["apt-get", "update", "-q"], env={"DEBIAN_FRONTEND": "noninteractive"})
        if res.rc == 0:
            return {"changed": True}
        if attempt + 1 < args.update_cache_retries:
            time.sleep(min(2 ** attempt, args.update_cache_retry_max_delay))
    raise ModuleError(f"Failed to update apt cache: {(res.stderr or res.stdout).strip()[-1000:]}",
                      rc=res.rc, stdout=res.stdout, stderr=res.stderr)
