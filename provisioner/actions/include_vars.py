"""include_vars: load variables from a YAML file (per-OS vars of a role, typically)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.errors import TaskFailed

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

FREE_FORM = "file"


@dataclass
class ARGS:
    file: str | None = None
    dir: str | None = None
    name: str | None = None
    files_matching: str | None = None
    ignore_unknown_extensions: bool = False


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    files: list[Path] = []
    if args.file:
        files.append(ctx.find_file("vars", args.file))
    elif args.dir:
        d = ctx.find_file("vars", args.dir)
        files.extend(sorted(p for p in d.iterdir() if p.suffix in (".yml", ".yaml", ".json")))
    else:
        raise TaskFailed("include_vars needs a file or dir")
    loaded: dict[str, Any] = {}
    secret = False
    for f in files:
        data = ctx.vars_file(f) or {}  # parsed once per run, for all hosts
        if not isinstance(data, dict):
            raise TaskFailed(f"{f}: a vars file must be a mapping")
        loaded.update(data)
        secret = secret or getattr(data, "holds_secret", False)
    facts = {args.name: loaded} if args.name else loaded
    # vaulted values loaded: the result (which carries them) is no_log
    return {"changed": False, "ansible_included_var_files": [str(f) for f in files], "_set_facts": facts,
            "ansible_facts": facts, "_secret": secret}
