"""wait_for_connection: retry connecting until the host answers (after a reboot elsewhere)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    timeout: float = 600
    delay: float = 0
    sleep: float = 1
    connect_timeout: float = 5


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    time.sleep(args.delay)
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < args.timeout:
        if ctx.hr.session is not None:
            try:
                ctx.hr.session.call("hello")
                return {"changed": False, "elapsed": round(time.monotonic() - t0, 1)}
            except Exception as exc:
                last = str(exc)
                ctx.hr.session = None
        result = ctx.connect()
        ctx.hr.unreachable = False
        last = result.msg or last
        time.sleep(args.sleep)
    return {"failed": True, "msg": f"timed out waiting for connection: {last}"}
