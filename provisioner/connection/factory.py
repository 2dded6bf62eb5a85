"""Which connection a host gets, from which variables and ssh config: the executor asks here by host.

Precedence is Ansible's: the inventory's connection variables (`ansible_host`, `ansible_port`,
`ansible_user`, `ansible_ssh_private_key_file`, ...) over the options in
`ansible_ssh_args` / `_common_args` / `_extra_args`, over the OpenSSH client config
(`~/.ssh/config` or `--ssh-config FILE`, read by paramiko's SSHConfig), over the defaults.

One SSH connection per target host per run; a jump host (ProxyJump) gets one connection per run,
shared by every host behind it: each of those is a direct-tcpip channel over it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.connection.base import Connection, Unreachable
from provisioner.connection.local import LocalConnection
from provisioner.connection.ssh_args import SshArgsError, config_text, ssh_args_to_config

if TYPE_CHECKING:
    import paramiko

    from provisioner.connection.ssh import SSHConnection, SSHTarget
    from provisioner.executor.context import RunOptions

SSH_TYPES = ("ssh", "paramiko", "smart")
DEFAULT_SSH_CONFIG = Path("~/.ssh/config")
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
_ARG_VARS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")  # ssh's order
_MAX_HOPS = 8
# every variable ssh_target() reads
SETTING_VARS = ("ansible_connection", "ansible_host", "ansible_port", "ansible_ssh_port", "ansible_user",
                "ansible_ssh_user", "ansible_ssh_private_key_file", "ansible_private_key_file",
                "ansible_ssh_known_hosts_file", "ansible_timeout", *_ARG_VARS)
_JUMP_RETRY_S = 10.0  # a jump host that refused us is not asked again sooner (reboot waits ask later)


class ConnectionSettingError(Exception):
    """A host's connection settings cannot be honoured (an unknown ssh option, a refused setting)."""


