"""raw: a command line run by the host's login shell over one SSH exec session, without the agent
or python: what bootstraps python3 on a host that has none (`gather_facts: false`, then
`raw: apt-get install -y python3`). Always changed when run; not run in check mode. Over SSH
it gets a terminal as in Ansible, so stderr is part of stdout.

A play with `gather_facts: false` and a raw task connects without starting the agent; the agent
(one exec session) starts at the first other task, so plays without raw keep their one session.
"""

from __future__ import annotations

import getpass
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provisioner.modules import canonical_name

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext
    from provisioner.load.playbook import Node, Play

FREE_FORM = "cmd"


@dataclass
class ARGS:
    cmd: str
    executable: str | None = None


def starts_without_python(play: Play) -> bool:
    """Whether hosts of this play may lack python until its raw tasks have run."""
    def has_raw(nodes: list[Node]) -> bool:
        for node in nodes:
            if hasattr(node, "block"):
                if has_raw(node.block) or has_raw(node.rescue) or has_raw(node.always):  # type: ignore[union-attr]
                    return True
            elif canonical_name(node.action) == "raw":  # type: ignore[union-attr]
                return True
        return False
    return not play.gather_facts and has_raw(play.pre_tasks + play.tasks + play.post_tasks)


def command_line(args: ARGS, become: dict[str, Any] | None, login_user: str) -> tuple[str, bytes]:
    """The exec request's command and its stdin (a sudo password), as Ansible would send them."""
    cmd = args.cmd
    if args.executable:
        cmd = f"{shlex.quote(args.executable)} -c {shlex.quote(cmd)}"
    if not become or become.get("user", "root") == login_user:
        return cmd, b""
    shell = args.executable or "/bin/sh"
    password = become.get("password")
    sudo = ["sudo", "-H", "-S", "-p", "", "-u", become.get("user", "root")] if password else \
        ["sudo", "-H", "-n", "-u", become.get("user", "root")]
    line = " ".join(shlex.quote(a) for a in [*sudo, "--", shell, "-c", args.cmd])
    return line, (password + "\n").encode() if password else b""


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    if ctx.check:
        return {"changed": False, "skipped": True, "msg": "raw is not run in check mode"}
    session = ctx.session or ctx.hr.session
    assert session is not None  # a task runs on a connected host
    login = getattr(session.connection, "user", None) or getpass.getuser()
    line, stdin = command_line(args, ctx.become, login)
    # A terminal, as Ansible's ssh -tt: stderr within stdout, lines ending in \r\n. Not when a sudo
    # password goes in on stdin: the terminal would echo it into the output.
    rc, out_b, err_b = session.run_raw(line, stdin, pty=not stdin)
    out, err = out_b.decode("utf-8", "replace"), err_b.decode("utf-8", "replace")
    result: dict[str, Any] = {"changed": True, "rc": rc, "stdout": out, "stderr": err,
                              "stdout_lines": out.splitlines(), "stderr_lines": err.splitlines()}
    if ctx.env:
        result["warnings"] = ["raw module does not support the environment keyword"]
    if rc != 0:
        result.update(failed=True, msg="non-zero return code")
    return result
