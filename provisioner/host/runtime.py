"""What a module sees of the host it runs on: commands, files, facts, check/diff mode.

This file is shipped to every managed host with the modules and runs there under the
host's own python3 (>= 3.7, standard library only). The same code runs in-process in
unit tests, so a module is tested on real files and commands without any connection.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat as stat_mod

from provisioner.host import proc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

# No dataclasses, tempfile, hashlib here: this file is imported by every agent on every host,
# and those imports (with the code `@dataclass` generates) cost each host ~8 ms of CPU per run (agent no-op 43 -> 35 ms).


class ModuleArgs:
    """A module's arguments: each annotated class attribute is one, in order; its value is the
    default (none: required). A list or dict default is copied for each instance.

    Not a dataclass: `@dataclass` generates each class's methods with exec() when the module
    is imported, and imports `inspect`: ~8 ms of CPU on every host on every run. The
    controller checks and converts the values (provisioner.validate) before they travel.
    """

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        defaults = class_defaults(cls)
        for name in arg_names(cls):
            if name in values:
                value = values.pop(name)
            elif name in defaults:
                value = defaults[name]
                if isinstance(value, (list, dict)):
                    value = type(value)(value)
            else:
                raise TypeError("%s: missing argument %r" % (cls.__module__, name))
            setattr(self, name, value)
        if values:
            raise TypeError("%s: unexpected argument(s) %s" % (cls.__module__, ", ".join(sorted(values))))

    def as_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in arg_names(type(self))}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.as_dict() == other.as_dict()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__qualname__, ", ".join("%s=%r" % kv for kv in self.as_dict().items()))


def arg_names(cls: type) -> List[str]:
    """The argument names of a ModuleArgs class (base classes' first), in declaration order."""
    names = cls.__dict__.get("_arg_names")
    if names is None:
        names = []
        for klass in reversed(cls.__mro__):
            # the class's own annotations (strings: modules use `from __future__ import annotations`);
            # inspect.get_annotations would import inspect, which is what this class avoids
            for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063
                if name not in names:
                    names.append(name)
        cls._arg_names = names  # type: ignore[attr-defined]
    return names  # type: ignore[no-any-return]


def class_defaults(cls: type) -> Dict[str, Any]:
    """The arguments' defaults: class attributes named like an argument, the subclass's winning."""
    out = cls.__dict__.get("_arg_defaults")
    if out is None:
        names = arg_names(cls)
        out = {}
        for klass in reversed(cls.__mro__):
            out.update((k, v) for k, v in klass.__dict__.items() if k in names)
        cls._arg_defaults = out  # type: ignore[attr-defined]
    return out  # type: ignore[no-any-return]


class ModuleError(Exception):
    """A module could not do what was asked; becomes a `failed` task result with this message."""

    def __init__(self, msg: str, **data: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.data = data


class Change:
    """A module's decision, made from the host's state before anything is touched.

    `changed=False` means the host already is as asked. `todo` is the module's own
    payload handed back to its `apply`; `diff` is {"before": str, "after": str, ...}
    shown with --diff; `data` is returned to `register` in both check and apply mode.
    """

    __slots__ = ("changed", "data", "diff", "msg", "todo")

    def __init__(self, changed: bool, msg: str = "", diff: Optional[Dict[str, Any]] = None,
                 todo: Any = None, data: Optional[Dict[str, Any]] = None) -> None:
        self.changed = changed
        self.msg = msg
        self.diff = diff
        self.todo = todo
        self.data: Dict[str, Any] = {} if data is None else data

    def __repr__(self) -> str:
        return "Change(changed=%r, msg=%r, diff=%r, todo=%r, data=%r)" % (
            self.changed, self.msg, self.diff, self.todo, self.data)


class CommandResult:
    __slots__ = ("rc", "stderr", "stdout")

    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CommandResult)
                and (self.rc, self.stdout, self.stderr) == (other.rc, other.stdout, other.stderr))

    def __repr__(self) -> str:
        return "CommandResult(rc=%r, stdout=%r, stderr=%r)" % (self.rc, self.stdout, self.stderr)

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Host:
    """The managed host, from the inside: run commands, read and write files atomically."""

    def __init__(self, facts: Optional[Dict[str, Any]] = None, check_mode: bool = False,
                 diff_mode: bool = False, env: Optional[Mapping[str, str]] = None,
                 tmpdir: Optional[str] = None,
                 progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        self.facts: Dict[str, Any] = facts or {}
        self._progress = progress
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.env: Dict[str, str] = dict(env or {})
        self.tmpdir = tmpdir

    # -- commands -------------------------------------------------------------
    def run(self, argv: Sequence[str], *, stdin: Optional[str] = None, cwd: Optional[str] = None,
            env: Optional[Mapping[str, str]] = None, shell: bool = False, executable: Optional[str] = None,
            check: bool = False, timeout: Optional[float] = None) -> CommandResult:
        """Run argv (never through a shell unless `shell=True` with a single string; `executable`
        is that shell, /bin/sh by default)."""
        full_env = dict(os.environ)
        full_env.setdefault("LANG", "C.UTF-8")
        full_env.update(self.env)
        if env:
            full_env.update(env)
        if shell:
            cmd = [executable or "/bin/sh", "-c", argv if isinstance(argv, str) else " ".join(argv)]
        else:
            cmd = list(argv)
        if cwd is not None:
            # posix_spawn cannot change directory: a shell does it, then becomes the command
            cmd = ["/bin/sh", "-c", 'cd -- "$1" || exit 1; shift; exec "$@"', "sh", cwd, *cmd]
        try:
            started = proc.Proc(cmd, full_env, stdin_pipe=True)
        except FileNotFoundError as exc:
            result = CommandResult(127, "", "%s: command not found" % (exc.filename or cmd[0]))
        else:
            try:
                rc, out, err = started.communicate((stdin or "").encode("utf-8"), timeout=timeout)
            except proc.Timeout:
                result = CommandResult(124, "", "timed out after %ss" % timeout)
            else:
                result = CommandResult(rc, proc.text(out), proc.text(err))
        if check and not result.ok:
            shown = argv if isinstance(argv, str) else " ".join(argv)
            raise ModuleError("%s failed (rc=%d): %s" % (shown, result.rc, (result.stderr or result.stdout).strip()[-2000:]),
                              rc=result.rc, stdout=result.stdout, stderr=result.stderr)
        return result

    @property
    def reports_progress(self) -> bool:
        """True when someone reads progress (the agent relays it to the controller's live view)."""
        return self._progress is not None

    def progress(self, info: Dict[str, Any]) -> None:
        """Tell the controller how far a long action is (e.g. {"tool": "apt", "percent": 43.0})."""
        if self._progress is not None:
            self._progress(info)

    def run_reporting(self, argv: Sequence[str], status_args: Callable[[int], List[str]],
                      on_status: Callable[[str], None], env: Optional[Mapping[str, str]] = None) -> CommandResult:
        """Run argv with an extra pipe whose lines go to `on_status` as they come: the command is told
        the pipe's fd through `status_args(fd)`, inserted after argv[0] (apt-get's -o APT::Status-Fd=N)."""
        full_env = dict(os.environ)
        full_env.setdefault("LANG", "C.UTF-8")
        full_env.update(self.env)
        if env:
            full_env.update(env)
        read_fd, write_fd = os.pipe()
        cmd = [argv[0], *status_args(proc.child_fd(write_fd)), *argv[1:]]
        try:
            started = proc.Proc(cmd, full_env, pass_fd=write_fd)
        except FileNotFoundError as exc:
            os.close(read_fd)
            return CommandResult(127, "", "%s: command not found" % (exc.filename or argv[0]))
        finally:
            os.close(write_fd)  # the child holds the only write end: EOF when it (and its children) exit

        def read_status() -> None:
            with os.fdopen(read_fd, "r", errors="replace") as status:
                for line in status:
                    try:
                        on_status(line.rstrip("\n"))
                    except Exception:  # progress is a courtesy: it never fails the command
                        pass

        import threading  # only here: most runs never stream progress
        reader = threading.Thread(target=read_status, daemon=True)
        reader.start()
        rc, out, err = started.communicate()
        reader.join(timeout=5)
        return CommandResult(rc, proc.text(out), proc.text(err))

    def which(self, name: str) -> Optional[str]:
        """shutil.which for a plain name (or a path), without importing shutil (and bz2, lzma...)."""
        if os.sep in name:
            return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
        for directory in (self.env.get("PATH") or os.environ.get("PATH") or os.defpath).split(os.pathsep):
            path = os.path.join(directory or ".", name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        return None

    # -- files ----------------------------------------------------------------
    def read_bytes(self, path: str) -> Optional[bytes]:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_text(self, path: str) -> Optional[str]:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "replace")

    def stat(self, path: str, follow: bool = False) -> Optional[Dict[str, Any]]:
        """Ansible-like stat dict, or None when the path does not exist."""
        try:
            st = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            return None
        mode = st.st_mode
        kind = ("directory" if stat_mod.S_ISDIR(mode) else "link" if stat_mod.S_ISLNK(mode)
                else "file" if stat_mod.S_ISREG(mode) else "other")
        info: Dict[str, Any] = {
            "exists": True, "path": path, "state": kind,
            "isdir": kind == "directory", "isreg": kind == "file", "islnk": kind == "link",
            "mode": "%04o" % stat_mod.S_IMODE(mode), "uid": st.st_uid, "gid": st.st_gid,
            "owner": _user_name(st.st_uid), "group": _group_name(st.st_gid),
            "size": st.st_size, "mtime": st.st_mtime,
        }
        if kind == "link":
            info["lnk_source"] = os.readlink(path)
        return info

    def checksum(self, path: str) -> Optional[str]:
        """sha1 of a regular file, as Ansible reports it."""
        try:
            with open(path, "rb") as f:
                h = new_hash("sha1", size=os.fstat(f.fileno()).st_size)
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return h.hexdigest()

    def write_atomic(self, path: str, data: bytes, mode: Optional[int] = None,
                     owner: Optional[str] = None, group: Optional[str] = None) -> None:
        """Write via a temp file in the same directory and rename, so readers never see half a file.

        An existing file's mode and ownership are kept unless new ones are given.
        """
        directory = os.path.dirname(os.path.abspath(path)) or "/"
        old = None
        try:
            old = os.stat(path)
        except FileNotFoundError:
            pass
        fd, tmp = _temp_file(directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            elif old is not None:
                os.chmod(tmp, stat_mod.S_IMODE(old.st_mode))
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
            uid = gid = -1
            if old is not None and os.geteuid() == 0:
                uid, gid = old.st_uid, old.st_gid
            if owner is not None:
                uid = resolve_uid(owner)
            if group is not None:
                gid = resolve_gid(group)
            if (uid, gid) != (-1, -1):
                os.chown(tmp, uid, gid)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


def new_hash(name: str, data: bytes = b"", size: int = 0) -> Any:
    """A hash object for `data` plus `size` more bytes to come. Under 1 MiB in all, CPython's
    builtin implementation: importing hashlib loads OpenSSL, ~2.5 ms of CPU on every host.
    From 1 MiB on (or where a build lacks the builtin), hashlib: OpenSSL's sha1 is ~8x faster."""
    builtin = {"sha1": "_sha1", "md5": "_md5", "sha256": "_sha2"}.get(name)
    if builtin and len(data) + size < 1 << 20:
        try:
            return getattr(__import__(builtin), name)(data)
        except (ImportError, AttributeError):
            pass
    import hashlib
    return hashlib.new(name, data)


def _temp_file(directory: str) -> tuple[int, str]:
    """Create `.provision-XXXXXXXX` (mode 0600) in directory, as tempfile.mkstemp would, without
    importing tempfile (shutil, random and hashlib with it) on every host."""
    for _ in range(100):
        path = os.path.join(directory, ".provision-" + os.urandom(6).hex())
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError("no free temporary name in %s" % directory)


def resolve_uid(owner: str) -> int:
    if str(owner).isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ModuleError("no such user: %s" % owner)


def resolve_gid(group: str) -> int:
    if str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ModuleError("no such group: %s" % group)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):  # a negative id (a path not yet made) overflows here
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):  # a negative id (a path not yet made) overflows here
        return str(gid)


