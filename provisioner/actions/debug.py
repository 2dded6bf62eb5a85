"""debug: print a message or a variable's value (never changes anything)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    msg: Any = None
    var: str | None = None
    verbosity: int = 0


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    if args.var is not None:
        value = ctx.templar.render("{{ " + args.var + " }}", ctx.vars)
        return {"changed": False, args.var: value}
    return {"changed": False, "msg": "Hello world!" if args.msg is None else args.msg}