class ConnectionFactory:
    """Builds each host's connection and owns the jump-host connections they share, for one run."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._file_text: str | None = None
        self._configs: dict[str, paramiko.SSHConfig] = {}
        self._found: dict[tuple[str, str], dict[str, Any]] = {}
        self._jumps: dict[tuple[tuple[str, str, int], ...], SSHConnection] = {}
        self._jump_locks: dict[tuple[tuple[str, str, int], ...], threading.Lock] = {}
        self._jump_failed: dict[tuple[tuple[str, str, int], ...], tuple[float, Unreachable]] = {}

    # -- the connection ------------------------------------------------------------------
    def for_host(self, name: str, hvars: Mapping[str, Any], default_type: str = "ssh") -> Connection:
        conn_type = str(hvars.get("ansible_connection", default_type))
        if conn_type == "local":
            return LocalConnection(name)
        if conn_type not in SSH_TYPES:
            raise Unreachable(f"unknown connection type {conn_type!r} (expected local or ssh)")
        from provisioner.connection.ssh import SSHConnection  # paramiko only when needed

        target = self.ssh_target(name, hvars)
        if not target.jumps:
            return SSHConnection(target)
        chain = target.jumps
        return SSHConnection(target, via=lambda t: self._channel_through(chain, t),
                             why_lost=lambda: self._jump_lost(chain))

    def close(self) -> None:
        with self._lock:
            jumps = list(self._jumps.values())
            self._jumps.clear()
        for conn in reversed(jumps):  # the innermost hop first
            conn.close()

    # -- what a host's settings are ------------------------------------------------------------
    def ssh_target(self, name: str, hvars: Mapping[str, Any]) -> SSHTarget:
        """The host's SSH settings, resolved; ConnectionSettingError says what cannot be honoured."""
        from provisioner.connection.ssh import SSHTarget

        args = " ".join(str(hvars[v]) for v in _ARG_VARS if hvars.get(v))
        try:
            pairs = ssh_args_to_config(args) if args else []
        except SshArgsError as exc:
            raise ConnectionSettingError(f"{exc} (in {'/'.join(v for v in _ARG_VARS if hvars.get(v))})") from None
        # As Ansible runs ssh: the inventory's port and user come first (first value wins), so they
        # also are what %p and %r expand to and what `Match user` sees. Only a config that uses
        # those is parsed per port and user (a 200-line ~/.ssh/config is ~5 ms a parse).
        port = hvars.get("ansible_port") or hvars.get("ansible_ssh_port")
        user = hvars.get("ansible_user") or hvars.get("ansible_ssh_user")
        first: list[tuple[str, str]] = []
        if self._uses_port_or_user(args):
            first += [("Port", str(_int(port, "ansible_port", name)))] if port else []
            first += [("User", str(user))] if user else []
        alias = str(hvars.get("ansible_host") or name)
        found = self._lookup(first + pairs, alias)
        known = self._known_hosts(found, hvars)
        target = SSHTarget(
            name=name,
            hostname=str(found.get("hostname", alias)),
            port=_int(port or found.get("port") or 22, "port", name),
            user=str(user or found.get("user") or os.environ.get("USER") or "root"),
            key_files=self._key_files(found, hvars),
            identities_only=_yes(found.get("identitiesonly")),
            password=hvars.get("ansible_password") or hvars.get("ansible_ssh_pass"),
            known_hosts=known,
            host_keys=self._host_key_mode(found.get("stricthostkeychecking"), name),
            timeout=float(hvars.get("ansible_timeout") or found.get("connecttimeout") or self.options.connect_timeout),
            keepalive=_int(found.get("serveraliveinterval") or 15, "ServerAliveInterval", name),
            compress=_yes(found.get("compression")),
            proxy_command=found.get("proxycommand") or None,
        )
        jump = str(found.get("proxyjump") or "")
        if jump and jump.lower() != "none":
            target = replace(target, jumps=self._hops(jump, target, ()), proxy_command=None)
        return target

    def check_host(self, name: str, hvars: Mapping[str, Any], default_type: str = "ssh") -> None:
        """Resolve a host's connection settings without connecting: what the CLI checks before any
        host is touched (an `-o` option we do not understand stops the run there). Settings
        written as templates are resolved when the host connects, with its play's variables."""
        if any(isinstance(hvars.get(k), str) and "{{" in hvars[k] for k in SETTING_VARS):
            return
        if str(hvars.get("ansible_connection", default_type)) in SSH_TYPES:
            self.ssh_target(name, hvars)

    def _uses_port_or_user(self, args: str) -> bool:
        with self._lock:
            if self._file_text is None:
                self._file_text = self._read_ssh_config()
            text = (args + self._file_text).lower()
        return "%p" in text or "%r" in text or "%c" in text or "match" in text

    def _lookup(self, pairs: list[tuple[str, str]], alias: str) -> dict[str, Any]:
        """The ssh config's settings for `alias` with these options first, looked up once per run
        (a jump host is looked up for every host behind it; paramiko asks the password database
        for the local user once per non-matching block when $USER is unset)."""
        head = config_text(pairs) if pairs else ""
        found = self._found.get((head, alias))
        if found is None:
            found = self._found[(head, alias)] = self._config(pairs).lookup(alias)
        return found

    def _config(self, pairs: list[tuple[str, str]]) -> paramiko.SSHConfig:
        """paramiko's SSHConfig of these options (first, so they win) and the user's ssh_config;
        parsed once per distinct set of options."""
        from provisioner.connection.ssh import paramiko

        head = config_text(pairs) if pairs else ""
        with self._lock:
            cached = self._configs.get(head)
            if cached is not None:
                return cached
            if self._file_text is None:
                self._file_text = self._read_ssh_config()
            text = head + self._file_text
            try:
                config = paramiko.SSHConfig.from_text(text)
            except Exception as exc:  # paramiko's ConfigParseError, or a bad Match line
                raise ConnectionSettingError(f"cannot read the ssh config: {exc}") from None
            self._configs[head] = config
            return config

    def _read_ssh_config(self) -> str:
        path = self.options.ssh_config
        if path is None:
            default = DEFAULT_SSH_CONFIG.expanduser()
            return default.read_text(encoding="utf-8", errors="replace") if default.is_file() else ""
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConnectionSettingError(f"cannot read ssh config {path}: {exc.strerror}") from None

    def _known_hosts(self, found: Mapping[str, Any], hvars: Mapping[str, Any]) -> tuple[Path, ...]:
        """known_hosts files, the first one being where --accept-new-host-keys records a new key."""
        files: list[Path] = []
        if hvars.get("ansible_ssh_known_hosts_file"):
            files.append(Path(str(hvars["ansible_ssh_known_hosts_file"])).expanduser())
        user_files = str(found.get("userknownhostsfile") or "").split()
        files += [Path(f).expanduser() for f in user_files]
        files += self.options.known_hosts
        if not user_files:
            files += [Path(f).expanduser() for f in DEFAULT_KNOWN_HOSTS]
        files += [Path(f).expanduser() for f in str(found.get("globalknownhostsfile") or "").split()]
        seen: dict[Path, None] = {}
        for f in files:
            seen.setdefault(f, None)
        return tuple(seen)

    @staticmethod
    def _key_files(found: Mapping[str, Any], hvars: Mapping[str, Any]) -> tuple[str, ...]:
        inventory_key = hvars.get("ansible_ssh_private_key_file") or hvars.get("ansible_private_key_file")
        if inventory_key:
            return (str(inventory_key),)
        # As ssh does, an IdentityFile that does not exist is skipped (configs list keys per machine).
        return tuple(f for f in found.get("identityfile", []) if os.path.exists(os.path.expanduser(f)))

    def _host_key_mode(self, value: Any, name: str) -> str:
        """StrictHostKeyChecking as we honour it: strict, accept-new or off (only with the flag)."""
        v = str(value or "").lower()
        if v in ("no", "off"):
            if not self.options.insecure_no_host_key_check:
                raise ConnectionSettingError(
                    f"{name}: StrictHostKeyChecking={value} would skip the host key check: refused. "
                    "Record the key (--accept-new-host-keys) or run with --insecure-no-host-key-check")
            return "off"
        if self.options.insecure_no_host_key_check:
            return "off"
        if v == "accept-new" or self.options.accept_new_host_keys:
            return "accept-new"
        return "strict"  # yes, ask (we never prompt) or unset

    def _hops(self, spec: str, target: SSHTarget, seen: tuple[str, ...]) -> tuple[SSHTarget, ...]:
        """ProxyJump `[user@]host[:port],...` as resolved targets, outermost first; each hop is
        looked up in the ssh config too (its own ProxyJump included)."""
        hops: list[SSHTarget] = []
        for word in (w.strip() for w in spec.split(",") if w.strip()):
            user, _, rest = word.rpartition("@")
            host, port = rest, ""
            if rest.startswith("["):
                host, _, tail = rest[1:].partition("]")
                port = tail.lstrip(":")
            elif rest.count(":") == 1:
                host, _, port = rest.partition(":")
            if word in seen or len(seen) > _MAX_HOPS:
                raise ConnectionSettingError(f"{target.name}: ProxyJump loops through {word}")
            found = self._lookup([], host)
            own_keys = tuple(f for f in found.get("identityfile", [])
                             if os.path.exists(os.path.expanduser(f)))
            # the hop's own UserKnownHostsFile first (where a new key is recorded), then the target's
            own_known = tuple(Path(f).expanduser() for f in str(found.get("userknownhostsfile") or "").split())
            mode = found.get("stricthostkeychecking")
            hop = replace(
                target, name=word, hostname=str(found.get("hostname", host)),
                port=_int(port or found.get("port") or 22, "ProxyJump port", target.name),
                user=user or str(found.get("user") or target.user),
                # a hop without an IdentityFile of its own uses the target's keys (and the agent)
                key_files=own_keys or target.key_files,
                identities_only=_yes(found.get("identitiesonly")) if own_keys else target.identities_only,
                password=None, known_hosts=tuple(dict.fromkeys(own_known + target.known_hosts)),
                host_keys=self._host_key_mode(mode, word) if mode else target.host_keys,
                jumps=(), proxy_command=found.get("proxycommand") or None)
            inner = str(found.get("proxyjump") or "")
            before = self._hops(inner, hop, (*seen, word)) if inner and inner.lower() != "none" else ()
            hops += [*before, replace(hop, proxy_command=None) if before else hop]
        return tuple(hops)

    # -- shared jump-host connections ---------------------------------------------------------
    @staticmethod
    def _key(chain: tuple[SSHTarget, ...]) -> tuple[tuple[str, str, int], ...]:
        return tuple((h.user, h.hostname, h.port) for h in chain)

    def _jump(self, chain: tuple[SSHTarget, ...]) -> SSHConnection:
        """The open connection to the last hop of `chain` (opened once per run, by whichever host
        asks first; the others wait for it, so a bastion sees one connection)."""
        from provisioner.connection.ssh import SSHConnection

        key = self._key(chain)
        with self._lock:
            lock = self._jump_locks.setdefault(key, threading.Lock())
        with lock:
            conn = self._jumps.get(key)
            if conn is not None and conn.client is not None:
                transport = conn.client.get_transport()
                if transport is not None and transport.is_active():
                    return conn
            failed = self._jump_failed.get(key)
            if failed is not None and time.monotonic() - failed[0] < _JUMP_RETRY_S:
                raise failed[1]  # the hosts behind it that were waiting: the same answer, no new login
            hop = chain[-1]
            outer = chain[:-1]
            conn = SSHConnection(hop, via=(lambda t: self._channel_through(outer, t)) if outer else None)
            try:
                conn.open()
            except Unreachable as exc:
                error = Unreachable(f"jump host {hop.name}: {exc}")
                self._jump_failed[key] = (time.monotonic(), error)
                raise error from None
            with self._lock:
                self._jumps[key] = conn
            return conn

    def _channel_through(self, chain: tuple[SSHTarget, ...], target: SSHTarget) -> Any:
        """A direct-tcpip channel from the last hop of `chain` to the target: the target's socket."""
        from provisioner.connection.ssh import paramiko

        jump = self._jump(chain)
        try:
            return jump.transport().open_channel("direct-tcpip", (target.hostname, target.port),
                                                 ("127.0.0.1", 0), timeout=target.timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            why = self._jump_lost(chain) or f"{exc or type(exc).__name__}"
            raise Unreachable(f"cannot reach {target.where} through jump host {chain[-1].name}: {why}") from None

    def _jump_lost(self, chain: tuple[SSHTarget, ...]) -> str:
        """Why a connection through `chain` broke, when the jump host is what went away; else ""."""
        conn = self._jumps.get(self._key(chain))
        transport = conn.client.get_transport() if conn is not None and conn.client is not None else None
        if transport is None:
            return ""
        transport.join(0.5)  # paramiko closes the channels a moment before it marks the transport dead
        if transport.is_active():
            return ""
        return f"jump host {chain[-1].name} ({chain[-1].where}) is unreachable: its connection closed"


def _yes(value: Any) -> bool:
    return str(value or "").lower() in ("yes", "true", "on")


def _int(value: Any, what: str, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConnectionSettingError(f"{name}: {what} {value!r} is not a number") from None
