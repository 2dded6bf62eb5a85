"""The SSH connection (paramiko): one persistent connection per host for the whole run.

Host keys are checked strictly against known_hosts: an unknown key is refused unless
the user opted in to accept new keys (then it is recorded), and a changed key is always
refused, since that is what a man-in-the-middle looks like.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if "invoke" not in sys.modules:
    # paramiko.config imports invoke (for `Match exec`) when it is installed: 40 ms we never use.
    sys.modules["invoke"] = None  # type: ignore[assignment]
    import paramiko
    del sys.modules["invoke"]
else:
    import paramiko

from provisioner.connection.base import Unreachable, lost

_KNOWN_HOSTS_LOCK = threading.Lock()


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


_PARSED: dict[tuple[str, int, int], list[tuple[str, paramiko.PKey]]] = {}


def _known_host_entries(path: Path) -> list[tuple[str, paramiko.PKey]]:
    """The parsed lines of a known_hosts file, parsed once per run (not once per host: with N
    hosts in the file that was N*N key parses) and again only when the file changes."""
    try:
        st = path.stat()
    except OSError:
        return []
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _KNOWN_HOSTS_LOCK:
        entries = _PARSED.get(key)
        if entries is None:
            entries = _PARSED[key] = _parse_known_hosts(path)
    return entries


def _parse_known_hosts(path: Path) -> list[tuple[str, paramiko.PKey]]:
    """(name, key) for each name of each line, in file order; the first key of a name and key type
    wins, as with paramiko's HostKeys. One pass: HostKeys.load() looks every new line up among the
    lines before it, and indexing it scans them all again (at 200 hosts, 120,000 name matches and
    ~0.35 s of the controller's CPU a run)."""
    entries: list[tuple[str, paramiko.PKey]] = []
    seen: set[tuple[str, str]] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
                except paramiko.SSHException:  # a line paramiko cannot use (as HostKeys.load skips it)
                    continue
                if entry is None:
                    continue
                for name in entry.hostnames:
                    if (name, entry.key.get_name()) not in seen:
                        seen.add((name, entry.key.get_name()))
                        entries.append((name, entry.key))
    except Exception as exc:  # paramiko raises anything on a garbled line
        raise Unreachable(f"cannot read known_hosts {path}: {type(exc).__name__}: {exc}") from None
    return entries


_KEYS: dict[tuple[str, int], paramiko.PKey] = {}
IDLE_CHECK_S = 1.0
_AEAD_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _new_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """paramiko's Transport, asking for AES-GCM first (any other cipher stays offered after it).

    With AES-CTR + HMAC paramiko checks each packet's MAC byte by byte in Python; GCM's tag is
    checked inside `cryptography`. That was the largest per-packet cost on the controller.
    """
    transport = paramiko.Transport(sock, **kwargs)
    # paramiko's reader thread wakes every 0.1 s while its connection is idle, to see whether it was
    # closed; 200 idle connections were 2,000 wake-ups a second taking the GIL from the work.
    # close() does not wait for it (it closes the socket under the reader); keepalives and the
    # handshake timeout are checked each second instead of ten times a second.
    transport.sock.settimeout(IDLE_CHECK_S)
    options = transport.get_security_options()
    first = [c for c in _AEAD_FIRST if c in options.ciphers]
    options.ciphers = tuple(first + [c for c in options.ciphers if c not in first])
    return transport


def _key_arguments(path: str) -> dict[str, Any]:
    """`pkey=` with the key read once per run for all hosts; `key_filename=` (paramiko reads it,
    trying each key type in turn) for a key with a passphrase or a certificate beside it."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return {"key_filename": path}
    with _KNOWN_HOSTS_LOCK:
        key = _KEYS.get((path, mtime))
        if key is None and not os.path.exists(path + "-cert.pub"):
            try:
                key = _KEYS[(path, mtime)] = paramiko.PKey.from_path(path)
            except Exception:  # encrypted, or a format from_path does not know: let connect() say why
                key = None
    return {"pkey": key} if key is not None else {"key_filename": path}


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key in the known_hosts file (never replaces a known one)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        with _KNOWN_HOSTS_LOCK:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="ascii") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


class _RejectPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        fp = key.fingerprint if hasattr(key, "fingerprint") else key.get_name()
        raise Unreachable(
            f"host key of {hostname} is unknown ({fp}): refused. Check it, then add it to "
            f"{self.files[0] if self.files else '~/.ssh/known_hosts'} or run with --accept-new-host-keys")


class SSHStream:
    def __init__(self, channel: paramiko.Channel, name: str, why_lost: Callable[[], str] | None = None) -> None:
        self.channel = channel
        self.name = name
        self._out = channel.makefile("rb")
        self._why_lost = why_lost

    def _lost(self, why: str) -> Unreachable:
        """The connection broke; behind a jump host, say when the jump host is what went away."""
        jump = self._why_lost() if self._why_lost is not None else ""
        return lost(self.name, jump or why)

    def write(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            detail = self.read_stderr()  # the command may have exited at once: "python3: not found"
            raise self._lost(str(detail or exc or type(exc).__name__)) from exc

    def read_stderr(self) -> str:
        """What the command wrote on stderr and is here now (its last 300 characters)."""
        err = b""
        try:
            while self.channel.recv_stderr_ready():
                err += self.channel.recv_stderr(65536)
        except Exception:
            pass
        return err.decode(errors="replace").strip()[-300:]

    def readline(self) -> bytes:
        try:
            line = self._out.readline()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._lost(str(exc or type(exc).__name__)) from exc
        if not line:
            raise self._lost(self.read_stderr())
        return line

    def close(self) -> None:
        try:
            self.channel.shutdown_write()
            self.channel.close()
        except Exception:
            pass


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to reach one SSH host, every setting already resolved (inventory variables over
    ssh options over ssh_config over defaults: connection/factory.py decides)."""

    name: str                      # the inventory name, or the jump host as written
    hostname: str
    port: int = 22
    user: str = "root"
    key_files: tuple[str, ...] = ()
    identities_only: bool = False
    password: str | None = None
    known_hosts: tuple[Path, ...] = ()
    host_keys: str = "strict"      # strict | accept-new | off
    timeout: float = 10.0
    keepalive: int = 15
    compress: bool = False
    jumps: tuple[SSHTarget, ...] = ()   # outermost first
    proxy_command: str | None = None

    @property
    def where(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


# Opens the byte stream the SSH transport runs over (a jump host's direct-tcpip channel, say).
SocketOpener = Callable[[SSHTarget], Any]


class SSHConnection:
    """One SSH connection (paramiko SSHClient) to a target, direct, through a ProxyCommand or over a
    socket that `via` opens (a channel of a shared jump-host connection)."""

    def __init__(self, target: SSHTarget, via: SocketOpener | None = None,
                 why_lost: Callable[[], str] | None = None) -> None:
        self.target = target
        self.name = target.name
        self.via = via
        self.why_lost = why_lost
        self.client: paramiko.SSHClient | None = None

    def open(self) -> None:
        t = self.target
        client = paramiko.SSHClient()
        wanted = known_hosts_name(t.hostname, t.port)
        if t.host_keys != "off":
            for f in t.known_hosts:
                keys = client.get_host_keys()
                for hostname, key in _known_host_entries(f):
                    # Only this host's lines (and hashed ones, matched by paramiko): HostKeys.add scans
                    # what it holds, so adding a 50-host file for each of 50 hosts was 50^3 steps.
                    if hostname == wanted or hostname.startswith("|1|"):
                        keys.add(hostname, key.get_name(), key)
        policy: paramiko.MissingHostKeyPolicy
        if t.host_keys == "off":
            policy = paramiko.AutoAddPolicy()  # the user asked for no check (--insecure-no-host-key-check)
        elif t.host_keys == "accept-new" and t.known_hosts:
            policy = _AcceptNewPolicy(t.known_hosts[0])
        else:
            policy = _RejectPolicy(list(t.known_hosts))
        client.set_missing_host_key_policy(policy)
        kwargs: dict[str, Any] = dict(hostname=t.hostname, port=t.port, username=t.user,
                                      timeout=t.timeout, banner_timeout=t.timeout,
                                      auth_timeout=t.timeout, compress=t.compress,
                                      transport_factory=_new_transport)
        if t.key_files:
            # The key files alone (no agent round trip, no default keys): as fast as before.
            existing = [os.path.expanduser(k) for k in t.key_files]
            if len(existing) == 1:
                kwargs.update(_key_arguments(existing[0]))
            else:
                kwargs["key_filename"] = existing
            kwargs.update(look_for_keys=False, allow_agent=False)
        elif t.identities_only:
            kwargs.update(look_for_keys=False, allow_agent=False)
        if t.password:
            kwargs["password"] = t.password
        try:
            if self.via is not None:
                kwargs["sock"] = self.via(t)
            elif t.proxy_command:
                kwargs["sock"] = paramiko.ProxyCommand(t.proxy_command)
            client.connect(**kwargs)
        except Unreachable:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise Unreachable(
                f"HOST KEY CHANGED for {wanted}: refused (possible "
                f"man-in-the-middle). Got {exc.key.get_name()} {exc.key.fingerprint}; if the change is expected, "
                f"remove the old line from {t.known_hosts[0] if t.known_hosts else 'known_hosts'}") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise Unreachable(f"authentication failed for {t.where}: {exc}") from None
        except TimeoutError:
            client.close()
            raise Unreachable(f"cannot connect to {t.where}: timed out after {t.timeout:g}s") from None
        except (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError):
            client.close()
            raise Unreachable(f"cannot connect to {t.where}: connection refused") from None
        except paramiko.SSHException as exc:
            client.close()
            if "No authentication methods available" not in str(exc):
                raise Unreachable(f"cannot connect to {t.where}: {exc or type(exc).__name__}") from None
            raise Unreachable(f"authentication failed for {t.where}: no key to offer (no IdentityFile or "
                              "ansible_ssh_private_key_file, no key in the ssh-agent or ~/.ssh)") from None
        except (OSError, EOFError) as exc:
            client.close()
            how = " through its ProxyCommand" if t.proxy_command and self.via is None else ""
            raise Unreachable(f"cannot connect to {t.where}{how}: {exc or type(exc).__name__}") from None
        transport = client.get_transport()
        if transport is not None and t.keepalive > 0:
            transport.set_keepalive(t.keepalive)
        self.client = client

    def transport(self) -> paramiko.Transport:
        if self.client is None:
            self.open()
        assert self.client is not None
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise Unreachable(f"connection to {self.name} is closed")
        return transport

    def start(self, argv: list[str]) -> SSHStream:
        try:
            channel = self.transport().open_session()
            channel.exec_command(" ".join(shlex.quote(a) for a in argv))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            why = self.why_lost() if self.why_lost is not None else ""
            raise Unreachable(f"cannot start a command on {self.name}: {why or exc or type(exc).__name__}") from exc
        return SSHStream(channel, self.name, self.why_lost)

    def run_raw(self, command: str, stdin: bytes = b"", timeout: float | None = None,
                pty: bool = False) -> tuple[int, bytes, bytes]:
        """`command` as one exec session, through the login shell, no agent (the `raw` module):
        (exit status, stdout, stderr). With `pty` (as Ansible's ssh -tt) stderr comes within stdout."""
        try:
            channel = self.transport().open_session()
            channel.settimeout(timeout)
            if pty:
                channel.get_pty(width=200)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            err: list[bytes] = []  # read beside stdout: a full stderr window must not stall stdout
            reader = threading.Thread(target=lambda: err.append(channel.makefile_stderr("rb").read()), daemon=True)
            reader.start()
            out = channel.makefile("rb").read()
            reader.join()
            rc = channel.recv_exit_status()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise Unreachable(f"cannot run a raw command on {self.name}: {exc or type(exc).__name__}") from exc
        return rc, out, b"".join(err)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
