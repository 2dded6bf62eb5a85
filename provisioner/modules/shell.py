"""shell: run a command line through /bin/sh (or `executable`), pipes and all.

Only the playbook's own text is shell syntax: templated values should go through the
`quote` filter, and the `command` module is the safe default for anything else.
"""

from __future__ import annotations

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules.command import run_and_report, skip_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

FREE_FORM = "cmd"


class Args(ModuleArgs):
    cmd: Optional[str] = None
    chdir: Optional[str] = None
    creates: Optional[str] = None
    removes: Optional[str] = None
    executable: Optional[str] = None
    stdin: Optional[str] = None
    stdin_add_newline: bool = True
    strip_empty_ends: bool = True


def plan(args: Args, host: Host) -> Change:
    if not args.cmd:
        raise ModuleError("shell needs a command line (free form or cmd:)")
    reason = skip_reason(args.creates, args.removes, args.chdir)
    if reason:
        return Change(False, reason, data={"rc": 0, "stdout": "", "stderr": "", "cmd": args.cmd})
    return Change(True, "would run: %s" % args.cmd if host.check_mode else "", data={"cmd": args.cmd})


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    return run_and_report(host, args.cmd or "", args, shell=True, executable=args.executable)
