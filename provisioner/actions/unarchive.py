"""unarchive (controller side): ship a local archive to the host once, then unpack it there.

The archive lands in /var/tmp/provision-cache/<sha1>-<name> on the host, so a rerun
sends nothing when the same archive is already there.
"""

from __future__ import annotations

import hashlib
from typing import Any

WRAPS = "unarchive"
ARGS = None
CACHE_DIR = "/var/tmp/provision-cache"


def run(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    args = dict(args)
    if args.get("remote_src") or "://" in str(args.get("src", "")):
        return ctx.run_module("unarchive", args)
    path = ctx.find_file("files", str(args["src"]))
    data = path.read_bytes()
    remote = f"{CACHE_DIR}/{hashlib.sha1(data).hexdigest()}-{path.name}"
    if args.get("creates"):
        st = ctx.run_module("stat", {"path": args["creates"]})
        if st.get("stat", {}).get("exists"):
            return {"changed": False, "msg": f"skipped, since {args['creates']} exists"}
    st = ctx.run_module("stat", {"path": remote, "get_checksum": False})
    if not st.get("stat", {}).get("exists") and not ctx.check:
        ctx.run_module("file", {"path": CACHE_DIR, "state": "directory", "mode": "0700"})
        ctx.put(data, remote, mode="0600")
    if ctx.check and not st.get("stat", {}).get("exists"):
        return {"changed": True, "msg": f"would copy {path.name} to the host and unpack it in {args.get('dest')}"}
    args["src"] = remote
    args["remote_src"] = True
    return ctx.run_module("unarchive", args)
