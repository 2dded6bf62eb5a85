"""Run a host-side module in-process, as the agent would on a host: validate, plan, apply."""

from __future__ import annotations

from collections.abc import Sequence
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
