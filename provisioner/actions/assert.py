"""assert: check conditions on this host's variables; fail with a message when one is false."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.validate import alias

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

NAME = "assert"


@dataclass
class ARGS:
    that: Any
    fail_msg: Any = field(default=None, metadata=alias("msg"))
    success_msg: Any = "All assertions passed"
    quiet: bool = False


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    conditions = args.that if isinstance(args.that, list) else [args.that]
    for cond in conditions:
        if not ctx.templar.condition(cond, ctx.vars):
            msg = args.fail_msg if args.fail_msg is not None else "Assertion failed"
            return {"failed": True, "changed": False, "msg": str(msg), "assertion": str(cond),
                    "evaluated_to": False}
    return {"changed": False, "msg": str(args.success_msg)}
