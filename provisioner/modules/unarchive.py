"""unarchive: extract a tar (plain, .gz, .bz2, .xz) or zip archive into an existing directory.

`src` is a path on the host (for a controller-side archive the controller first copies it
over and passes remote_src=true) or a URL, downloaded to a temp file each run. Extraction is pure Python (tarfile/zipfile, no tar binary):
each member is compared with what is at dest (type; size, mtime and mode of a file; a symlink's
target), only differing members are written, so a converged dest reports no change. Symlinks
are kept as symlinks; members escaping dest (absolute paths, "..", links pointing outside) are
refused before anything is written.
"""

from __future__ import annotations

import fnmatch
import lzma
import os
import posixpath
import shutil
import stat as st_mod
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from functools import partial

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff
from provisioner.modules import get_url
from provisioner.modules.file import attr_ops, current_mode, path_info, run_ops

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Args(ModuleArgs):
    src: str
    dest: str
    remote_src: bool = False
    creates: str | None = None
    list_files: bool = False
    exclude: list[str] = []
    include: list[str] = []
    keep_newer: bool = False
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None
    extra_opts: list[str] = []  # tar/unzip options: ignored by the Python extractors
    validate_certs: bool = True  # for a URL src


class Member:
    def __init__(self, raw: str, kind: str, size: int, mtime: float, mode: int, link: str = "") -> None:
        self.raw = raw      # the name as stored in the archive
        self.kind = kind    # dir, file, symlink, hardlink, other
        self.size = size
        self.mtime = mtime
        self.mode = mode    # permission bits; 0 when the archive recorded none (zip made on Windows)
        self.link = link

    @property
    def name(self) -> str:
        name = posixpath.normpath(self.raw)
        if self.raw.startswith("/") or name == ".." or name.startswith("../"):
            raise ModuleError(f"refusing to extract {self.raw!r}: the path leads outside dest")
        return name


def handler_name(src: str) -> str:
    if zipfile.is_zipfile(src):
        return "ZipArchive"
    with open(src, "rb") as f:
        head = f.read(6)
    magics = ((b"\x1f\x8b", "TgzArchive"), (b"BZh", "TarBzipArchive"), (b"\xfd7zXZ", "TarXzArchive"))
    for magic, name in magics:
        if head.startswith(magic):
            return name
    return "TarArchive"


def members(src: str) -> Iterator[tuple[Member, Callable[[], Any]]]:
    """Each member with a function opening its data, streaming through the archive once."""
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                bits = info.external_attr >> 16
                kind = "dir" if info.is_dir() else "symlink" if st_mod.S_ISLNK(bits) else "file"
                link = zf.read(info).decode("utf-8", "surrogateescape") if kind == "symlink" else ""
                mtime = time.mktime(info.date_time + (0, 0, -1))
                member = Member(info.filename, kind, info.file_size, mtime, st_mod.S_IMODE(bits), link)
                yield member, partial(zf.open, info)
        return
    try:
        with tarfile.open(src, "r:*") as tf:
            for ti in tf:
                kind = ("dir" if ti.isdir() else "symlink" if ti.issym() else "hardlink" if ti.islnk()
                        else "file" if ti.isreg() else "other")
                member = Member(ti.name, kind, ti.size, ti.mtime, ti.mode & 0o7777, ti.linkname)
                yield member, partial(tf.extractfile, ti)
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
        raise ModuleError(f"cannot unarchive {src}: not a readable tar (plain, gz, bz2, xz) or zip ({exc})")


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _lands(dest: str, path: str, links: dict[str, str]) -> str:
    """Where path (relative to dest, or absolute) really lands once the archive's links seen so far
    exist: `links` maps member names to link targets ("" for a member that is not a symlink)."""
    cur, parts, hops = ("/" if path.startswith("/") else dest), path.split("/"), 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, part)
        link = links.get(os.path.relpath(nxt, dest)) if _inside(dest, nxt) else None
        if link is None and os.path.islink(nxt):
            link = os.readlink(nxt)
        if not link:
            cur = nxt
            continue
        hops += 1
        if hops > 40:
            raise ModuleError(f"too many levels of symbolic links under {dest}")
        parts = link.split("/") + parts
        cur = "/" if link.startswith("/") else cur
    return cur


def _refuse_escape(dest: str, m: Member, links: dict[str, str]) -> None:
    """Refuse a member whose directory, or link target, resolves outside dest."""
    parent = os.path.dirname(m.name)
    if not _inside(dest, _lands(dest, parent, links)):
        raise ModuleError(f"refusing to extract {m.raw!r}: a symlink leads outside {dest}")
    if m.kind in ("symlink", "hardlink"):
        link = os.path.join(parent, m.link) if m.kind == "symlink" else m.link  # an absolute link stays so
        if not _inside(dest, _lands(dest, link, links)):
            raise ModuleError(f"refusing to extract {m.raw!r} -> {m.link!r}: the link points outside {dest}")


def _selected(args: Args, name: str) -> bool:
    if args.include and not any(fnmatch.fnmatch(name, p) for p in args.include):
        return False
    return not any(fnmatch.fnmatch(name, p) for p in args.exclude)


