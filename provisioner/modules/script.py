"""script (host side): run the bytes of a controller's script on the host, from a private temp file
removed afterwards. The controller's `script` action reads the local file and sends it here.

Always changed when it runs; `creates`/`removes` make it idempotent (the task is then skipped), as
in Ansible. In check mode, as Ansible 2.19: changed when creates/removes say it would run, else
skipped (nothing could tell what the script would do).
Unlike Ansible's (which runs it on a terminal), stderr stays apart from stdout.
"""

from __future__ import annotations

import binascii
import os

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, _temp_file
from provisioner.modules.command import skip_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

FREE_FORM = "cmd"


class Args(ModuleArgs):
    cmd: Optional[str] = None          # "path/on/controller arg1 arg2" (the action splits it)
    chdir: Optional[str] = None
    creates: Optional[str] = None
    removes: Optional[str] = None
    executable: Optional[str] = None
    decrypt: bool = True               # accepted: provision has no vault-encrypted scripts to decrypt
    content_b64: Optional[str] = None  # set by the controller action: the script's bytes
    argv: List[str] = []               # set by the controller action: the script's arguments


def plan(args: Args, host: Host) -> Change:
    if args.content_b64 is None:
        raise ModuleError("script: no script content (the controller's script action sends it)")
    reason = skip_reason(args.creates, args.removes, args.chdir)
    if reason:
        return Change(False, reason, data={"skipped": True})  # Ansible: the task shows as skipped
    if host.check_mode and not (args.creates or args.removes):
        return Change(False, "check mode: the script is not run", data={"skipped": True})
    return Change(True)


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    directory = os.environ.get("TMPDIR") or "/tmp"
    fd, path = _temp_file(directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(binascii.a2b_base64(args.content_b64 or ""))
        os.chmod(path, 0o700)
        argv = ([args.executable] if args.executable else []) + [path] + list(args.argv)
        res = host.run(argv, cwd=args.chdir)
    finally:
        os.unlink(path)
    data: Dict[str, Any] = {"rc": res.rc, "stdout": res.stdout, "stderr": res.stderr,
                            "stdout_lines": res.stdout.splitlines(), "stderr_lines": res.stderr.splitlines()}
    if res.rc != 0:
        raise ModuleError("non-zero return code", **data)
    return data
