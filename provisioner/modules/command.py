"""command: run a program with arguments, never through a shell.

`creates`/`removes` make it idempotent: the command is skipped when the path already
exists (or is already gone). Otherwise it always reports changed, as in Ansible.
"""

from __future__ import annotations

import os
import shlex
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, glob_paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

FREE_FORM = "cmd"
ALIASES = {"_uses_shell": "cmd"}


class Args(ModuleArgs):
    cmd: Optional[str] = None
    argv: Optional[List[str]] = None
    chdir: Optional[str] = None
    creates: Optional[str] = None
    removes: Optional[str] = None
    stdin: Optional[str] = None
    stdin_add_newline: bool = True
    strip_empty_ends: bool = True


def skip_reason(creates: Optional[str], removes: Optional[str], chdir: Optional[str]) -> Optional[str]:
    """Why the command need not run, from `creates`/`removes`; None when it must run."""
    def exists(pattern: str) -> bool:
        path = os.path.join(chdir, pattern) if chdir and not os.path.isabs(pattern) else pattern
        return bool(glob_paths(path))
    if creates and exists(creates):
        return "skipped, since %s exists" % creates
    if removes and not exists(removes):
        return "skipped, since %s does not exist" % removes
    return None


def plan(args: Args, host: Host) -> Change:
    if not args.cmd and not args.argv:
        raise ModuleError("command needs a command line (free form, cmd: or argv:)")
    if args.cmd and args.argv:
        raise ModuleError("give either cmd or argv, not both")
    argv = args.argv if args.argv else shlex.split(args.cmd or "")  # `cmd` in the result, as Ansible's
    reason = skip_reason(args.creates, args.removes, args.chdir)
    if reason:
        return Change(False, reason, data={"rc": 0, "stdout": "", "stderr": "", "cmd": argv})
    shown = args.cmd or " ".join(shlex.quote(a) for a in argv)
    return Change(True, "would run: %s" % shown if host.check_mode else "", data={"cmd": argv})


def run_and_report(host: Host, argv: Any, args: Any, shell: bool, executable: Optional[str] = None) -> Dict[str, Any]:
    stdin = args.stdin
    if stdin is not None and args.stdin_add_newline and not stdin.endswith("\n"):
        stdin += "\n"
    started = time.time()
    res = host.run(argv, stdin=stdin, cwd=args.chdir, shell=shell, executable=executable)
    ended = time.time()
    out, err = res.stdout, res.stderr
    if args.strip_empty_ends:
        out, err = out.rstrip("\r\n"), err.rstrip("\r\n")
    data: Dict[str, Any] = {"rc": res.rc, "stdout": out, "stderr": err,
                            "stdout_lines": out.splitlines(), "stderr_lines": err.splitlines(),
                            "start": _timestamp(started), "end": _timestamp(ended), "delta": _delta(ended - started)}
    if res.rc != 0:
        raise ModuleError("non-zero return code %d" % res.rc, **data)
    return data


def _timestamp(t: float) -> str:
    """As Ansible's command results show it: 2026-12-04 14:09:24.712958 (local time)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + ".%06d" % int((t % 1) * 1e6)


def _delta(seconds: float) -> str:
    micros = round(seconds * 1e6)
    return "%d:%02d:%02d.%06d" % (micros // 3600000000, micros // 60000000 % 60, micros // 1000000 % 60,
                                  micros % 1000000)


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    argv = args.argv if args.argv else shlex.split(args.cmd or "")
    return run_and_report(host, argv, args, shell=False)
