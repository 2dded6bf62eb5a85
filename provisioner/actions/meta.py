"""meta: flush_handlers, end_host, end_play, noop, clear_facts (handled by the run itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provisioner.errors import UserError

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

FREE_FORM = "_raw_params"
ARGS = None
KNOWN = {"flush_handlers", "end_host", "end_play", "noop", "clear_facts", "clear_host_errors",
         "refresh_inventory", "reset_connection", "end_batch"}


def check(task: Any, loader: Any) -> None:
    what = str(task.args.get("_raw_params", "")).strip()
    if what not in KNOWN:
        raise UserError(f"unknown meta action {what!r}: expected one of {', '.join(sorted(KNOWN))}", task.pos)


def run(args: Any, ctx: ActionContext) -> dict[str, Any]:
    return {"changed": False}
