"""The connection protocol: run a command, open a stream to a program, put and get a file.

Local and SSH implement the same small surface, so everything above works on both.
"""

from __future__ import annotations

from typing import Protocol

from provisioner.host.runtime import CommandResult


class Unreachable(Exception):
    """The host could not be reached, or the connection broke: the host is `unreachable`."""


# A command's outcome: the same value the host runtime returns (rc, stdout, stderr, ok).
Result = CommandResult


class Stream(Protocol):
    """A running program's stdin and stdout, as bytes."""

    def write(self, data: bytes) -> None: ...
    def readline(self) -> bytes: ...
    def close(self) -> None: ...


class Connection(Protocol):
    name: str

    def open(self) -> None: ...
    def run(self, argv: list[str], stdin: bytes | None = None, timeout: float | None = None) -> Result: ...
    def start(self, argv: list[str]) -> Stream: ...
    def put(self, data: bytes, remote_path: str) -> None: ...
    def get(self, remote_path: str) -> bytes: ...
    def close(self) -> None: ...
