"""Every name a task may use: host modules (run on the host) and controller actions.

A controller action is a file here with `ARGS` (an argument dataclass that
`provisioner.validate` checks, or None to skip checking) and `run(args, ctx) -> dict`;
it may call host modules through `ctx`. Host modules come from `provisioner.modules`. An
action file with `WRAPS = "<module>"` takes that host module's arguments (e.g. `template`
and `copy` read a local file, then ship its content to the host's `copy`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.errors import Position, UserError, did_you_mean
from provisioner.modules import (
    ModuleSpec,
    _module_index,
    canonical_name,
    host_module,
    name_index,
    normalize_args,
)
from provisioner.template import is_template
from provisioner.validate import ArgsError, arg_fields, validate, validate_model

if TYPE_CHECKING:
    from provisioner.load.playbook import Loader, Task

INCLUDES = ("include_tasks", "import_tasks", "include_role", "import_role", "include")


@dataclass(frozen=True)
class ActionSpec:
    name: str
    free_form: str | None
    host_module: ModuleSpec | None = None      # set: the task runs this module on the host
    controller: Any = None                      # set: a controller action module (run(args, ctx))

    def check(self, task: Task, loader: Loader) -> None:
        """Check the literal (untemplated) arguments now, so mistakes stop the run before it starts."""
        if self.name in INCLUDES:
            return
        if self.host_module is not None:
            check_module_args(self.host_module, task.args, task.pos, self.name)
        if self.controller is not None:
            model = getattr(self.controller, "ARGS", None)
            if model is not None:
                check_model_args(model, task.args, task.pos, self.name,
                                 getattr(self.controller, "FREE_FORM", None))
            extra_check = getattr(self.controller, "check", None)
            if extra_check is not None:
                extra_check(task, loader)


@cache
def _action_index() -> dict[str, str]:
    return name_index(Path(__file__).parent)


@cache
def _action_module(stem: str) -> Any:
    return importlib.import_module(f"{__name__}.{stem}")


@cache
def lookup_action(name: str) -> ActionSpec | None:
    name = canonical_name(name)
    if name in INCLUDES:
        return ActionSpec(name, "file" if name != "include_role" and name != "import_role" else None)
    stem = _action_index().get(name)
    if stem is not None:
        ctl = _action_module(stem)
        wraps = getattr(ctl, "WRAPS", None)
        return ActionSpec(name, getattr(ctl, "FREE_FORM", None), host_module=host_module(wraps) if wraps else None,
                          controller=ctl)
    spec = host_module(name)
    if spec is not None:
        return ActionSpec(name, spec.free_form, host_module=spec)
    return None


def all_action_names() -> list[str]:
    """Every name a task may use (from the file indexes: nothing is imported)."""
    return sorted(set(_module_index()) | set(_action_index()) | set(INCLUDES))


def unknown_action_message(name: str) -> str:
    """Why a task's module name is refused, with the closest names provision knows."""
    import difflib

    short = canonical_name(name)
    close = difflib.get_close_matches(short, all_action_names(), n=4, cutoff=0.5)
    what = f"unknown module {name!r}"
    if not close:
        missing = f"no {short!r} module" if short != name else "no such module"
        return f"{what}: provision has {missing} (docs/COMPATIBILITY.md lists the modules it has)"
    msg = f"{what} (did you mean {close[0]!r}?)"
    if len(close) > 1:
        msg += "; other close names: " + ", ".join(close[1:])
    return msg


def check_module_args(spec: ModuleSpec, raw: dict[str, Any], pos: Position, name: str) -> None:
    args = normalize_args(spec, raw)  # a new dict: raw stays as written
    fields = spec.fields
    for key, value in args.items():
        if key not in fields:
            allowed = ", ".join(sorted(f for f in fields if not f.startswith("_")))
            raise UserError(f"module {name!r} has no argument {key!r}{did_you_mean(str(key), fields)}; "
                            f"expected one of: {allowed}", pos)
        if _contains_template(value):
            continue
        try:
            validate(fields[key].annotation, value)
        except ArgsError as exc:
            raise UserError(f"argument {key!r} of {name!r}: {exc.msg.lower()} (got {value!r})", pos) from None
    for fname, fld in fields.items():
        if fld.required and fname not in args:
            raise UserError(f"module {name!r} needs argument {fname!r}", pos)


def check_model_args(model: type, raw: dict[str, Any], pos: Position, name: str,
                     free_form: str | None) -> None:
    if free_form and "_raw_params" in raw:
        raw = {**{k: v for k, v in raw.items() if k != "_raw_params"}, free_form: raw["_raw_params"]}
    named = [f for f in arg_fields(model) if not f.extras]
    names = {f.name: f for f in named}
    for given in raw:
        if given not in names and not any(f.alias == given for f in named):
            if len(named) < len(arg_fields(model)):
                continue  # the model collects unnamed arguments
            allowed = ", ".join(sorted(names))
            raise UserError(f"module {name!r} has no argument {given!r}"
                            f"{did_you_mean(str(given), names)};"
                            f" expected one of: {allowed}", pos)
    literal = {k: v for k, v in raw.items() if not _contains_template(v)}
    try:
        validate_model(model, literal)
    except ArgsError as exc:
        for err in exc.errors:
            key: Any = err.loc[0] if err.loc else None
            if err.type == "missing" and key is not None and key in raw:
                continue  # given, but templated: checked at run time
            what = f"argument {key!r}" if key is not None else "arguments"
            raise UserError(f"{what} of {name!r}: {err.msg.lower()}", pos) from None


def _contains_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_contains_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_template(v) for v in value)
    return False
