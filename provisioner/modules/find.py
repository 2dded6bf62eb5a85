"""find: list the files under some directories that match every criterion given (name, age, size,
type, content, mode), as Ansible's find does: `files` holds each match's stat fields.

Read-only: it never changes the host, so it runs (and reports) in check mode too.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat as st_mod
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, parse_mode
from provisioner.modules.stat import digests, stat_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional

ALIASES = {"name": "paths", "path": "paths", "pattern": "patterns", "exclude": "excludes"}
CHECK_MODE = True
# Ansible's find returns stat's fields less these (which stat alone computes).
_NOT_IN_FIND = ("exists", "readable", "writeable", "executable", "blocks", "block_size", "device_type",
                "owner", "group", "lnk_source", "lnk_target")


class Args(ModuleArgs):
    paths: List[str]
    patterns: List[str] = []
    excludes: Optional[List[str]] = None
    contains: Optional[str] = None
    read_whole_file: bool = False
    file_type: Literal["file", "directory", "link", "any"] = "file"
    recurse: bool = False
    age: Optional[str] = None
    age_stamp: Literal["atime", "ctime", "mtime"] = "mtime"
    size: Optional[str] = None
    hidden: bool = False
    follow: bool = False
    get_checksum: bool = False
    checksum_algorithm: Literal["md5", "sha1", "sha224", "sha256", "sha384", "sha512"] = "sha1"
    use_regex: bool = False
    depth: Optional[int] = None
    encoding: Optional[str] = None
    mode: Any = None
    exact_mode: bool = True
    limit: Optional[int] = None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZES = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def _signed(text: Optional[str], units: Dict[str, int], what: str) -> Optional[int]:
    if text is None:
        return None
    m = re.match(r"^(-?\d+)(%s)?$" % "|".join(units), str(text).strip().lower())
    if not m:
        raise ModuleError("failed to process %s" % what)
    return int(m.group(1)) * units[m.group(2) or next(iter(units))]


def _name_ok(name: str, args: Args) -> bool:
    regex = args.use_regex
    patterns = args.patterns or ([".*"] if regex else ["*"])

    def hit(pats: List[str]) -> bool:
        return any(re.match(p, name) if regex else fnmatch.fnmatch(name, p) for p in pats)
    return hit(patterns) and not (args.excludes and hit(args.excludes))


def _content_ok(path: str, args: Args) -> bool:
    if args.contains is None:
        return True
    prog = re.compile(args.contains)
    try:
        with open(path, encoding=args.encoding or "utf-8", errors="replace") as f:
            if args.read_whole_file:
                return bool(prog.search(f.read()))
            return any(prog.match(line) for line in f)
    except OSError:
        return False


def _selected(path: str, st: os.stat_result, args: Args, age: Optional[int], size: Optional[int],
              now: float) -> bool:
    kind = args.file_type
    m = st.st_mode
    test = {"file": st_mod.S_ISREG, "directory": st_mod.S_ISDIR, "link": st_mod.S_ISLNK}.get(kind)
    if test is not None and not test(m):
        return False
    if age is not None:
        elapsed = now - getattr(st, "st_" + args.age_stamp)
        if not (elapsed >= age if age >= 0 else elapsed <= -age):
            return False
    if size is not None and kind == "file" and not (st.st_size >= size if size >= 0 else st.st_size <= -size):
        return False
    if args.mode is not None:
        want = parse_mode(args.mode, st_mod.S_IMODE(m))
        have = st_mod.S_IMODE(m)
        if want is None or (have != want if args.exact_mode else (have & want) != want):
            return False
    return kind != "file" or _content_ok(path, args)


def _entry(path: str, args: Args) -> Dict[str, Any]:
    info = stat_dict(path, args.follow)
    for key in _NOT_IN_FIND:
        info.pop(key, None)
    if args.get_checksum and info.get("isreg") and os.access(path, os.R_OK):
        info["checksum"] = digests(path, args.checksum_algorithm)[0]
    return info


def plan(args: Args, host: Host) -> Change:
    age = _signed(args.age, _UNITS, "age")
    size = _signed(args.size, _SIZES, "size")
    for p in (args.patterns or []) + (args.excludes or []):
        if args.use_regex:
            try:
                re.compile(p)
            except re.error as exc:
                raise ModuleError("invalid regular expression %r: %s" % (p, exc))
    now = time.time()
    files: List[Dict[str, Any]] = []
    skipped: Dict[str, str] = {}
    examined = 0
    for given in args.paths:
        top = os.path.expanduser(os.path.expandvars(given))
        if not os.path.isdir(top):
            skipped[top] = "'%s' is not a directory" % top
            continue
        base_depth = top.rstrip(os.sep).count(os.sep) + 1
        for root, dirs, names in os.walk(top, onerror=lambda e: skipped.setdefault(e.filename, str(e)),
                                         followlinks=args.follow):
            examined += len(dirs) + len(names)
            for name in names + dirs:
                path = os.path.normpath(os.path.join(root, name))
                if args.depth and path.count(os.sep) - base_depth + 1 > args.depth:
                    del dirs[:]
                    continue
                if name.startswith(".") and not args.hidden:
                    continue
                if not _name_ok(name, args):
                    continue
                try:
                    st = os.stat(path) if args.follow else os.lstat(path)
                except OSError as exc:
                    skipped[path] = str(exc)
                    continue
                if _selected(path, st, args, age, size, now):
                    files.append(_entry(path, args))
                    if args.limit and len(files) >= args.limit:
                        break
            if not args.recurse or (args.limit and len(files) >= args.limit):
                break
    msg = "All paths examined" if not skipped else "Not all paths examined, check warnings for details"
    return Change(False, msg, data={"files": files, "matched": len(files), "examined": examined,
                                    "skipped_paths": skipped})


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    return {"changed": False}
