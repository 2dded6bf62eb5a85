"""unarchive (controller side): ship a local archive to the host once, then unpack it there.

The archive lands in /var/tmp/provision-cache/<sha1>-<name> on the host, so a rerun
sends nothing when the same archive is already there.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

WRAPS = "unarchive"
ARGS = None
CACHE_DIR = "/var/tmp/provision-cache"
_HASHING = threading.Lock()  # the hosts of a step ask at once: one of them hashes, the others wait for it


def run(args: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    args = dict(args)
    if args.get("remote_src") or "://" in str(args.get("src", "")):
        return ctx.run_module("unarchive", args)
    path = ctx.find_file("files", str(args["src"]))
    remote = f"{CACHE_DIR}/{_sha1(path)}-{path.name}"
    if args.get("creates"):
        st = ctx.run_module("stat", {"path": args["creates"]})
        if st.get("stat", {}).get("exists"):
            return {"changed": False, "msg": f"skipped, since {args['creates']} exists"}
    st = ctx.run_module("stat", {"path": remote, "get_checksum": False})
    if not st.get("stat", {}).get("exists") and not ctx.check:
        ctx.run_module("file", {"path": CACHE_DIR, "state": "directory", "mode": "0700"})
        ctx.put(path.read_bytes(), remote, mode="0600")
    if ctx.check and not st.get("stat", {}).get("exists"):
        return {"changed": True, "msg": f"would copy {path.name} to the host and unpack it in {args.get('dest')}"}
    args["src"] = remote
    args["remote_src"] = True
    return ctx.run_module("unarchive", args)


def _sha1(path: Path) -> str:
    """The archive's sha1, read in chunks once per version of the file, not once per host: a host
    that already has it needs only the name, never the bytes."""
    st = path.stat()
    with _HASHING:
        return _sha1_of(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _sha1_of(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
