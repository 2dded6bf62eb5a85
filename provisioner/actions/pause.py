"""pause: wait a number of seconds (never prompts: runs are unattended)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    seconds: float = 0
    minutes: float = 0
    prompt: str | None = None
    echo: bool = True


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    total = args.seconds + 60 * args.minutes
    if not ctx.check:
        time.sleep(total)
    return {"changed": False, "delta": total}
