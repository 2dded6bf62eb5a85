"""The controller's side of the agent: start it over a connection, then ask and answer.

Starting costs one exec session. The boot line names the run's code bundle by its hash; the
boot marker and the first request (facts) travel in one write. A host that kept that bundle
from an earlier run answers the request: connected and known after one round trip, and the
bundle (~180 kB) is not sent. A host without it says so first (NEED_MARKER) and is sent it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from provisioner.connection.base import Connection, Stream, Unreachable
from provisioner.host.agent import BOOT_CODE, BOOT_MARKER, NEED_MARKER, PROGRESS_PREFIX
from provisioner.host.bundle import bundle_digest, bundle_line


class AgentError(Exception):
    """The agent answered with something that is not a reply (a bug or a broken host python)."""


class AgentSession:
    def __init__(self, connection: Connection, python: str = "python3",
                 on_progress: Callable[[dict[str, Any]], None] | None = None, persist: float = 0) -> None:
        self.connection = connection
        # > 0: the agent is asked through this user's persist daemon, which keeps it that many
        # seconds after the run for the next run (connection/persist.py); 0: the run connects itself
        self.persist = persist
        # progress lines a module sends while it runs (apt's percentage...), before its reply
        self.on_progress = on_progress
        self.python = python
        self.stream: Stream | None = None
        self._next_id = 0
        self._lock = threading.Lock()
        self.requests = 0
        # deferred: connected, but the agent starts with the first request (a play that begins with
        # `raw` on a host that may not have python yet); on_start then gets the facts reply.
        self.deferred = False
        self.on_start: Any = None
        self._start_lock = threading.Lock()

    def open_deferred(self, on_start: Any) -> None:
        """Connect now (no exec session), start the agent when first asked something."""
        self.connection.open()
        self.deferred, self.on_start = True, on_start

    def run_raw(self, command: str, stdin: bytes = b"", timeout: float | None = None,
                pty: bool = False) -> tuple[int, bytes, bytes]:
        """A command through the host's shell without the agent: the `raw` module."""
        return self.connection.run_raw(command, stdin, timeout, pty)

    def start(self, first: dict[str, Any]) -> dict[str, Any]:
        """Open the connection, start the agent and send it a first request: its reply."""
        # -I: the host's PYTHON* variables and user site-packages must not change the agent.
        # -S: no `site` (the agent needs only the standard library): ~3 ms less per host.
        argv = [self.python, "-I", "-S", "-c", BOOT_CODE, bundle_digest()]
        if self.persist > 0 and not self.deferred:
            reply = self._start_kept(argv, first)
            if reply is not None:
                return reply
        if not self.deferred:  # deferred: already open
            self.connection.open()
        self.stream = self.connection.start(argv)
        return self._exchange(first, prefix=BOOT_MARKER + b"\n")

    def _start_kept(self, argv: list[str], first: dict[str, Any]) -> dict[str, Any] | None:
        """Start through the persist daemon: a kept agent answers at once, else the daemon connects
        and the agent boots as over SSH. None: no daemon, or a host it does not serve (connect here)."""
        from provisioner.connection import persist
        target = getattr(self.connection, "target", None)
        if target is None:   # a local connection
            return None
        for fresh in (False, True):
            got = persist.attach(target, argv, self.persist, fresh=fresh)
            if got is None:
                self.stream = None
                return None
            self.stream, live = got
            if not live:
                return self._exchange(first, prefix=BOOT_MARKER + b"\n")
            try:
                return self._exchange(first)
            except Unreachable:
                # a kept agent that died since (its host rebooted, say): once more, on a new connection
                self.stream.close()
        return None

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        if self.deferred:
            with self._start_lock:
                if self.deferred:
                    reply = self.start({"op": "facts"})
                    self.deferred = False
                    if self.on_start is not None:
                        self.on_start(reply)
        return self._exchange({"op": op, **fields})

    def _exchange(self, request: dict[str, Any], prefix: bytes = b"") -> dict[str, Any]:
        with self._lock:
            if self.stream is None:
                raise Unreachable(f"{self.connection.name}: not connected")
            self._next_id += 1
            request = {**request, "id": self._next_id}
            try:
                self.stream.write(prefix + json.dumps(request, default=str).encode() + b"\n")
                line = self.stream.readline()
                if prefix and line.rstrip() == NEED_MARKER:  # the host has not kept this bundle
                    self.stream.write(bundle_line())
                    line = self.stream.readline()
                while line.startswith(PROGRESS_PREFIX):
                    self._progress(line)
                    line = self.stream.readline()
            except Unreachable as exc:
                if prefix and ("not found" in str(exc) or "No such file" in str(exc)):
                    raise Unreachable(f"{self.connection.name}: {self.python} not found on the host ({exc}); "
                                      "install it first, e.g. gather_facts: false + raw: apt-get install -y "
                                      "python3") from None
                raise
            self.requests += 1
        try:
            reply = json.loads(line.decode())
        except ValueError:
            text = line.decode(errors="replace").strip()
            if "not found" in text or "No such file" in text:
                raise Unreachable(f"{self.connection.name}: {self.python} not found on the host") from None
            raise AgentError(f"{self.connection.name}: agent said {text[:300]!r}") from None
        if reply.get("id") != request["id"]:
            raise AgentError(f"{self.connection.name}: reply out of order")
        reply.pop("id", None)
        return reply

    def _progress(self, line: bytes) -> None:
        if self.on_progress is None:
            return
        try:
            info = json.loads(line.decode()).get("_progress")
        except ValueError:
            return
        if isinstance(info, dict):
            try:
                self.on_progress(info)
            except Exception:  # the live view must never break a host's run
                pass

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self.connection.close()
