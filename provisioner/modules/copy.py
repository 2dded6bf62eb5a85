"""copy: put content at `dest` on the host, atomically, only when its sha1 differs (then fix mode/owner).

`src:` in a playbook names a file on the controller: the controller reads it and sends its
bytes base64-encoded as `content_b64`, keeping `src` for the file name when dest is a
directory; this side never reads the controller's disk. `remote_src: true` copies a file
already on the host (a single file; directory copies are not supported).

Also home of what the content-writing modules share (lineinfile, blockinfile): Ansible's
backups, `validate` on a temp copy, and the plan/apply of a write with its attributes.
"""

from __future__ import annotations

import os
import stat as st_mod
import time

from provisioner.host import wire
from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, new_hash, parse_mode, text_diff
from provisioner.modules.file import Op, attr_ops, attrs_text, current_mode, mkdir_ops, path_info, run_ops

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DIFF_SIZE = 104448  # Ansible's default max_diff_size


class Args(ModuleArgs):
    dest: str
    content: Any = None
    content_b64: str | None = None
    src: str | None = None
    remote_src: bool = False
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None
    backup: bool = False
    force: bool = True
    follow: bool = False
    directory_mode: Any = None
    validate: str | None = None
    checksum: str | None = None


class Write:
    """A planned write: `data` (None: content already right) or attribute ops, and what goes with it."""

    def __init__(self, path: str, pre: list[Op] | None = None) -> None:
        self.path = path
        self.data: bytes | None = None
        self.mode: int | None = None
        self.owner: str | None = None
        self.group: str | None = None
        self.pre: list[Op] = pre or []
        self.ops: list[Op] = []
        self.backup = False
        self.validate: str | None = None


def backup_local(path: str) -> str:
    """Ansible's backup: a copy beside the file named path.PID.YYYY-MM-DD@HH:MM:SS~ (times, owner kept)."""
    dest = f"{path}.{os.getpid()}.{time.strftime('%Y-%m-%d@%H:%M:%S~')}"
    import shutil  # only here: importing it (with bz2, lzma) costs every host ~2 ms
    shutil.copy2(path, dest)
    if os.geteuid() == 0:
        st = os.stat(path)
        os.chown(dest, st.st_uid, st.st_gid)
    return dest


def validate_bytes(host: Host, validate: str, data: bytes, mode: int | None) -> None:
    """Run `validate` (e.g. 'visudo -cf %s') on a temp file holding data; %s is one argv element."""
    if "%s" not in validate:
        raise ModuleError(f"validate must contain %s: {validate}")
    import tempfile  # only for `validate`: every host would pay its import otherwise
    fd, tmp = tempfile.mkstemp(prefix="provision-validate-", dir=host.tmpdir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode if mode is not None else 0o600)
        import shlex
        res = host.run([part.replace("%s", tmp) for part in shlex.split(validate)])
        if not res.ok:
            error = res.stderr.strip() or res.stdout.strip()
            raise ModuleError(f"failed to validate: rc:{res.rc} error:{error}",
                              exit_status=res.rc, stdout=res.stdout, stderr=res.stderr)
    finally:
        os.unlink(tmp)


def run_write(host: Host, w: Write) -> dict[str, Any]:
    """Apply a planned Write: parents, validate, backup, atomic write (or attribute ops)."""
    run_ops(w.pre)
    out: dict[str, Any] = {}
    if w.data is not None:
        if w.validate:
            validate_bytes(host, w.validate, w.data, w.mode)
        if w.backup and os.path.isfile(w.path):
            out["backup_file"] = backup_local(w.path)
        host.write_atomic(w.path, w.data, mode=w.mode, owner=w.owner, group=w.group)
    run_ops(w.ops)
    return out


def _shown(data: bytes | None) -> str:
    if data is None:
        return ""
    if len(data) > MAX_DIFF_SIZE:
        return f"({len(data)} bytes: larger than {MAX_DIFF_SIZE}, diff skipped)\n"
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary: {len(data)} bytes, sha1 {new_hash('sha1', data).hexdigest()})\n"


