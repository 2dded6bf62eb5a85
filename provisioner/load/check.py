"""Checks across files, before any host is contacted: host patterns and undefined variables.

A variable is "defined" when something could define it for some host: inventory,
play and role vars, vars files, extra vars, facts, `register`, `set_fact`,
`include_vars` files of the role, loop variables and Ansible's magic names. A name
that nothing defines is a typo, and the run stops here with its task's position.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from provisioner.errors import Position, TaskFailed, UserError, did_you_mean
from provisioner.executor.context import RunOptions
from provisioner.load.inventory import Inventory
from provisioner.load.playbook import MAGIC_VARS, Play, Playbook, Task, check_serial, iter_tasks
from provisioner.load.yamlsrc import YList, YMap, load_yaml_file, type_name, where
from provisioner.template import LazyVars, Templar, is_template, referenced_names
from provisioner.vault import VaultError

_SINGLE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


def check_playbook(playbook: Playbook, inventory: Inventory, options: RunOptions) -> None:
    if options.limit:
        inventory.select(options.limit, Position("--limit"))
    carried: set[str] = set()  # register/set_fact/include_vars live on into later plays
    for play in playbook.plays:
        play.hosts = _render_play_keyword(play, play.hosts, "hosts", options)
        play.serial = _render_play_keyword(play, play.serial, "serial", options)
        check_serial(play.serial, play.pos)
        inventory.select(play.hosts, play.pos)
        carried |= _check_play(play, inventory, options, carried)


def _render_play_keyword(play: Play, value: Any, key: str, options: RunOptions) -> Any:
    """`hosts:` and `serial:` may be templates over play vars and -e (`hosts: "{{ target | default('all') }}"`).

    Rendered once, here, before any host is contacted; the runner reads the result.
    """
    if not any(is_template(v) for v in (value if isinstance(value, list) else [value])):
        return value
    templar = Templar()
    try:
        return templar.render(value, LazyVars([play.vars, options.extra_vars], templar))
    except TaskFailed as exc:
        raise UserError(f"in `{key}`: {exc}", play.pos) from None


def _static_names(play: Play, inventory: Inventory, options: RunOptions) -> tuple[set[str], dict[str, Any]]:
    names: set[str] = set(MAGIC_VARS)
    values: dict[str, Any] = {}
    for group in inventory.groups.values():
        names |= set(group.vars) | set(group.dir_vars)
    for host in inventory.hosts.values():
        names |= set(host.vars)
    for layer in [play.vars, *(r.defaults for r in play.roles), *(r.vars for r in play.roles)]:
        names |= set(layer)
        values.update(layer)
    for role in play.roles:
        names |= set(role.params)
        vars_dir = role.path / "vars"
        if vars_dir.is_dir():
            for f in vars_dir.glob("*.y*ml"):
                data = load_yaml_file(f) or {}
                if isinstance(data, dict):
                    names |= set(data)
    for entry in play.vars_files:
        for cand in entry if isinstance(entry, list) else [entry]:
            path = play.base_dir / str(cand)
            if not is_template(str(cand)) and path.is_file():
                data = load_yaml_file(path) or {}
                if not isinstance(data, dict):
                    raise UserError(f"a vars file must be a mapping of variables, not {type_name(data)}",
                                    where(data) if isinstance(data, (YMap, YList)) else Position(str(path), 1, 1))
                names |= set(data)
                values.update(data)
            elif is_template(str(cand)):
                for f in path.parent.glob("*.y*ml") if path.parent.is_dir() else []:
                    data = load_yaml_file(f) or {}
                    if isinstance(data, dict):
                        names |= set(data)
    names |= set(options.extra_vars)
    values.update(options.extra_vars)
    return names, values


def _check_play(play: Play, inventory: Inventory, options: RunOptions, carried: set[str]) -> set[str]:
    names, values = _static_names(play, inventory, options)
    names |= carried
    tasks = iter_tasks(play.pre_tasks + play.tasks + play.post_tasks) + list(play.handlers)
    persistent: set[str] = set()
    for task in tasks:
        if task.register:
            persistent.add(task.register)
        if task.action == "set_fact":
            persistent |= {str(k) for k in task.args if k != "cacheable"}
        if task.action == "include_vars":
            persistent |= _include_vars_names(task)
            if task.args.get("name"):
                persistent.add(str(task.args["name"]))
        if task.action in ("include_tasks", "include_role", "import_tasks", "import_role"):
            names |= {str(k) for k in task.args}
        for layer in task.vars:
            names |= set(layer)
        if task.loop_control.get("loop_var"):
            names.add(str(task.loop_control["loop_var"]))
        if task.loop_control.get("index_var"):
            names.add(str(task.loop_control["index_var"]))
        if task.role is not None:  # include_role's roles too, not only the play's `roles:`
            names |= set(task.role.params) | set(task.role.defaults) | set(task.role.vars)
    names |= persistent
    handlers = _handler_names(play)
    for task in tasks:
        _check_task(task, names, values)
        for notified in task.notify:
            if not is_template(notified) and notified not in handlers:
                raise UserError(f"task {task.display_name!r} notifies {notified!r}, but no handler of the play "
                                f"has that name or listens to it{did_you_mean(notified, handlers)}", task.pos)
    return persistent


def _handler_names(play: Play) -> set[str]:
    out: set[str] = set()
    for handler in play.handlers:
        out |= set(handler.listen)
        if handler.name:
            out.add(handler.name)
            if handler.role is not None:
                out.add(f"{handler.role.name} : {handler.name}")
    return out


def _include_vars_names(task: Task) -> set[str]:
    out: set[str] = set()
    named = Path(str(task.args.get("file") or task.args.get("_raw_params") or "")).name
    dirs = []
    if task.role is not None:
        dirs.append(task.role.path / "vars")
    dirs.append(task.base_dir / "vars")
    dirs.append(task.base_dir)
    target = task.args.get("file") or task.args.get("_raw_params") or task.args.get("dir")
    if isinstance(target, str):
        # the directory part of the file named (include_vars: "vars/{{ item }}.yml" in a loop)
        sub = target if task.args.get("dir") else str(Path(target).parent)
        if sub not in ("", ".") and not is_template(sub):
            dirs += [d / sub for d in list(dirs)] if not Path(sub).is_absolute() else [Path(sub)]
    for d in dirs:
        if d.is_dir():
            for f in d.glob("*.y*ml"):
                try:
                    data = load_yaml_file(f) or {}
                except VaultError:
                    if f.name == named:  # the file this task loads: say so before any host is touched
                        raise
                    continue
                except UserError:
                    continue
                if isinstance(data, dict):
                    out |= set(data)
    return out


def _check_task(task: Task, names: set[str], values: dict[str, Any]) -> None:
    local = {"item", str(task.loop_control.get("loop_var", "item"))}
    if task.register:
        local.add(task.register)
    for text, expression in _template_texts(task):
        try:
            used = referenced_names(text, expression=expression)
        except TaskFailed as exc:
            raise UserError(f"in task {task.display_name!r}: {exc}", task.pos) from None
        for name in sorted(used - names - local):
            if name.startswith("ansible_"):
                continue  # facts and connection variables: only known on the host
            hint = did_you_mean(name, names - MAGIC_VARS)
            raise UserError(f"undefined variable {name!r} in task {task.display_name!r}{hint}: nothing "
                            "(inventory, vars, defaults, register, set_fact, -e) defines it", task.pos)
    if task.loop is not None and isinstance(task.loop, str):
        m = _SINGLE.match(task.loop)
        if m and m.group(1) in values:
            value = values[m.group(1)]
            if not is_template(value) and not isinstance(value, list) and task.loop_kind in (
                    "loop", "with_list", "with_items") and not (task.loop_kind == "with_items" and
                                                                 isinstance(value, str)):
                raise UserError(f"`{task.loop_kind}` needs a list, but {m.group(1)!r} is "
                                f"{type(value).__name__} {value!r}", task.pos)


def _template_texts(task: Task) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if is_template(value):
                out.append((value, False))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    args = task.args
    if task.action in ("debug",) and "var" in args and isinstance(args["var"], str):
        out.append((args["var"], True))
    if task.action == "assert":
        that = args.get("that")
        for cond in that if isinstance(that, list) else [that]:
            if isinstance(cond, str) and not is_template(cond):
                out.append((cond, True))
    walk(args)
    walk(task.loop)
    walk(list(task.environment))
    for group in (task.when, task.changed_when, task.failed_when, (task.until,) if task.until else ()):
        for cond in group:
            if isinstance(cond, str):
                out.append((cond, not is_template(cond)))  # a bare expression, or a {{ }} template
    return out


__all__ = ["Path", "check_playbook"]
