"""Commands on the host, started without importing `subprocess`.

`import subprocess` brings signal, enum, threading, selectors, locale, contextlib and warnings:
~7 ms of a host's CPU on every run, measured on a Debian 13 fleet host, for what is here one
`os.posix_spawn` and a `select.poll` loop. Each command runs in a session of its own, so that
its whole process group can be killed (a timeout, or the controller gone: see RUNNING).
A Python without posix_spawn (3.7) starts commands with subprocess.Popen instead.

Shipped to every managed host (python3 >= 3.7, standard library only).
"""

from __future__ import annotations

import _thread
import os
import select
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

try:
    import _signal as _sig  # the C module: `signal` itself imports enum
except ImportError:  # pragma: no cover - another Python
    import signal as _sig  # type: ignore[no-redef]

SIGKILL = getattr(_sig, "SIGKILL", 9)
# Python ignores SIGPIPE (and SIGXFSZ); a command gets the default back, as subprocess does it.
_RESTORE = tuple(getattr(_sig, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(_sig, name))
_SPAWN = getattr(os, "posix_spawn", None)
_CHUNK = 65536

# Started and not reaped yet: the agent kills these when its controller goes away.
RUNNING: Dict[int, _Group] = {}


class Timeout(Exception):
    """communicate() ran past its timeout; the command's process group was killed."""


def exit_code(status: int) -> int:
    """waitpid's status as subprocess reports it: the exit code, or -N for signal N."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def which(name: str, env: Mapping[str, str]) -> str:
    """The program a plain name runs, searched on `env`'s PATH (the command's, as subprocess does)."""
    if os.sep in name:
        return name
    for directory in os.get_exec_path(env):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    raise FileNotFoundError(2, "No such file or directory", name)


def child_fd(fd: int) -> int:
    """The number a descriptor passed with Proc(pass_fd=fd) has in the command. posix_spawn's dup2
    onto another number is what clears close-on-exec; subprocess keeps the number."""
    if _SPAWN is None:  # pragma: no cover - python 3.7
        return fd
    return 3 if fd != 3 else 4


class _Group:
    """A started command in a session of its own: what RUNNING holds and the agent kills."""

    pid: int
    returncode: Optional[int]

    def kill(self) -> None:
        """SIGKILL to the command's whole process group (not reaped here)."""
        if self.returncode is None:
            try:
                os.killpg(self.pid, SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Proc(_Group):
    """One started command. stdout and stderr are pipes; stdin is a pipe when asked, else /dev/null.
    `stdin`, `stdout` and `stderr` are file descriptors (None once closed)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], stdin_pipe: bool = False,
                 pass_fd: Optional[int] = None) -> None:
        """`pass_fd`: one more descriptor the command inherits, as number child_fd(pass_fd)."""
        self.argv = list(argv)
        self.pass_fd = pass_fd
        self.returncode: Optional[int] = None
        self._reap = _thread.allocate_lock()
        self._popen: Any = None
        self.stdin: Optional[int] = None
        self.stdout: Optional[int] = None
        self.stderr: Optional[int] = None
        if _SPAWN is None:  # pragma: no cover - python 3.7
            self._start_popen(env, stdin_pipe)
        else:
            self._start_spawn(env, stdin_pipe)
        RUNNING[self.pid] = self

    def _start_spawn(self, env: Mapping[str, str], stdin_pipe: bool) -> None:
        path = which(self.argv[0], env)
        ours: List[int] = []       # the parent's ends
        theirs: List[int] = []     # the child's ends, closed here once it started
        actions: List[Tuple[Any, ...]] = []
        try:
            if stdin_pipe:
                r, w = os.pipe()
                ours.append(w)
                theirs.append(r)
                actions.append((os.POSIX_SPAWN_DUP2, r, 0))
            else:
                actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
            for fd in (1, 2):
                r, w = os.pipe()
                ours.append(r)
                theirs.append(w)
                actions.append((os.POSIX_SPAWN_DUP2, w, fd))
            if self.pass_fd is not None:
                actions.append((os.POSIX_SPAWN_DUP2, self.pass_fd, child_fd(self.pass_fd)))
            # the pipes are close-on-exec (Python's default): only the dup2 copies reach the command
            self.pid = os.posix_spawn(path, self.argv, dict(env), file_actions=actions, setsid=True,
                                      setsigdef=_RESTORE)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        if stdin_pipe:
            self.stdin = ours.pop(0)
        self.stdout, self.stderr = ours

    def _start_popen(self, env: Mapping[str, str], stdin_pipe: bool) -> None:  # pragma: no cover
        import subprocess
        self._popen = subprocess.Popen(self.argv, env=dict(env), start_new_session=True,
                                       stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       pass_fds=() if self.pass_fd is None else (self.pass_fd,))
        self.pid = self._popen.pid
        if stdin_pipe:
            self.stdin = os.dup(self._popen.stdin.fileno())
            self._popen.stdin.close()
        self.stdout = os.dup(self._popen.stdout.fileno())
        self.stderr = os.dup(self._popen.stderr.fileno())
        self._popen.stdout.close()
        self._popen.stderr.close()

    # -- the process ------------------------------------------------------------------------
    def _reaped(self, status: int) -> None:
        self.returncode = exit_code(status)
        RUNNING.pop(self.pid, None)

    def poll(self) -> Optional[int]:
        """The exit code if the command has ended (it is reaped then), else None."""
        with self._reap:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status = self.pid, 0
                if pid:
                    self._reaped(status)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        """Reap the command; Timeout if it still runs after `timeout` seconds."""
        if timeout is None:
            with self._reap:
                if self.returncode is None:
                    try:
                        _, status = os.waitpid(self.pid, 0)
                    except ChildProcessError:
                        status = 0
                    self._reaped(status)
            return self.returncode  # type: ignore[return-value]
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise Timeout()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return self.returncode  # type: ignore[return-value]

    def close_pipes(self) -> None:
        for name in ("stdin", "stdout", "stderr"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    # -- its pipes --------------------------------------------------------------------------
    def communicate(self, data: bytes = b"", timeout: Optional[float] = None) -> Tuple[int, bytes, bytes]:
        """Write `data` to stdin (then close it), read stdout and stderr to their end, reap.
        Timeout (the process group killed and reaped) when that takes over `timeout` seconds."""
        out: List[bytes] = []
        err: List[bytes] = []
        assert self.stdout is not None and self.stderr is not None, "communicate() once"
        sinks = {self.stdout: out, self.stderr: err}
        poller = select.poll()
        for fd in sinks:
            poller.register(fd, select.POLLIN)
        pending = memoryview(data)
        if self.stdin is not None:
            if pending:
                os.set_blocking(self.stdin, False)  # never block on a full pipe while output waits
                poller.register(self.stdin, select.POLLOUT)
            else:
                os.close(self.stdin)
                self.stdin = None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while sinks or self.stdin is not None:
                wait_ms = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.kill()
                        self.close_pipes()
                        self.wait()
                        raise Timeout()
                    wait_ms = int(left * 1000) + 1
                for fd, _event in poller.poll(wait_ms):
                    if fd == self.stdin:
                        try:
                            pending = pending[os.write(fd, pending[:_CHUNK]):]
                        except BlockingIOError:
                            continue
                        except OSError:  # the command closed its stdin: what is left is not read
                            pending = memoryview(b"")
                        if not pending:
                            poller.unregister(fd)
                            os.close(fd)
                            self.stdin = None
                        continue
                    chunk = os.read(fd, _CHUNK)
                    if chunk:
                        sinks[fd].append(chunk)
                    else:
                        poller.unregister(fd)
                        del sinks[fd]
        finally:
            self.close_pipes()
        return self.wait(), b"".join(out), b"".join(err)


class Foreign(_Group):
    """A command started another way (subprocess, for a pty): killed with the rest when the
    controller goes away, until done() says it was reaped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = None
        RUNNING[pid] = self

    def done(self) -> None:
        self.returncode = 0
        RUNNING.pop(self.pid, None)


def text(data: bytes) -> str:
    """A command's output as subprocess's text mode gives it: UTF-8 (errors replaced), universal newlines."""
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
