"""ping: prove the host answers (the agent replies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    data: str = "pong"


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    assert ctx.hr.session is not None
    ctx.hr.session.call("hello")
    return {"changed": False, "ping": args.data}