def parse_mode(mode: Any, current: Optional[int] = None) -> Optional[int]:
    """Octal string/int ('0644', 644 as Ansible reads it, 0o644) or symbolic ('u+x,go-w')."""
    if mode is None:
        return None
    if isinstance(mode, int):
        # YAML already read 0644 as octal; a bare int is taken as is, like Ansible does.
        return mode
    text = str(mode).strip()
    if text and all(c in "01234567" for c in text):
        return int(text, 8)
    return _symbolic_mode(text, current or 0)


def _symbolic_mode(text: str, current: int) -> int:
    result = current
    for clause in text.split(","):
        who = ""
        i = 0
        while i < len(clause) and clause[i] in "ugoa":
            who += clause[i]
            i += 1
        who = who or "a"
        if i >= len(clause) or clause[i] not in "+-=":
            raise ModuleError("bad symbolic mode: %r" % text)
        op = clause[i]
        perms = clause[i + 1:]
        bits = 0
        for w in ("a" if "a" in who else who):
            for p in perms:
                shift = {"u": 6, "g": 3, "o": 0}
                targets = "ugo" if w == "a" else w
                for t in targets:
                    if p == "r":
                        bits |= 4 << shift[t]
                    elif p == "w":
                        bits |= 2 << shift[t]
                    elif p == "x":
                        bits |= 1 << shift[t]
                    elif p == "X":
                        if stat_mod.S_ISDIR(current) or current & 0o111:
                            bits |= 1 << shift[t]
                    elif p == "s":
                        bits |= stat_mod.S_ISUID if t == "u" else stat_mod.S_ISGID if t == "g" else 0
                    elif p == "t":
                        bits |= stat_mod.S_ISVTX
                    else:
                        raise ModuleError("bad symbolic mode: %r" % text)
        mask = 0
        for t in ("ugo" if "a" in who else who):
            mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007}[t]
        if op == "+":
            result |= bits
        elif op == "-":
            result &= ~bits
        else:
            result = (result & ~mask) | bits
    return stat_mod.S_IMODE(result)