def plan_content(host: Host, args: Any, path: str, after: bytes, msg: str, data: dict[str, Any],
                 before: bytes | None = None, changed: bool | None = None, pre: list[Op] | None = None,
                 ) -> Change:
    """The shared end of the content modules: write `after` when it differs (changed=None: compare with
    `before`), else bring mode/owner/group in line; msg and diff as Ansible words them."""
    exists = os.path.exists(path)
    changed = (before != after) if changed is None else changed
    owner = None if args.owner is None else str(args.owner)
    group = None if args.group is None else str(args.group)
    ops, b, a = attr_ops(path, args.mode, owner, group) if exists else ([], {}, {})
    if ops:
        msg = (msg + " and " if changed else "") + "ownership, perms or SE linux context changed"
    w = Write(path, pre=list(pre or []))
    if not w.pre and not exists and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        w.pre += mkdir_ops(os.path.dirname(os.path.abspath(path)))
    if changed:
        w.data, w.owner, w.group = after, owner, group
        w.mode = parse_mode(args.mode, current_mode(path if exists else None))
        w.backup = bool(getattr(args, "backup", False)) and exists
        w.validate = getattr(args, "validate", None)
        if before is None and exists and host.diff_mode:
            before = host.read_bytes(path)
        diff = text_diff(path, _shown(before), _shown(after))
    else:
        w.ops = ops
        diff = text_diff(path, attrs_text(b), attrs_text(a))
    return Change(changed or bool(ops) or bool(w.pre), msg, diff, todo=w, data=data)


def _source(args: Args, host: Host) -> bytes:
    if args.content_b64 is not None:
        import binascii
        return binascii.a2b_base64(args.content_b64)
    if args.content is not None:
        if args.src:
            raise ModuleError("src and content are mutually exclusive")
        text = args.content if isinstance(args.content, str) else wire.dumps(args.content)
        return text.encode("utf-8")
    if not args.src:
        raise ModuleError("src (or content) is required")
    if not args.remote_src:
        raise ModuleError(f"src {args.src} is on the controller: it must be sent as content_b64")
    if os.path.isdir(args.src):
        raise ModuleError(f"remote_src copy of a directory ({args.src}) is not supported")
    data = host.read_bytes(args.src)
    if data is None:
        raise ModuleError(f"Source {args.src} not found")
    return data


def plan(args: Args, host: Host) -> Change:
    dest = os.path.expanduser(args.dest)
    pre: list[Op] = []
    if dest.endswith("/") or os.path.isdir(dest):
        if not args.src:
            raise ModuleError("can not use content with a dir as dest")
        if not os.path.isdir(dest):
            pre = mkdir_ops(dest.rstrip("/") or "/", args.directory_mode, args.owner, args.group)
        dest = os.path.join(dest, os.path.basename(args.src.rstrip("/")))
    elif not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        if host.check_mode:  # an earlier task of this run would have made it
            return Change(True, "would write %s (its directory does not exist yet)" % dest, data={"dest": dest})
        raise ModuleError(f"Destination directory {os.path.dirname(os.path.abspath(dest))} does not exist")
    if args.follow and os.path.islink(dest):
        dest = os.path.realpath(dest)
    if os.path.isdir(dest):
        raise ModuleError(f"{dest} is a directory: it cannot be replaced by a file")
    body = _source(args, host)
    mode = args.mode
    if mode == "preserve":  # keep src's mode; for a controller src the controller sends the mode itself
        mode = f"{st_mod.S_IMODE(os.stat(args.src).st_mode):04o}" if args.remote_src and args.src else None
    checksum = new_hash("sha1", body).hexdigest()
    if args.checksum and args.checksum != checksum:
        raise ModuleError("Copied file does not match the expected checksum. Transfer failed.",
                          checksum=checksum)
    data: dict[str, Any] = {"dest": dest, "src": args.src, "checksum": checksum, "size": len(body)}
    try:
        data["md5sum"] = new_hash("md5", body).hexdigest()
    except ValueError:  # FIPS mode
        pass
    exists = os.path.lexists(dest)
    if os.path.exists(dest):
        data.update({k: v for k, v in path_info(host, dest).items() if k not in ("path", "size")})
    if exists and not args.force:
        return Change(False, "file already exists", data=data)
    changed = not exists or os.path.islink(dest) or host.checksum(dest) != checksum
    args_for_attrs = Args(dest=dest, mode=mode, owner=args.owner, group=args.group,
                          backup=args.backup, validate=args.validate)
    return plan_content(host, args_for_attrs, dest, body, "", data, changed=changed, pre=pre)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    out = run_write(host, change.todo)
    info = path_info(host, change.todo.path)
    info.pop("path")
    out.update(info)
    return out
