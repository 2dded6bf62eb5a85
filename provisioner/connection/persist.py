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

from provisioner.connection.base import Unreachable, lost

if TYPE_CHECKING:
    from provisioner.connection.ssh import SSHConnection, SSHStream, SSHTarget

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
            raise lost(self.name, str(exc)) from exc

    def readline(self) -> bytes:
        try:
            line = self._in.readline()
        except OSError as exc:
            raise lost(self.name, str(exc)) from exc
        if not line:
            raise lost(self.name, closer="the persist daemon")
        if line.startswith(b"\0"):  # the command ended: what it said on stderr
            raise lost(self.name, line[1:].decode(errors="replace").strip()[-300:])
        return line

    def close(self) -> None:
        try:
            self._in.close()
            self.sock.close()
        except OSError:
            pass


def _target_dict(target: SSHTarget) -> dict[str, Any]:
    """The target as JSON, its files made absolute here: the daemon's cwd is not this run's."""
    data = asdict(target)

    def absolute(p: Any) -> str:
        return os.path.abspath(os.path.expanduser(str(p)))

    def plain(d: dict[str, Any]) -> dict[str, Any]:
        d["known_hosts"] = [absolute(p) for p in d["known_hosts"]]
        d["key_files"] = [absolute(p) for p in d["key_files"]]
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
_START_FAILED: list[bool] = []   # a daemon this run started did not answer: do not try again per host


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
        if _START_FAILED:
            return None
        sock = _connect(path)
        if sock is not None:
            return sock
        try:
            _spawn(path, idle)
        except OSError:
            _START_FAILED.append(True)
            return None
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(0.01)
            sock = _connect(path)
            if sock is not None:
                return sock
        _START_FAILED.append(True)
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
    None when the caller connects directly: a host behind a jump host or a ProxyCommand (a path the
    daemon would not take as this run does), or no daemon to ask. Unreachable as SSH says it."""
    if target.jumps or target.proxy_command:
        return None
    sock = daemon_socket(idle)
    if sock is None:
        return None
    header = {"target": _target_dict(target), "argv": argv, "idle": idle, "fresh": fresh,
              "auth_sock": os.environ.get("SSH_AUTH_SOCK")}
    answer = _ask(sock, header, target.timeout + HEADER_TIMEOUT_S)
    if answer is None or "direct" in answer:   # no answer, or one that says: connect yourself
        sock.close()
        return None
    if "unreachable" in answer:
        sock.close()
        raise Unreachable(str(answer["unreachable"]))
    return PersistStream(sock, target.name), bool(answer.get("live"))


def control(op: str) -> dict[str, Any] | None:
    """`info` ({pid, kept, attached}) or `stop` (close every kept agent, let the runs in progress
    finish, then exit) to a running daemon; None when none runs."""
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


LIMIT = 1 << 20   # bytes held per direction for one agent before the side that sends them is paused
HEADER_DEADLINE_S = 10.0


class _Agent:
    """An agent's command on a host, with its connection, attached to a run or kept."""

    def __init__(self, key: str, conn: SSHConnection, stream: SSHStream, idle: float) -> None:
        self.key, self.conn, self.stream, self.idle = key, conn, stream, idle
        self.channel = stream.channel
        self.client: socket.socket | None = None
        self.requests = LineCounter()
        self.replies = LineCounter()
        self.to_channel = bytearray()   # from the run, not yet taken by the channel (its window)
        self.to_client = bytearray()    # from the host, not yet taken by the run's socket
        self.client_events = 0          # what the run's socket is registered for now
        self.reading = False            # whether the channel is registered
        self.kept_since = 0.0
        self.err = ""   # the last of what the command wrote on stderr

    def balanced(self) -> bool:
        """Between two requests (every request answered, no line begun), booted (a run had an
        answer: a run that left before it sent the boot marker leaves an agent that waits for it),
        nothing unsent or unread, and its command still running."""
        return (self.replies.count > 0 and self.requests.between and self.replies.between
                and self.requests.count == self.replies.count and not self.to_channel
                and not self.channel.closed and not self.channel.exit_status_ready()
                and not self.channel.recv_ready())

    def keep_stderr(self) -> None:
        self.err = (self.err + " " + self.stream.read_stderr()).strip()[-300:]

    def close(self) -> None:
        self.stream.close()
        self.conn.close()