def text_diff(path: str, before: Optional[str], after: Optional[str]) -> Dict[str, Any]:
    return {"path": path, "before": before if before is not None else "", "after": after if after is not None else ""}


def glob_paths(pattern: str) -> List[str]:
    """glob.glob(pattern) for absolute or relative paths, without importing glob (with contextlib:
    ~1 ms of every host's CPU a run): wildcards in any component, hidden names only when the
    component itself starts with a dot. The order is the directory's; sort where it matters."""
    if not any(c in pattern for c in "*?["):
        return [pattern] if os.path.lexists(pattern) else []
    import fnmatch

    parts = pattern.split("/")
    found = ["/" if pattern.startswith("/") else ""]
    for i, part in enumerate(parts):
        if not part:
            continue
        last = i == len(parts) - 1
        nxt: List[str] = []
        for base in found:
            if not any(c in part for c in "*?["):
                path = os.path.join(base, part) if base else part
                if os.path.lexists(path) if last else os.path.isdir(path):
                    nxt.append(path)
                continue
            try:
                names = os.listdir(base or ".")
            except OSError:
                continue
            for name in names:
                if (name.startswith(".") and not part.startswith(".")) or not fnmatch.fnmatchcase(name, part):
                    continue
                path = os.path.join(base, name) if base else name
                if last or os.path.isdir(path):
                    nxt.append(path)
        found = nxt
        if not found:
            break
    return found


def as_list(value: Any) -> List[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]
