"""Connections kept between runs (`--persist SECONDS`), as Ansible's ControlPersist keeps ssh's.

A run with persist on does not connect to a host itself: it asks a small daemon of the same user
(started by the first such run, gone after SECONDS with nothing to do) over a Unix socket. The
daemon holds the SSH connection and the agent started on it. When the run ends, the daemon keeps
that agent, already booted, for the next run: which then costs the host no SSH handshake, no
python start and no agent import, only the agent's work (a no-op on a host: ~60 ms of its CPU
without, see bench/README.md).

The protocol, one socket per run and host: the run writes a header line (JSON: the host's
resolved SSHTarget and the agent's argv); the daemon answers {"live": true} (a kept agent, booted),
{"live": false} (a fresh connection and command: the run boots it as over SSH) or
{"unreachable": why}. Then bytes are relayed as they are, both ways. When the command on the host
ends, the daemon sends a NUL byte, what the command wrote on stderr, a newline, and closes.

An agent is kept only when its run left it between requests (every request line answered); a run
that is killed mid-task takes its agent down with it, as a direct connection would. A kept agent
keeps what it had: its become agents (a sudo that took a password stays authenticated for the
next run of this user within SECONDS, as sudo's own timestamp would) and its connection's host
key check (made when it connected). Hosts behind a jump host or a ProxyCommand connect directly,
each run, as do plays whose agent starts late (gather_facts: false and `raw` first).

The socket lives in $XDG_RUNTIME_DIR/provision or ~/.cache/provision/persist (0700, the user's
own); its name carries a hash of the agent bundle and of this file and ssh.py, so a daemon never
serves a run of another provision version. The daemon refuses any peer that is not its user.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.connection.base import Unreachable

if TYPE_CHECKING:
    from provisioner.connection.ssh import SSHConnection, SSHTarget

PROGRESS_PREFIX = b'{"_progress"'   # as provisioner.host.agent.PROGRESS_PREFIX (not imported: the daemon stays small)
HEADER_TIMEOUT_S = 5.0               # the daemon's answer to a header, beyond the host's connect timeout
START_WAIT_S = 3.0                   # for a daemon this run started to listen


def runtime_dir() -> Path:
    """Where the socket lives: private to the user (created 0700; refused if it is not)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "provision" if base and os.path.isdir(base) else Path.home() / ".cache" / "provision" / "persist"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise OSError(f"{path}: not private to this user (owner {st.st_uid}, mode {st.st_mode & 0o777:o})")
    return path


