"""ping: prove the host answers (the agent replies)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ARGS(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = "pong"


def run(args: ARGS, ctx: Any) -> dict[str, Any]:
    assert ctx.hr.session is not None
    ctx.hr.session.call("hello")
    return {"changed": False, "ping": args.data}
