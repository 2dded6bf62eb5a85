"""copy (controller side): read `src` from the controller and ship its bytes to the host's `copy`."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

from provisioner.errors import TaskFailed

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

WRAPS = "copy"
ARGS = None


def run(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    args = dict(args)
    if args.get("src") and not args.get("remote_src"):
        path = ctx.find_file("files", str(args["src"]))
        if path.is_dir():
            raise TaskFailed(f"copy: {path} is a directory; copying directories is not supported, "
                                "use unarchive or a loop over files")
        dest = str(args.get("dest", ""))
        if dest.endswith("/"):
            args["dest"] = dest + os.path.basename(str(path))
        args["content_b64"] = base64.b64encode(path.read_bytes()).decode()
        args["src"] = str(path)  # with content_b64 the module only takes the file name from it
    elif "content" in args and not isinstance(args["content"], str):
        import json
        args["content"] = json.dumps(args["content"], indent=2)
    return ctx.run_module("copy", args)
