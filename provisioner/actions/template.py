"""template: render a Jinja2 file on the controller, then write it on the host like `copy`."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.errors import TaskFailed
from provisioner.validate import alias

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext


@dataclass
class ARGS:
    src: str
    dest: str
    mode: Any = None
    owner: str | None = None
    group: str | None = None
    backup: bool = False
    force: bool = True
    validate_cmd: str | None = field(default=None, metadata=alias("validate"))
    newline_sequence: str = "\n"
    trim_blocks: bool = True
    lstrip_blocks: bool = False
    output_encoding: str = "utf-8"


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    path = ctx.find_file("templates", args.src)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFailed(f"cannot read template {path}: {exc}") from None
    from provisioner.template import LazyVars, file_template, render_compiled
    layer = {"template_path": str(path), "template_fullpath": str(path.resolve()),
             "template_destpath": args.dest, "template_host": ctx.host_name,
             "ansible_managed": "Managed by provision: do not edit by hand"}
    variables = LazyVars([ctx.vars, layer], ctx.templar)
    try:
        text = render_compiled(file_template(source, args.trim_blocks, args.lstrip_blocks), variables)
    except TaskFailed as exc:
        raise TaskFailed(f"{args.src}: {exc}") from None
    except Exception as exc:
        import jinja2
        if isinstance(exc, jinja2.UndefinedError):
            raise TaskFailed(f"{args.src}: undefined variable: {exc.message}") from None
        if isinstance(exc, jinja2.TemplateSyntaxError):
            raise TaskFailed(f"{path}:{exc.lineno}: template syntax error: {exc.message}") from None
        raise TaskFailed(f"{args.src}: {type(exc).__name__}: {exc}") from None
    if args.newline_sequence != "\n":
        text = text.replace("\n", args.newline_sequence)
    copy_args: dict[str, Any] = {"dest": args.dest, "content_b64": base64.b64encode(
        text.encode(args.output_encoding)).decode(), "backup": args.backup, "force": args.force}
    for key in ("mode", "owner", "group"):
        if getattr(args, key) is not None:
            copy_args[key] = getattr(args, key)
    if args.validate_cmd is not None:
        copy_args["validate"] = args.validate_cmd
    return ctx.run_module("copy", copy_args)
