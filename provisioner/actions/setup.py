"""setup / gather_facts: gather this host's facts again (after a driver or toolkit install)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.template import mark_unsafe
from provisioner.validate import EXTRAS

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

OTHER_NAMES = ("gather_facts",)


@dataclass
class ARGS:
    # whatever else is given is accepted, and ignored
    other: dict[str, Any] = field(default_factory=dict, metadata=EXTRAS)


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    assert ctx.hr.session is not None
    reply = ctx.hr.session.call("facts")
    ctx.hr.facts = mark_unsafe(reply.get("facts", {}))  # what a host says is never templated
    return {"changed": False, "ansible_facts": ctx.hr.facts}
