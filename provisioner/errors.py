"""The one exception type for mistakes in what the user wrote (it names file, line and column), and the
one for a task that fails on a host."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Position:
    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}" if self.column else f"{self.file}:{self.line}"


class UserError(Exception):
    """Bad input (playbook, role, inventory, vars, command line): printed as one line, exit code 2."""

    def __init__(self, message: str, pos: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}" if self.pos else self.message


class TaskFailed(Exception):
    """A task cannot be done on this host: a template or lookup failed (undefined variable, bad filter), a
    local file is missing, a value has the wrong shape... That task fails on that host (ignore_errors may
    ignore it) and the run goes on. Not a UserError (the run stops before it starts) nor a bug."""


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """The hint an error message ends with: " (did you mean 'x'?)" for the closest option, or ""."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
