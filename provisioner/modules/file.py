"""file: make a path a file, directory, symlink or hard link, touch it or remove it, with mode and owner.

Also where the file-writing modules (copy, lineinfile, ...) get their attribute logic:
mode/owner/group are planned as plain ops and run later, so check mode is the plan alone.
"""

from __future__ import annotations

import os
import stat as st_mod
import time

from provisioner.host.runtime import (
    Change,
    Host,
    ModuleArgs,
    ModuleError,
    _group_name,
    _user_name,
    parse_mode,
    resolve_gid,
    resolve_uid,
    text_diff,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"dest": "path", "name": "path"}

Op = tuple  # (kind, path, *args), carried out by run_ops
NOW = "now"


class Args(ModuleArgs):
    path: str
    state: Literal["file", "directory", "link", "hard", "touch", "absent"] | None = None
    src: str | None = None
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None
    recurse: bool = False
    force: bool = False
    follow: bool = True
    access_time: str | None = None
    access_time_format: str = "%Y%m%d%H%M.%S"
    modification_time: str | None = None
    modification_time_format: str = "%Y%m%d%H%M.%S"


def path_state(path: str) -> str:
    """Ansible's view of a path: absent, link, directory, hard (a file with several names) or file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    if st_mod.S_ISLNK(st.st_mode):
        return "link"
    if st_mod.S_ISDIR(st.st_mode):
        return "directory"
    return "hard" if st.st_nlink > 1 else "file"


def current_mode(path: str | None, kind: str = "file") -> int:
    """st_mode of an existing path, or the one a new file/directory gets under the umask."""
    if path is not None and os.path.lexists(path):
        return os.stat(path).st_mode
    umask = os.umask(0)
    os.umask(umask)
    if kind == "directory":
        return st_mod.S_IFDIR | (0o777 & ~umask)
    return st_mod.S_IFREG | (0o666 & ~umask)


def attr_ops(path: str, mode: Any, owner: Any, group: Any, follow: bool = True,
             new: str | None = None) -> tuple[list[Op], dict[str, str], dict[str, str]]:
    """Ops bringing path's mode/owner/group to what was asked (`new`: a kind about to be created),
    with before/after values for the diff. Symlinks keep their mode (Linux has no lchmod)."""
    if new is None:
        st = os.stat(path) if follow else os.lstat(path)
        cur, uid_now, gid_now = st.st_mode, st.st_uid, st.st_gid
    else:
        cur, uid_now, gid_now = current_mode(None, new), -2, -2  # a new path: always chown when asked
    ops: list[Op] = []
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    want = parse_mode(mode, cur)
    if want is not None and new != "link" and not st_mod.S_ISLNK(cur) and want != st_mod.S_IMODE(cur):
        ops.append(("chmod", path, want))
        before["mode"], after["mode"] = f"{st_mod.S_IMODE(cur):04o}", f"{want:04o}"
    uid = resolve_uid(str(owner)) if owner is not None else -1
    gid = resolve_gid(str(group)) if group is not None else -1
    if uid not in (-1, uid_now) or gid not in (-1, gid_now):
        ops.append(("chown", path, uid, gid, follow and new != "link"))
        if uid not in (-1, uid_now):
            before["owner"], after["owner"] = _user_name(uid_now), _user_name(uid)
        if gid not in (-1, gid_now):
            before["group"], after["group"] = _group_name(gid_now), _group_name(gid)
    return ops, before, after


def mkdir_ops(path: str, mode: Any = None, owner: Any = None, group: Any = None) -> list[Op]:
    """Ops creating path and its missing parents (like mkdir -p), each new one given mode/owner."""
    missing: list[str] = []
    cur = os.path.abspath(path)
    while not os.path.lexists(cur):
        missing.append(cur)
        cur = os.path.dirname(cur)
    ops: list[Op] = []
    for d in reversed(missing):
        ops.append(("mkdir", d))
        ops += attr_ops(d, mode, owner, group, new="directory")[0]
    return ops


def run_ops(ops: list[Op]) -> None:
    """Carry out planned ops; an OS error becomes a task failure naming the path."""
    for op in ops:
        kind, path = op[0], op[1]
        try:
            if kind == "mkdir":
                os.mkdir(path)
            elif kind == "chmod":
                os.chmod(path, op[2])
            elif kind == "chown":
                (os.chown if op[4] else os.lchown)(path, op[2], op[3])
            elif kind == "remove":
                import shutil  # only here: its import costs every host ~2 ms
                shutil.rmtree(path) if path_state(path) == "directory" else os.unlink(path)
            elif kind == "touch":
                open(path, "ab").close()
            elif kind == "utime":
                _utime(path, op[2], op[3])
            elif kind in ("symlink", "hardlink"):
                tmp = os.path.join(os.path.dirname(path),
                                   f".provision-{os.getpid()}-{os.path.basename(path)}")
                (os.symlink if kind == "symlink" else os.link)(op[2], tmp)
                if path_state(path) == "directory":
                    os.rmdir(path)
                os.replace(tmp, path)
        except OSError as exc:
            raise ModuleError(f"{kind} {path} failed: {exc.strerror or exc}", path=path)


def path_info(host: Host, path: str) -> dict[str, Any]:
    """Ansible's path keys for a result: path, state, mode, owner, group, uid, gid, size."""
    info = host.stat(path)
    if info is None:
        return {"path": path, "state": "absent"}
    keys = ("mode", "owner", "group", "uid", "gid", "size")
    return dict({"path": path, "state": path_state(path)}, **{k: info[k] for k in keys})


def attrs_text(values: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in values.items())