def _code_key() -> str:
    from provisioner.host.bundle import bundle_digest
    h = hashlib.sha256(bundle_digest().encode())
    here = Path(__file__).parent
    for name in ("persist.py", "ssh.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def socket_path() -> Path:
    return runtime_dir() / f"mux-{_code_key()}.sock"


# -- the run's side ------------------------------------------------------------------------------

class PersistStream:
    """The agent's stdin/stdout through the daemon (the connection.base.Stream surface)."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self._in = sock.makefile("rb")

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Unreachable(f"connection to {self.name} lost: {exc}") from exc

    def readline(self) -> bytes:
        try:
            line = self._in.readline()
        except OSError as exc:
            raise Unreachable(f"connection to {self.name} lost: {exc}") from exc
        if not line:
            raise Unreachable(f"connection to {self.name} lost (the persist daemon closed it)")
        if line.startswith(b"\0"):  # the command ended: what it said on stderr
            detail = line[1:].decode(errors="replace").strip()[-300:]
            raise Unreachable(f"connection to {self.name} lost: {detail}" if detail else
                              f"connection to {self.name} lost (the remote side closed it)")
        return line

    def close(self) -> None:
        try:
            self._in.close()
            self.sock.close()
        except OSError:
            pass


def _target_dict(target: SSHTarget) -> dict[str, Any]:
    data = asdict(target)

    def plain(d: dict[str, Any]) -> dict[str, Any]:
        d["known_hosts"] = [str(p) for p in d["known_hosts"]]
        d["key_files"] = list(d["key_files"])
        d["jumps"] = [plain(j) for j in d["jumps"]]
        return d
    return plain(data)


def _target_from(data: dict[str, Any]) -> SSHTarget:
    from provisioner.connection.ssh import SSHTarget
    known = {f.name for f in fields(SSHTarget)}
    d = {k: v for k, v in data.items() if k in known}
    d["known_hosts"] = tuple(Path(p) for p in d.get("known_hosts", ()))
    d["key_files"] = tuple(d.get("key_files", ()))
    d["jumps"] = tuple(_target_from(j) for j in d.get("jumps", ()))
    return SSHTarget(**d)


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except OSError:
        sock.close()
        return None


def _spawn(path: Path, idle: float) -> None:
    import subprocess
    log = path.with_suffix(".log")
    with open(log, "ab") as err:
        os.chmod(log, 0o600)
        # this very provisioner package, whatever the run's cwd and sys.path; the daemon's cwd is /
        # (it must not hold a directory the run was started in)
        top = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [top, os.environ.get("PYTHONPATH")]))}
        subprocess.Popen([sys.executable, "-m", "provisioner.connection.persist", str(path), str(idle)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd="/", env=env,
                         start_new_session=True, close_fds=True)


_START_LOCK = threading.Lock()


def daemon_socket(idle: float, start: bool = True) -> socket.socket | None:
    """A connection to this user's daemon; started if none answers (and `start`). None: no daemon."""
    try:
        path = socket_path()
    except OSError:
        return None
    sock = _connect(path)
    if sock is not None or not start:
        return sock
    with _START_LOCK:  # one start per run, however many hosts ask at once
        sock = _connect(path)
        if sock is not None:
            return sock
        try:
            _spawn(path, idle)
        except OSError:
            return None
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(0.01)
            sock = _connect(path)
            if sock is not None:
                return sock
    return None


def _ask(sock: socket.socket, header: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    try:
        sock.settimeout(timeout)
        sock.sendall(json.dumps(header).encode() + b"\n")
        line = b""
        while not line.endswith(b"\n"):
            got = sock.recv(1)   # byte by byte: what follows the answer is the agent's
            if not got:
                return None
            line += got
        sock.settimeout(None)
        return json.loads(line)
    except (OSError, ValueError):
        return None


def attach(target: SSHTarget, argv: list[str], idle: float,
           fresh: bool = False) -> tuple[PersistStream, bool] | None:
    """The agent on `target` through the daemon: (stream, whether it is a kept agent, booted).
    None when there is no daemon to ask (the caller connects directly). Unreachable as SSH says it."""
    sock = daemon_socket(idle)
    if sock is None:
        return None
    answer = _ask(sock, {"target": _target_dict(target), "argv": argv, "idle": idle, "fresh": fresh},
                  target.timeout * (1 + len(target.jumps)) + HEADER_TIMEOUT_S)
    if answer is None:
        sock.close()
        return None
    if "unreachable" in answer:
        sock.close()
        raise Unreachable(str(answer["unreachable"]))
    return PersistStream(sock, target.name), bool(answer.get("live"))


def control(op: str) -> dict[str, Any] | None:
    """`info` ({pid, kept, attached}) or `stop` (close every kept agent and exit) to a running
    daemon; None when none runs."""
    sock = daemon_socket(0, start=False)
    if sock is None:
        return None
    try:
        return _ask(sock, {"op": op}, HEADER_TIMEOUT_S)
    finally:
        sock.close()


# -- the daemon ------------------------------------------------------------------------------------

class LineCounter:
    """Counts the lines of a byte stream that start with `{` (a request, or a reply) and are not
    progress lines, and says whether the stream stands between two lines."""

    def __init__(self) -> None:
        self.count = 0
        self._head = b""      # the current line's first bytes, up to len(PROGRESS_PREFIX)
        self.between = True   # no line begun

    def feed(self, data: bytes) -> None:
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if len(self._head) < len(PROGRESS_PREFIX):
                self._head += piece[:len(PROGRESS_PREFIX) - len(self._head)]
            if end < 0:
                self.between = False
                return
            if self._head.startswith(b"{") and not self._head.startswith(PROGRESS_PREFIX):
                self.count += 1
            self._head, self.between = b"", True
            start = end + 1


class _Agent:
    """An agent's command on a host, with its connection, attached to a run or kept."""

    def __init__(self, key: str, conn: SSHConnection, channel: Any, idle: float) -> None:
        self.key, self.conn, self.channel, self.idle = key, conn, channel, idle
        self.client: socket.socket | None = None
        self.requests = LineCounter()
        self.replies = LineCounter()
        self.kept_since = 0.0
        self.err = b""   # the last of what the command wrote on stderr

    def balanced(self) -> bool:
        return (self.requests.between and self.replies.between
                and self.requests.count == self.replies.count and not self.channel.closed
                and not self.channel.exit_status_ready())

    def close(self) -> None:
        try:
            self.channel.shutdown_write()
            self.channel.close()
        except Exception:
            pass
        self.conn.close()


class Daemon:
    """One select loop relays every run's bytes; connecting (SSH's handshake) runs in threads."""

    def __init__(self, path: Path, idle: float) -> None:
        import selectors
        self.path, self.idle = path, idle
        self.sel = selectors.DefaultSelector()
        self.kept: dict[str, list[_Agent]] = {}
        self.by_channel: dict[int, _Agent] = {}    # the channel's fileno -> its agent
        self.by_client: dict[int, _Agent] = {}     # the run's socket fileno -> its agent
        self.pending: dict[int, bytes] = {}        # a run's socket whose header is not read yet
        self.connecting = 0
        self.done: list[tuple[socket.socket, Any]] = []   # from the connecting threads
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        self.last_busy = time.monotonic()
        self.running = True

    # the loop -----------------------------------------------------------------------------------
    def serve(self, server: socket.socket) -> None:
        import selectors
        self.sel.register(server, selectors.EVENT_READ, "server")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        while self.running:
            for key, _ in self.sel.select(timeout=1.0):
                try:
                    self._event(server, key)
                except Exception:  # one host's trouble must not end the others' agents: log it, go on
                    import traceback
                    traceback.print_exc()
            self._expire()

    def _event(self, server: socket.socket, key: Any) -> None:
        what = key.data
        if what == "server":
            self._accept(server)
        elif what == "wake":
            os.read(self.wake_r, 4096)
            self._connected()
        elif what == "header":
            self._header(key.fileobj)
        elif what == "client":
            self._from_client(key.fileobj)
        elif what == "channel":
            self._from_channel(self.by_channel.get(key.fd))

    def _accept(self, server: socket.socket) -> None:
        import selectors
        try:
            sock, _ = server.accept()
        except OSError:
            return
        uid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.geteuid():
            sock.close()
            return
        self.pending[sock.fileno()] = b""
        self.sel.register(sock, selectors.EVENT_READ, "header")

    def _header(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.pending.pop(fd, None)
            self.sel.unregister(sock)
            sock.close()
            return
        buf = self.pending[fd] + data
        if b"\n" not in buf:
            self.pending[fd] = buf
            return
        del self.pending[fd]
        self.sel.unregister(sock)
        try:
            header = json.loads(buf[:buf.index(b"\n")])
        except ValueError:
            sock.close()
            return
        op = header.get("op")
        if op is not None:
            self._control(sock, op)
            return
        self.last_busy = time.monotonic()
        try:
            argv = [str(a) for a in header["argv"]]
            key = hashlib.sha256(json.dumps([header["target"], argv], sort_keys=True).encode()).hexdigest()
            target = _target_from(header["target"])
            idle = float(header.get("idle") or self.idle)
        except (KeyError, TypeError, ValueError) as exc:
            self._answer(sock, {"unreachable": f"persist daemon: a header it cannot read ({exc})"})
            sock.close()
            return
        self.idle = max(self.idle, idle)
        kept = self.kept.get(key, [])
        while kept and not header.get("fresh"):
            agent = kept.pop()
            if agent.balanced():
                self._attach(sock, agent, live=True)
                return
            self._forget(agent)
        for agent in list(kept) if header.get("fresh") else ():
            self._forget(agent)
        self.connecting += 1
        threading.Thread(target=self._open, args=(sock, key, target, argv, idle), daemon=True).start()

    def _open(self, sock: socket.socket, key: str, target: SSHTarget, argv: list[str], idle: float) -> None:
        from provisioner.connection.ssh import SSHConnection
        conn = SSHConnection(target)
        try:
            stream = conn.start(argv)
            result: Any = _Agent(key, conn, stream.channel, idle)
        except Unreachable as exc:
            conn.close()
            result = str(exc)
        except Exception as exc:  # a broken host must not take the daemon down
            conn.close()
            result = f"cannot connect to {target.where}: {type(exc).__name__}: {exc}"
        with self.lock:
            self.done.append((sock, result))
        os.write(self.wake_w, b"x")

    def _connected(self) -> None:
        with self.lock:
            done, self.done = self.done, []
        for sock, result in done:
            self.connecting -= 1
            if isinstance(result, str):
                self._answer(sock, {"unreachable": result})
                sock.close()
            else:
                self._attach(sock, result, live=False)

    def _attach(self, sock: socket.socket, agent: _Agent, live: bool) -> None:
        import selectors
        if not self._answer(sock, {"live": live}):
            sock.close()
            self._keep(agent) if live else self._drop(agent)
            return
        agent.client = sock
        agent.channel.settimeout(0.0)
        self.by_client[sock.fileno()] = agent
        self.sel.register(sock, selectors.EVENT_READ, "client")
        if not live:
            self.by_channel[agent.channel.fileno()] = agent
            self.sel.register(agent.channel.fileno(), selectors.EVENT_READ, "channel")

    @staticmethod
    def _answer(sock: socket.socket, answer: dict[str, Any]) -> bool:
        try:
            sock.sendall(json.dumps(answer).encode() + b"\n")
            return True
        except OSError:
            return False

    # relaying -------------------------------------------------------------------------------------
    def _from_client(self, sock: socket.socket) -> None:
        agent = self.by_client.get(sock.fileno())
        if agent is None:
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if data:
            agent.requests.feed(data)
            try:
                agent.channel.settimeout(None)
                agent.channel.sendall(data)
                agent.channel.settimeout(0.0)
                return
            except Exception:
                pass
        self._detach(agent)

    def _from_channel(self, agent: _Agent | None) -> None:
        if agent is None:
            return
        try:
            data = agent.channel.recv(65536)
        except socket.timeout:  # woken by stderr (the channel's pipe is set for both): keep its tail
            try:
                while agent.channel.recv_stderr_ready():
                    agent.err = (agent.err + agent.channel.recv_stderr(65536))[-300:]
            except Exception:
                pass
            return
        except Exception:
            data = b""
        if data:
            agent.replies.feed(data)
            if agent.client is None:   # a kept agent said something: it is not between requests
                self._forget(agent)
                return
            try:
                agent.client.sendall(data)
            except OSError:
                self._detach(agent)
            return
        # the command ended (or the connection broke): tell the run what it said on stderr
        err = agent.err
        try:
            while agent.channel.recv_stderr_ready():
                err = (err + agent.channel.recv_stderr(65536))[-300:]
        except Exception:
            pass
        client = agent.client
        self._forget(agent)
        if client is not None:
            try:
                client.sendall(b"\0" + err.replace(b"\n", b" ") + b"\n")
            except OSError:
                pass
            client.close()

    def _detach(self, agent: _Agent) -> None:
        """The run closed its socket: keep its agent for the next run, if between requests."""
        client, agent.client = agent.client, None
        if client is not None:
            self.by_client.pop(client.fileno(), None)
            self.sel.unregister(client)
            client.close()
        if agent.balanced():
            self._keep(agent)
        else:
            self._forget(agent)
        self.last_busy = time.monotonic()

    def _keep(self, agent: _Agent) -> None:
        agent.kept_since = time.monotonic()
        self.kept.setdefault(agent.key, []).append(agent)

    def _forget(self, agent: _Agent) -> None:
        """An agent no run will use again: unregister it, close it."""
        fd = agent.channel.fileno()
        if self.by_channel.pop(fd, None) is not None:
            self.sel.unregister(fd)
        if agent.client is not None:
            self.by_client.pop(agent.client.fileno(), None)
            self.sel.unregister(agent.client)
            agent.client.close()
            agent.client = None
        kept = self.kept.get(agent.key)
        if kept and agent in kept:
            kept.remove(agent)
        self._drop(agent)

    def _drop(self, agent: _Agent) -> None:
        threading.Thread(target=agent.close, daemon=True).start()  # closing waits on the host

    def _expire(self) -> None:
        now = time.monotonic()
        for agents in list(self.kept.values()):
            for agent in list(agents):
                if now - agent.kept_since > agent.idle:
                    self._forget(agent)
        self.kept = {k: v for k, v in self.kept.items() if v}
        if not self.kept and not self.by_client and not self.pending and not self.connecting \
                and now - self.last_busy > self.idle:
            self.running = False

    def _control(self, sock: socket.socket, op: str) -> None:
        """info, or stop: the figures are those before stopping."""
        self._answer(sock, {"pid": os.getpid(), "kept": sum(len(v) for v in self.kept.values()),
                            "attached": len(self.by_client)})
        sock.close()
        if op == "stop":
            for agents in list(self.kept.values()):
                for agent in list(agents):
                    self._forget(agent)
            self.running = False


def main(argv: list[str]) -> int:
    import fcntl
    path, idle = Path(argv[0]), float(argv[1])
    lock = open(path.with_suffix(".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another daemon has it
    if _connect(path) is not None:
        return 0
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    server.listen(256)
    daemon = Daemon(path, idle)
    try:
        daemon.serve(server)
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        server.close()
        for agents in daemon.kept.values():
            for agent in agents:
                agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
