"""fetch: copy a file from the host to the controller, as Ansible lays it out: DEST/HOST/PATH (or
DEST itself with `flat`). Through the host's agent: a stat (sha1) first, the bytes only when the
local copy differs, so a second run transfers nothing. Skipped in check mode, as in Ansible 2.19.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.errors import TaskFailed

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    src: str
    dest: str
    flat: bool = False
    fail_on_missing: bool = True
    validate_checksum: bool = True


def local_dest(args: ARGS, ctx: ActionContext) -> Path:
    dest = os.path.expanduser(args.dest)
    if not os.path.isabs(dest):
        dest = str(ctx.playbook_dir / dest)  # Ansible: relative to the playbook
    if args.flat:
        return Path(dest + os.path.basename(args.src) if dest.endswith("/") else dest)
    return Path(os.path.normpath(os.path.join(dest, ctx.host_name, args.src.lstrip("/"))))


def _sha1(path: Path) -> str | None:
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _missing(msg: str, args: ARGS) -> dict[str, Any]:
    if args.fail_on_missing:
        return {"failed": True, "msg": msg, "file": args.src}
    return {"changed": False, "msg": msg + ", not transferring, ignored", "file": args.src}


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    if ctx.check:  # as ansible-core 2.19's fetch
        return {"changed": False, "skipped": True, "msg": "fetch is skipped in check mode"}
    dest = local_dest(args, ctx)
    st = ctx.run_module("stat", {"path": args.src, "follow": True, "get_mime": False, "get_attributes": False})
    if st.get("failed"):
        return _missing(st.get("msg", "unable to calculate the checksum of the remote file"), args)
    info = st.get("stat", {})
    if not info.get("exists"):
        return _missing("the remote file does not exist", args)
    if info.get("isdir"):
        return _missing("remote file is a directory, fetch cannot work on directories", args)
    if not info.get("readable", True):
        return _missing("no read permission on remote file", args)
    remote_sum = info.get("checksum")
    if dest.is_dir():
        raise TaskFailed(f"fetch: dest {dest} is an existing directory; use a trailing slash with flat: yes "
                            "or another dest")
    local_sum = _sha1(dest)
    if local_sum == remote_sum:
        md5 = hashlib.md5(dest.read_bytes(), usedforsecurity=False).hexdigest()
        return {"changed": False, "md5sum": md5, "file": args.src, "dest": str(dest), "checksum": local_sum}
    got = ctx.run_module("slurp", {"src": args.src})
    if got.get("failed"):
        return _missing(got.get("msg", "unable to read the remote file"), args)
    data = base64.b64decode(got["content"])
    new_sum = hashlib.sha1(data).hexdigest()
    if args.validate_checksum and new_sum != remote_sum:
        return {"failed": True, "msg": "checksum mismatch", "file": args.src, "dest": str(dest),
                "remote_checksum": remote_sum, "checksum": new_sum}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.provision-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return {"changed": True, "md5sum": hashlib.md5(data, usedforsecurity=False).hexdigest(), "dest": str(dest),
            "remote_md5sum": None, "checksum": new_sum, "remote_checksum": remote_sum}
