"""fail: stop this host with a message of the playbook's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    msg: Any = "Failed as requested from task"


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": str(args.msg)}