def _stamp(value: str | None, fmt: str, default: str) -> Any:
    value = value or default
    if value == "preserve":
        return None
    if value == NOW:
        return NOW
    try:
        return time.mktime(time.strptime(value, fmt))
    except ValueError:
        raise ModuleError(f"Error while obtaining timestamp for time {value} using format {fmt}")


def _time_ops(args: Args, path: str, state: str, exists: bool) -> list[Op]:
    default = NOW if state == "touch" else "preserve"
    atime = _stamp(args.access_time, args.access_time_format, default)
    mtime = _stamp(args.modification_time, args.modification_time_format, default)
    if atime is None and mtime is None:
        return []
    if exists and NOW not in (atime, mtime):
        st = os.stat(path)
        if atime in (None, st.st_atime) and mtime in (None, st.st_mtime):
            return []
    return [("utime", path, atime, mtime)]  # "now" always changes the times, as Ansible's touch


def _utime(path: str, atime: Any, mtime: Any) -> None:
    if atime == NOW and mtime == NOW:
        os.utime(path, None)
        return
    st, now = os.stat(path), time.time()
    pick = (lambda v, old: old if v is None else now if v == NOW else v)
    os.utime(path, (pick(atime, st.st_atime), pick(mtime, st.st_mtime)))


def _link_ops(args: Args, path: str, prev: str, state: str) -> tuple[list[Op], str | None]:
    src = args.src
    if state == "link":
        if src is None and prev == "link":
            src = os.readlink(path)
        if src is None:
            raise ModuleError("src is required for creating new symlinks")
        full = src if os.path.isabs(src) else os.path.join(os.path.dirname(path), src)
        if not os.path.exists(full) and not args.force:
            raise ModuleError('src file does not exist, use "force=yes" if you really want to '
                              f"create the link: {full}", path=path, src=src)
        if prev == "link" and os.readlink(path) == src:
            return [], src
    else:
        if src is None:
            if prev == "hard":
                return [], None
            raise ModuleError("src is required for creating new hardlinks")
        if not os.path.exists(src):
            raise ModuleError("src does not exist", dest=path, src=src)
        if prev in ("file", "hard") and os.stat(path).st_ino == os.stat(src).st_ino:
            return [], src
    if prev in ("file", "hard", "directory") and not args.force:
        what = "hard link" if prev == "hard" else prev
        raise ModuleError(f"Cannot link because a {what} exists at destination {path}",
                          path=path, src=src)
    if prev == "directory" and os.listdir(path):
        raise ModuleError(f"the directory {path} is not empty, refusing to convert it", path=path)
    return [("symlink" if state == "link" else "hardlink", path, src)], src


def plan(args: Args, host: Host) -> Change:
    path = os.path.expanduser(args.path)
    prev = path_state(path)
    state = args.state or (prev if prev != "absent" else "directory" if args.recurse else "file")
    if args.recurse and state != "directory":
        raise ModuleError("recurse option requires state to be 'directory'")
    before: dict[str, str] = {"path": path}
    after: dict[str, str] = {"path": path}
    if prev != state:
        before["state"], after["state"] = prev, state
    ops: list[Op] = []
    target, src, new = path, None, None
    if state in ("file", "directory") and prev == "link" and args.follow:
        target = os.path.realpath(path)
        prev = path_state(target)
    if state == "absent":
        ops = [("remove", path)] if prev != "absent" else []
    elif state == "file" and prev not in ("file", "hard"):
        raise ModuleError(f"file ({path}) is {prev}, cannot continue", path=path, state=prev)
    elif state == "directory" and prev not in ("absent", "directory"):
        raise ModuleError(f"{path} already exists as a {prev}", path=path)
    elif state == "directory" and prev == "absent":
        ops = mkdir_ops(target, args.mode, args.owner, args.group)
    elif state == "touch" and prev == "absent":
        ops, new = [("touch", path)], "file"
    elif state in ("link", "hard"):
        ops, src = _link_ops(args, path, prev, state)
        new = ("link" if state == "link" else "file") if ops else None
        if ops:
            before.update({"src": os.readlink(path)} if prev == "link" else {})
            after["src"] = str(src)
    if state != "absent" and not (state == "directory" and prev == "absent"):
        if state == "hard" and ops:  # a new hard link shares src's inode: compare against src
            attr, b, a = attr_ops(str(src), args.mode, args.owner, args.group)
        else:
            attr, b, a = attr_ops(target, args.mode, args.owner, args.group,
                                  follow=state != "link" and args.follow, new=new)
        ops += attr
        before.update(b)
        after.update(a)
    if state in ("file", "directory", "touch", "hard"):
        ops += _time_ops(args, target, state, new is None and prev != "absent")
    if state == "directory" and args.recurse and prev == "directory":
        for root, dirs, files in os.walk(target):
            for name in dirs + files:
                sub = os.path.join(root, name)
                ops += attr_ops(sub, args.mode, args.owner, args.group, follow=False)[0]
                ops += _time_ops(args, sub, state, True) if not os.path.islink(sub) else []
    data: dict[str, Any] = path_info(host, target) if prev != "absent" else {"path": path}
    data["state"] = "file" if state == "touch" else state
    if state in ("link", "hard"):
        data.update(dest=path, src=src)
    return Change(bool(ops), "", text_diff(path, attrs_text(before), attrs_text(after)),
                  todo={"ops": ops, "target": target}, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    run_ops(change.todo["ops"])
    target = change.todo["target"]
    if path_state(target) == "absent":
        return {"path": target, "state": "absent"}
    return path_info(host, target)
