"""script (controller side): read a local script (the role's or playbook's files/) and have the
host's `script` module run it with the task's arguments, in the one request of the task."""

from __future__ import annotations

import base64
import shlex
from typing import TYPE_CHECKING, Any

from provisioner.errors import TaskFailed

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

WRAPS = "script"
FREE_FORM = "cmd"
ARGS = None


def run(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    args = dict(args)
    words = shlex.split(str(args.get("cmd") or ""))
    if not words:
        raise TaskFailed("script: give the local script's path (free form or cmd:), then its arguments")
    path = ctx.find_file("files", words[0])
    if path.is_dir():
        raise TaskFailed(f"script: {path} is a directory, not a script")
    args["content_b64"] = base64.b64encode(path.read_bytes()).decode()
    args["argv"] = words[1:]
    return ctx.run_module("script", args)
