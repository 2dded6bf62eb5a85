"""The connection protocol: open the connection, start a program and talk to it over a stream.

Local and SSH implement the same small surface, so everything above works on both. Commands and
files go through the agent this starts (provisioner.connection.agent_client), never around it;
the one exception is `run_raw`, the `raw` module's command for a host without python.
"""

from __future__ import annotations

from typing import Protocol


class Unreachable(Exception):
    """The host could not be reached, or the connection broke: the host is `unreachable`."""


def lost(name: str, why: str = "", closer: str = "the remote side") -> Unreachable:
    """What every stream says when its connection broke: why, or who closed it."""
    return Unreachable(f"connection to {name} lost: {why}" if why else
                       f"connection to {name} lost ({closer} closed it)")


class Stream(Protocol):
    """A running program's stdin and stdout, as bytes."""

    def write(self, data: bytes) -> None: ...
    def readline(self) -> bytes: ...
    def close(self) -> None: ...


class Connection(Protocol):
    name: str

    def open(self) -> None: ...
    def start(self, argv: list[str]) -> Stream: ...
    def run_raw(self, command: str, stdin: bytes = b"", timeout: float | None = None,
                pty: bool = False) -> tuple[int, bytes, bytes]: ...
    def close(self) -> None: ...