def _differs(args: Args, dest: str, m: Member, path: str, todo: list[str]) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    mode_differs = args.mode is None and m.mode != 0 and st_mod.S_IMODE(st.st_mode) != m.mode
    if m.kind == "dir":
        return not st_mod.S_ISDIR(st.st_mode) or mode_differs
    if m.kind == "symlink":
        return not st_mod.S_ISLNK(st.st_mode) or os.readlink(path) != m.link
    if m.kind == "hardlink":
        target = os.path.join(dest, os.path.normpath(m.link))
        if os.path.normpath(m.link) in todo or not os.path.exists(target):
            return True
        return not os.path.samefile(path, target)
    if not st_mod.S_ISREG(st.st_mode):
        return True
    if args.keep_newer and st.st_mtime > m.mtime:
        return False
    return st.st_size != m.size or int(st.st_mtime) != int(m.mtime) or mode_differs


def plan(args: Args, host: Host) -> Change:
    if args.creates and os.path.exists(os.path.expanduser(args.creates)):
        return Change(False, f"skipped, since {args.creates} exists", data={"skipped": True})
    if "://" not in args.src:
        return _plan(args, host, os.path.expanduser(args.src))
    fetch = get_url.Args(url=args.src, dest="", validate_certs=args.validate_certs)
    fetched = get_url.download(fetch, host.tmpdir)[0]
    try:
        change = _plan(args, host, fetched)
    except BaseException:
        os.unlink(fetched)
        raise
    change.data["src"] = args.src
    change.todo["fetched"] = fetched
    if host.check_mode or not change.changed:  # apply will not run: nothing else removes it
        os.unlink(fetched)
    return change


def _plan(args: Args, host: Host, src: str) -> Change:
    dest = os.path.expanduser(args.dest)
    if host.check_mode and not (os.path.isfile(src) and os.path.isdir(dest)):
        # an earlier task of this run would have fetched the archive or made the directory
        return Change(True, f"would unpack {src} into {dest} (not there yet)", data={"dest": dest})
    if not os.path.isfile(src):
        raise ModuleError(f"Source '{src}' does not exist")
    if not os.path.isdir(dest):
        raise ModuleError(f"Destination '{dest}' is not a directory")
    dest = os.path.realpath(dest)
    todo: list[str] = []
    names: list[str] = []
    attrs = []
    links: dict[str, str] = {}
    for m, _ in members(src):
        name = m.name
        if name == "." or not _selected(args, name):
            continue
        if m.kind == "other":
            raise ModuleError(f"refusing to extract {m.raw!r}: only files, directories and links are handled")
        _refuse_escape(dest, m, links)  # before anything is written, with the archive's own links
        links[name] = m.link if m.kind == "symlink" else ""
        names.append(m.raw)
        path = os.path.join(dest, name)
        if _differs(args, dest, m, path, todo):
            todo.append(name)
        elif args.mode is not None or args.owner is not None or args.group is not None:
            attrs += attr_ops(path, args.mode, args.owner, args.group, follow=m.kind != "symlink")[0]
    data: dict[str, Any] = {"dest": dest, "src": src, "handler": handler_name(src)}
    if args.list_files:
        data["files"] = names
    return Change(bool(todo or attrs), "", text_diff(dest, "", "".join(n + "\n" for n in todo)),
                  todo={"src": src, "dest": dest, "names": set(todo), "attrs": attrs}, data=data)


def _extract(m: Member, dest: str, opener: Callable[[], Any]) -> None:
    path = os.path.join(dest, m.name)
    parent = os.path.dirname(path)
    _refuse_escape(dest, m, {})  # again against the disk: it may have changed since the plan
    os.makedirs(parent, exist_ok=True)
    is_dir = os.path.isdir(path) and not os.path.islink(path)
    if m.kind == "dir":
        if os.path.lexists(path) and not is_dir:
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
        return
    if is_dir:
        raise ModuleError(f"cannot extract {m.raw!r}: {path} is a directory")
    if m.kind == "file":
        fd, tmp = tempfile.mkstemp(prefix=".provision-", dir=parent)
        try:
            with os.fdopen(fd, "wb") as out, opener() as data:
                shutil.copyfileobj(data, out, 1 << 20)
            os.chmod(tmp, m.mode or current_mode(None) & 0o777)
            os.utime(tmp, (m.mtime, m.mtime))
            os.replace(tmp, path)  # a library in use keeps its old inode: no "text file busy"
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    if os.path.lexists(path):
        os.unlink(path)
    if m.kind == "symlink":
        os.symlink(m.link, path)
    else:
        os.link(os.path.join(dest, os.path.normpath(m.link)), path)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    try:
        return _apply(args, change, host)
    finally:
        if change.todo.get("fetched"):
            os.unlink(change.todo["fetched"])


def _apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    dest, todo = change.todo["dest"], change.todo["names"]
    dirs: list[Member] = []
    written: list[Member] = []
    for m, opener in members(change.todo["src"]):
        if m.name in todo:
            _extract(m, dest, opener)
            written.append(m)
            if m.kind == "dir":
                dirs.append(m)
    for m in reversed(dirs):  # last: a read-only directory must not block its own contents
        path = os.path.join(dest, m.name)
        if m.mode:
            os.chmod(path, m.mode)
        os.utime(path, (m.mtime, m.mtime))
    ops = list(change.todo["attrs"])
    if args.mode is not None or args.owner is not None or args.group is not None:
        for m in written:
            path = os.path.join(dest, m.name)
            ops += attr_ops(path, args.mode, args.owner, args.group, follow=m.kind != "symlink")[0]
    run_ops(ops)
    info = {k: v for k, v in path_info(host, dest).items() if k not in ("path", "size")}
    return dict(info, state="directory")
