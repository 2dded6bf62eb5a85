"""set_fact: define variables for this host for the rest of the run."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from provisioner.errors import UserError
from provisioner.template import mark_unsafe


class ARGS(BaseModel):
    model_config = ConfigDict(extra="allow")
    cacheable: bool = False


def check(task: Any, loader: Any) -> None:
    for key in task.args:
        if key == "_raw_params" or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(key)):
            raise UserError(f"set_fact: {key!r} is not a valid variable name", task.pos)


def run(args: ARGS, ctx: Any) -> dict[str, Any]:
    # the values are already rendered: whatever still looks like Jinja came from data (a host's
    # output, a file) and is never rendered again
    facts = mark_unsafe(dict(args.model_extra or {}))
    return {"changed": False, "ansible_facts": facts, "_set_facts": facts}
