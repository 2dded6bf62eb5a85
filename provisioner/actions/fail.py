"""fail: stop this host with a message of the playbook's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ARGS(BaseModel):
    model_config = ConfigDict(extra="forbid")
    msg: Any = "Failed as requested from task"


def run(args: ARGS, ctx: Any) -> dict[str, Any]:
    return {"failed": True, "changed": False, "msg": str(args.msg)}
