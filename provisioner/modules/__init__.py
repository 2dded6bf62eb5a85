"""The registry of host-side modules: each file here is one module, found by its name.

Module files run on the managed host (standard library only); the controller imports
them too, to check arguments against each module's `Args` class (`provisioner.validate`).
"""

from __future__ import annotations

import importlib
import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from provisioner.validate import ArgField, ArgsError, arg_fields, validate

PACKAGE_DIR = Path(__file__).parent
PREFIXES = ("ansible.builtin.", "ansible.legacy.", "ansible.posix.", "community.general.", "provision.")


@dataclass(frozen=True)
class ModuleSpec:
    """What the controller knows of a module: its code, argument type and aliases."""

    name: str
    module: ModuleType
    args_type: type
    aliases: dict[str, str]
    free_form: str | None

    @property
    def fields(self) -> dict[str, ArgField]:
        """The arguments by name: annotation (resolved), default, default_factory."""
        return _fields(self.args_type)


@cache
def _fields(args_type: type) -> dict[str, ArgField]:
    return {f.name: f for f in arg_fields(args_type)}


def canonical_name(name: str) -> str:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def name_index(directory: Path) -> dict[str, str]:
    """Task name -> file stem, from file names and each file's `NAME`/`OTHER_NAMES`, without importing.

    A run imports only the modules and actions its playbook uses (importing all costs ~0.1 s).
    """
    index: dict[str, str] = {}
    for path in sorted(directory.glob("*.py")):
        stem = path.stem
        if stem.startswith("_"):
            continue
        text = path.read_text(encoding="utf-8")
        m = re.search(r'^NAME\s*=\s*["\'](\w+)["\']', text, re.M)
        index[m.group(1) if m else stem] = stem
        m = re.search(r"^OTHER_NAMES\s*=\s*\(([^)]*)\)", text, re.M)
        for other in re.findall(r'["\'](\w+)["\']', m.group(1)) if m else ():
            index[other] = stem
    return index


@cache
def _module_index() -> dict[str, str]:
    return name_index(PACKAGE_DIR)


@cache
def _spec_for_stem(stem: str) -> ModuleSpec:
    mod = importlib.import_module(f"{__name__}.{stem}")
    return ModuleSpec(name=getattr(mod, "NAME", stem), module=mod, args_type=mod.Args,
                      aliases=dict(getattr(mod, "ALIASES", {})), free_form=getattr(mod, "FREE_FORM", None))


def host_module(name: str) -> ModuleSpec | None:
    """The host module a task name means (imported on first use), or None."""
    stem = _module_index().get(name)
    return _spec_for_stem(stem) if stem else None


def host_modules() -> dict[str, ModuleSpec]:
    """Every host module by every name it answers to (imports them all)."""
    return {name: _spec_for_stem(stem) for name, stem in _module_index().items()}


def normalize_args(spec: ModuleSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """Apply aliases and Ansible's comma-separated lists, before type validation."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = spec.aliases.get(key, key)
        if name == "_raw_params" and spec.free_form:
            name = spec.free_form
        out[name] = value
    for name, fld in spec.fields.items():
        if name in out and isinstance(out[name], str) and _is_list_type(fld.annotation):
            out[name] = [v.strip() for v in out[name].split(",") if v.strip()]
    return out


def _is_list_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, typing.List):
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_list_type(a) for a in typing.get_args(annotation))
    return False


def validate_args(spec: ModuleSpec, raw: dict[str, Any]) -> Any:
    """Return the module's Args instance, or raise ArgsError (the first error: `.loc`, `.msg`)."""
    return validate(spec.args_type, normalize_args(spec, raw))


__all__ = [
    "ArgsError",
    "ModuleSpec",
    "canonical_name",
    "host_module",
    "host_modules",
    "name_index",
    "normalize_args",
    "validate_args",
]
