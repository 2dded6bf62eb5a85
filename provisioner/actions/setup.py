"""setup / gather_facts: gather this host's facts again (after a driver or toolkit install)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from provisioner.template import mark_unsafe

OTHER_NAMES = ("gather_facts",)


class ARGS(BaseModel):
    model_config = ConfigDict(extra="allow")


def run(args: ARGS, ctx: Any) -> dict[str, Any]:
    assert ctx.hr.session is not None
    reply = ctx.hr.session.call("facts")
    ctx.hr.facts = mark_unsafe(reply.get("facts", {}))  # what a host says is never templated
    return {"changed": False, "ansible_facts": ctx.hr.facts}
