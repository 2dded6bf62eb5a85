"""set_fact: define variables for this host for the rest of the run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.errors import UserError
from provisioner.template import mark_unsafe
from provisioner.validate import EXTRAS

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    cacheable: bool = False
    # every other argument: a variable to set
    facts: dict[str, Any] = field(default_factory=dict, metadata=EXTRAS)


def check(task: Any, loader: Any) -> None:
    for key in task.args:
        if key == "_raw_params" or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(key)):
            raise UserError(f"set_fact: {key!r} is not a valid variable name", task.pos)


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    # the values are already rendered: whatever still looks like Jinja came from data (a host's
    # output, a file) and is never rendered again
    facts = mark_unsafe(dict(args.facts))
    return {"changed": False, "ansible_facts": facts, "_set_facts": facts}