class Daemon:
    """One select loop relays every run's bytes, never blocking on one of them: what a side cannot
    take yet is held (up to LIMIT, then its sender is paused). SSH handshakes run in threads."""

    def __init__(self, path: Path, idle: float) -> None:
        import selectors
        self.path, self.idle = path, idle
        self.sel = selectors.DefaultSelector()
        self.kept: dict[str, list[_Agent]] = {}
        self.attached: set[_Agent] = set()
        self.stalled: set[_Agent] = set()          # holding bytes the channel's window did not take
        self.pending: dict[socket.socket, tuple[bytes, float]] = {}   # header not read yet: (bytes, deadline)
        self.connecting = 0
        self.done: list[tuple[socket.socket, Any]] = []   # from the connecting threads
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        self.last_busy = time.monotonic()
        self.running = True
        self.stopping = False

    # the loop -----------------------------------------------------------------------------------
    def serve(self, server: socket.socket) -> None:
        import selectors
        self.sel.register(server, selectors.EVENT_READ, ("server", None))
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        while self.running:
            events = self.sel.select(timeout=0.02 if self.stalled else 1.0)
            for key, mask in events:
                try:
                    self._event(server, key, mask)
                except Exception:  # one host's trouble must not end the others' agents: log it, go on
                    import traceback
                    traceback.print_exc()
            for agent in list(self.stalled):
                self._flush_channel(agent)
            if not events:
                # paramiko's pipe for a channel is one for stdout and stderr, set and cleared under
                # two locks: it can be cleared with stdout waiting. Look, once a quiet second.
                for agent in list(self.attached):
                    if agent.reading and agent.channel.recv_ready():
                        self._from_channel(agent)
            self._expire()

    def _event(self, server: socket.socket, key: Any, mask: int) -> None:
        import selectors
        what, agent = key.data
        if what == "server":
            self._accept(server)
        elif what == "wake":
            os.read(self.wake_r, 4096)
            self._connected()
        elif what == "header":
            self._header(key.fileobj)
        elif what == "client":
            if mask & selectors.EVENT_WRITE:
                self._flush_client(agent)
            if mask & selectors.EVENT_READ and agent.client is key.fileobj:
                self._from_client(agent)
        elif what == "channel":
            self._from_channel(agent)

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
        self.pending[sock] = (b"", time.monotonic() + HEADER_DEADLINE_S)
        self.sel.register(sock, selectors.EVENT_READ, ("header", None))

    def _header(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        buf = self.pending[sock][0] + data
        if data and b"\n" not in buf:
            self.pending[sock] = (buf, self.pending[sock][1])
            return
        del self.pending[sock]
        self.sel.unregister(sock)
        try:
            header = json.loads(buf[:buf.index(b"\n")])
            if not isinstance(header, dict):
                raise ValueError("not an object")
        except ValueError:   # also: the run left before its header was whole
            sock.close()
            return
        op = header.get("op")
        if op is not None:
            self._control(sock, str(op))
            return
        self.last_busy = time.monotonic()
        if self.stopping:
            self._answer(sock, {"direct": "the persist daemon is stopping"})
            sock.close()
            return
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
                self._attach(sock, agent, live=True, idle=idle)
                return
            self._forget(agent)
        for agent in list(kept) if header.get("fresh") else ():
            self._forget(agent)
        if not target.key_files and header.get("auth_sock") != os.environ.get("SSH_AUTH_SOCK"):
            # the keys of another ssh-agent than the one this daemon was started with
            self._answer(sock, {"direct": "another ssh-agent than the daemon's"})
            sock.close()
            return
        self.connecting += 1
        threading.Thread(target=self._open, args=(sock, key, target, argv, idle), daemon=True).start()

    def _open(self, sock: socket.socket, key: str, target: SSHTarget, argv: list[str], idle: float) -> None:
        from provisioner.connection.ssh import SSHConnection
        conn = SSHConnection(target)
        try:
            stream = conn.start(argv)
            result: Any = _Agent(key, conn, stream, idle)
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
                self._attach(sock, result, live=False, idle=result.idle)

    def _attach(self, sock: socket.socket, agent: _Agent, live: bool, idle: float) -> None:
        if not self._answer(sock, {"live": live}):
            sock.close()
            if live and agent.balanced():
                self._keep(agent)
            else:
                self._forget(agent)
            return
        sock.setblocking(False)
        agent.client, agent.idle = sock, idle
        agent.channel.settimeout(0.0)
        self.attached.add(agent)
        self._update(agent)

    @staticmethod
    def _answer(sock: socket.socket, answer: dict[str, Any]) -> bool:
        try:
            sock.sendall(json.dumps(answer).encode() + b"\n")
            return True
        except OSError:
            return False

    # relaying -------------------------------------------------------------------------------------
    def _update(self, agent: _Agent) -> None:
        """Register what each side can take now: the run's socket for reading while the channel is
        not behind, for writing while bytes wait for it; the channel while the run is not behind."""
        import selectors
        if agent.client is not None:
            want = (selectors.EVENT_READ if len(agent.to_channel) < LIMIT else 0) | \
                (selectors.EVENT_WRITE if agent.to_client else 0)
            if want != agent.client_events:
                if agent.client_events == 0:
                    self.sel.register(agent.client, want, ("client", agent))
                elif want == 0:
                    self.sel.unregister(agent.client)
                else:
                    self.sel.modify(agent.client, want, ("client", agent))
                agent.client_events = want
        read = len(agent.to_client) < LIMIT
        if read != agent.reading:
            if read:
                self.sel.register(agent.channel.fileno(), selectors.EVENT_READ, ("channel", agent))
            else:
                self.sel.unregister(agent.channel.fileno())
            agent.reading = read

    def _from_client(self, agent: _Agent) -> None:
        try:
            data = agent.client.recv(65536) if agent.client is not None else b""
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._detach(agent)
            return
        agent.requests.feed(data)
        agent.to_channel += data
        self._flush_channel(agent)

    def _flush_channel(self, agent: _Agent) -> None:
        while agent.to_channel:
            try:
                n = agent.channel.send(bytes(agent.to_channel[:32768]))
            except TimeoutError:   # the window is full: later (the loop retries stalled agents)
                break
            except Exception:
                n = 0
            if n == 0:   # closed: its EOF comes through the channel's side
                agent.to_channel.clear()
                break
            del agent.to_channel[:n]
        if agent.to_channel:
            self.stalled.add(agent)
        else:
            self.stalled.discard(agent)
        if agent.client is not None or agent in self.attached:
            self._update(agent)

    def _from_channel(self, agent: _Agent) -> None:
        try:
            data = agent.channel.recv(65536)
        except TimeoutError:  # woken by stderr (the channel's pipe is set for both): keep its tail
            agent.keep_stderr()
            return
        except Exception:
            data = b""
        if data:
            agent.replies.feed(data)
            if agent.client is None:   # a kept agent said something: it is not between requests
                self._forget(agent)
                return
            agent.to_client += data
            self._flush_client(agent)
            return
        # the command ended (or the connection broke): tell the run what it said on stderr
        agent.keep_stderr()
        client, agent.client = agent.client, None
        if client is not None:
            self._unregister_client(agent, client)
            try:   # what it has not taken yet, then the end; a bounded wait, on this rare path only
                client.settimeout(5.0)
                client.sendall(bytes(agent.to_client) + b"\0" + agent.err.replace("\n", " ").encode() + b"\n")
            except OSError:
                pass
            client.close()
        self._forget(agent)

    def _flush_client(self, agent: _Agent) -> None:
        client = agent.client
        if client is None:
            agent.to_client.clear()
            return
        try:
            n = client.send(agent.to_client)
        except BlockingIOError:
            n = 0
        except OSError:
            self._detach(agent)
            return
        del agent.to_client[:n]
        self._update(agent)

    def _unregister_client(self, agent: _Agent, client: socket.socket) -> None:
        if agent.client_events:
            self.sel.unregister(client)
            agent.client_events = 0

    def _detach(self, agent: _Agent) -> None:
        """The run closed its socket: keep its agent for the next run, if between requests."""
        client, agent.client = agent.client, None
        if client is not None:
            self._unregister_client(agent, client)
            client.close()
        agent.to_client.clear()
        self.attached.discard(agent)
        if not self.stopping and agent.balanced():
            self._keep(agent)
        else:
            self._forget(agent)
        self.last_busy = time.monotonic()

    def _keep(self, agent: _Agent) -> None:
        agent.kept_since = time.monotonic()
        self.kept.setdefault(agent.key, []).append(agent)
        self._update(agent)   # reading: a kept agent's EOF (its host went) is noticed

    def _forget(self, agent: _Agent) -> None:
        """An agent no run will use again: unregister it, close it."""
        if agent.reading:
            self.sel.unregister(agent.channel.fileno())
            agent.reading = False
        client, agent.client = agent.client, None
        if client is not None:
            self._unregister_client(agent, client)
            client.close()
        self.attached.discard(agent)
        self.stalled.discard(agent)
        kept = self.kept.get(agent.key)
        if kept and agent in kept:
            kept.remove(agent)
        threading.Thread(target=agent.close, daemon=True).start()  # closing waits on the host

    def _expire(self) -> None:
        now = time.monotonic()
        for sock, (_, deadline) in list(self.pending.items()):
            if now > deadline:   # a run that never finished its header
                del self.pending[sock]
                self.sel.unregister(sock)
                sock.close()
        for agents in list(self.kept.values()):
            for agent in list(agents):
                if now - agent.kept_since > agent.idle:
                    self._forget(agent)
        self.kept = {k: v for k, v in self.kept.items() if v}
        quiet = not self.attached and not self.pending and not self.connecting
        if quiet and (self.stopping or (not self.kept and now - self.last_busy > self.idle)):
            self.running = False

    def _control(self, sock: socket.socket, op: str) -> None:
        """info, or stop: the figures are those before stopping. Stopping closes the kept agents
        now; the runs in progress finish first (their agents are not kept), then the daemon exits."""
        self._answer(sock, {"pid": os.getpid(), "kept": sum(len(v) for v in self.kept.values()),
                            "attached": len(self.attached)})
        sock.close()
        if op == "stop":
            self.stopping = True
            for agents in list(self.kept.values()):
                for agent in list(agents):
                    self._forget(agent)


def main(argv: list[str]) -> int:
    import fcntl
    path, idle = Path(argv[0]), float(argv[1])
    with open(path.with_suffix(".lock"), "a") as lock:   # held while this daemon lives
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another daemon has it
        return _serve(path, idle)


def _serve(path: Path, idle: float) -> int:
    if _connect(path) is not None:
        return 0
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    log = path.with_suffix(".log")
    if log.exists() and log.stat().st_size > 1 << 20:   # tracebacks only; keep it small
        os.truncate(log, 0)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old)
    bound = path.stat().st_ino
    server.listen(256)
    daemon = Daemon(path, idle)
    try:
        daemon.serve(server)
    finally:
        try:   # ours only: a daemon started after this one's directory was removed binds the same name
            if path.stat().st_ino == bound:
                path.unlink()
        except FileNotFoundError:
            pass
        server.close()
        for agents in daemon.kept.values():
            for agent in agents:
                agent.close()
        for agent in daemon.attached:
            agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
