"""reboot: restart the host and wait until it answers again with a new boot id."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provisioner.connection.base import Unreachable

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    reboot_timeout: float = 600
    connect_timeout: float | None = None
    pre_reboot_delay: float = 0
    post_reboot_delay: float = 0
    test_command: str = "whoami"
    msg: str = "Reboot initiated by provision"
    reboot_command: str | None = None
    boot_time_command: str = "cat /proc/sys/kernel/random/boot_id"


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    if ctx.check:
        return {"changed": True, "rebooted": False, "msg": "would reboot"}
    before = ctx.run_module("command", {"cmd": args.boot_time_command}).get("stdout", "").strip()
    command = args.reboot_command or f"shutdown -r +{int(args.pre_reboot_delay // 60)} '{args.msg}'"
    # detach, so the reply gets back before the connection drops
    ctx.run_module("shell", {"cmd": f"(sleep 1; {command} || systemctl reboot || reboot) >/dev/null 2>&1 &"})
    t0 = time.monotonic()
    if ctx.hr.session is not None:
        ctx.hr.session.close()
        ctx.hr.session = None
    time.sleep(2)
    last = ""
    while time.monotonic() - t0 < args.reboot_timeout:
        result = ctx.connect()
        ctx.hr.unreachable = False
        if result.status == "ok":
            try:
                now = ctx.run_module("command", {"cmd": args.boot_time_command}).get("stdout", "").strip()
            except Unreachable as exc:
                last = str(exc)
                now = before
            if now and now != before:
                ctx.run_module("command", {"cmd": args.test_command})
                time.sleep(args.post_reboot_delay)
                return {"changed": True, "rebooted": True, "elapsed": round(time.monotonic() - t0, 1)}
            if ctx.hr.session is not None:
                ctx.hr.session.close()
                ctx.hr.session = None
        else:
            last = result.msg
        time.sleep(2)
    return {"failed": True, "changed": True, "rebooted": False,
            "msg": f"host did not come back within {args.reboot_timeout:g}s ({last})"}
