"""Run a host-side module in-process, as the agent would on a host: validate, plan, apply; serve it files."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import CommandResult, Host
from provisioner.modules import host_modules, validate_args


def run_module(name: str, /, check: bool = False, diff: bool = False, facts: dict[str, Any] | None = None,
               **raw: Any) -> dict[str, Any]:
    spec = host_modules()[name]
    args = validate_args(spec, raw)
    return execute_module(spec.module, args, Host(facts=facts or {}, check_mode=check, diff_mode=diff))


class RecordingHost(Host):
    """A real host that also keeps the argv of every command run, to count transactions."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:  # type: ignore[override]
        self.calls.append(list(argv))
        return super().run(argv, **kw)


@contextmanager
def serve_directory(root: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 for the files in `root`: its base URL, and the paths asked of it so far."""
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a: Any) -> None:
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
