"""ping: prove the host answers (the agent replies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ARGS:
    data: str = "pong"


def run(args: ARGS, ctx: Any) -> dict[str, Any]:
    assert ctx.hr.session is not None
    ctx.hr.session.call("hello")
    return {"changed": False, "ping": args.data}
