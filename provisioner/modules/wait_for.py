"""wait_for: wait, on the host, until a TCP port answers (or closes, or drains), a file appears (or
goes, or holds a regex), or a fixed time has passed; Ansible's messages on a timeout.

It never changes the host. Like Ansible's, it is skipped in check mode.
"""

from __future__ import annotations

import os
import re
import socket
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional

CHECK_MODE = False
ALIASES = {"regexp": "search_regex", "dest": "path"}
# /proc/net/tcp's state codes, as Ansible names them for active_connection_states.
_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
               "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
               "0B": "CLOSING"}


class Args(ModuleArgs):
    host: str = "127.0.0.1"
    port: Optional[int] = None
    path: Optional[str] = None
    search_regex: Optional[str] = None
    state: Literal["started", "stopped", "present", "absent", "drained"] = "started"
    delay: float = 0
    timeout: float = 300
    connect_timeout: float = 5
    sleep: float = 1
    msg: Optional[str] = None
    exclude_hosts: Optional[List[str]] = None
    active_connection_states: List[str] = ["ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "SYN_RECV", "SYN_SENT",
                                           "TIME_WAIT"]


def _port_open(args: Args) -> bool:
    try:
        with socket.create_connection((args.host, int(args.port or 0)), timeout=args.connect_timeout):
            return True
    except OSError:
        return False


def _port_search(args: Args, prog: Any, deadline: float) -> Optional[Any]:
    """Connect and read until the regex matches the data received; None if it never does."""
    try:
        with socket.create_connection((args.host, int(args.port or 0)), timeout=args.connect_timeout) as sock:
            data = b""
            while time.monotonic() < deadline:
                sock.settimeout(max(0.1, min(args.connect_timeout, deadline - time.monotonic())))
                try:
                    chunk = sock.recv(4096)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                data += chunk
                m = prog.search(data.decode("utf-8", "replace"))
                if m:
                    return m
            return None
    except OSError:
        return None


def _active_connections(args: Args) -> int:
    """Connections to or from `port` in an active state, from /proc/net/tcp{,6} (Linux)."""
    count = 0
    excluded = set(args.exclude_hosts or [])
    wanted = set(args.active_connection_states)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.rsplit(":", 1)[1], 16) != args.port or _TCP_STATES.get(state) not in wanted:
                continue
            if _ip_of(remote.rsplit(":", 1)[0]) in excluded:
                continue
            count += 1
    return count


def _ip_of(hexaddr: str) -> str:
    if len(hexaddr) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hexaddr)[::-1])
    raw = bytes.fromhex(hexaddr)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def _file_match(path: str, prog: Any) -> Optional[Any]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return prog.search(f.read())
    except OSError:
        return None


def _timeout_msg(args: Args) -> str:
    if args.msg:
        return args.msg
    where = "%s:%s" % (args.host, args.port)
    if args.state in ("stopped", "absent"):
        return "Timeout when waiting for %s to %s." % (args.path or where, "be absent" if args.path else "stop")
    if args.state == "drained":
        return "Timeout when waiting for %s to drain" % where
    if args.search_regex:
        return "Timeout when waiting for search string %s in %s" % (args.search_regex, args.path or where)
    return "Timeout when waiting for file %s" % args.path if args.path else "Timeout when waiting for %s" % where


def plan(args: Args, host: Host) -> Change:
    if args.port is not None and args.path:
        raise ModuleError("port and path parameter can not both be passed to wait_for")
    if args.path and args.state == "drained":
        raise ModuleError("state=drained should only be used for checking a port in the wait_for module")
    if args.exclude_hosts and args.state != "drained":
        raise ModuleError("exclude_hosts should only be with state=drained")
    start = time.monotonic()
    if args.delay:
        time.sleep(args.delay)
    deadline = start + args.delay + args.timeout
    prog = re.compile(args.search_regex, re.M) if args.search_regex else None
    path = os.path.expanduser(args.path) if args.path else None
    # Ansible reports a file waited for (present/started) as state "file"
    shown = "file" if path and args.state in ("present", "started") else args.state
    data: Dict[str, Any] = {"state": shown, "port": args.port, "path": path, "search_regex": args.search_regex}
    match = None
    if args.port is None and not path:
        time.sleep(args.timeout)
    else:
        while True:
            if path and args.state in ("stopped", "absent"):
                done = not os.path.exists(path)
            elif path:
                match = _file_match(path, prog) if prog else None
                done = os.path.exists(path) and (prog is None or match is not None)
            elif args.state == "stopped":
                done = not _port_open(args)
            elif args.state == "drained":
                done = _active_connections(args) == 0
            elif prog is not None:
                match = _port_search(args, prog, deadline)
                done = match is not None
            else:
                done = _port_open(args)
            if done:
                break
            if time.monotonic() >= deadline:
                data["elapsed"] = int(time.monotonic() - start)
                raise ModuleError(_timeout_msg(args), **data)
            time.sleep(min(args.sleep, max(0.0, deadline - time.monotonic())))
    data["elapsed"] = int(time.monotonic() - start)
    if match is not None:
        data["match_groups"] = list(match.groups())
        data["match_groupdict"] = match.groupdict()
    return Change(False, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    return {"changed": False}
