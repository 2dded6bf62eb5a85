"""Playbooks, tasks, blocks and roles: Ansible's YAML read into plain, checked objects.

Everything a run needs is read and checked here, before any host is contacted:
unknown keywords and modules, mistyped arguments, missing roles and files, loops over
non-lists and variables that nothing defines are each one `UserError` with a position.
Block and role keywords (when, tags, become, vars, environment...) are pushed down to
the tasks they apply to, so the executor sees flat, self-contained tasks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provisioner.errors import Position, UserError, did_you_mean
from provisioner.load.yamlsrc import YList, YMap, load_yaml_file, type_name, where
from provisioner.shipped import shipped_roles

PLAY_KEYS = {
    "name", "hosts", "vars", "vars_files", "roles", "pre_tasks", "tasks", "post_tasks", "handlers",
    "become", "become_user", "become_method", "gather_facts", "serial", "any_errors_fatal",
    "max_fail_percentage", "tags", "environment", "strategy", "connection", "remote_user", "check_mode",
    "ignore_errors", "force_handlers", "order", "no_log", "diff", "ignore_unreachable", "collections",
    "module_defaults", "vars_prompt", "run_once", "timeout",
}
LOOP_KEYWORDS = ("with_items", "with_list", "with_dict", "with_fileglob", "with_sequence", "with_nested",
                 "with_together", "with_subelements", "with_indexed_items", "with_lines", "with_file",
                 "with_first_found", "with_template")
TASK_KEYS = {
    "name", "when", "loop", *LOOP_KEYWORDS,
    "loop_control", "register", "notify", "tags", "become", "become_user", "become_method", "changed_when",
    "failed_when", "ignore_errors", "retries", "until", "delay", "no_log", "check_mode", "diff", "environment",
    "vars", "args", "delegate_to", "run_once", "ignore_unreachable", "listen", "any_errors_fatal",
    "timeout", "collections", "debugger", "throttle", "local_action", "action",
}
BLOCK_KEYS = {"block", "rescue", "always", "name", "when", "tags", "become", "become_user", "become_method",
              "ignore_errors", "no_log", "environment", "vars", "any_errors_fatal", "check_mode", "diff",
              "delegate_to", "run_once", "ignore_unreachable", "collections", "module_defaults", "timeout",
              "notify", "debugger", "throttle"}
INCLUDE_ACTIONS = {"include_tasks", "import_tasks", "include_role", "import_role", "include"}
MAGIC_VARS = {
    "inventory_hostname", "inventory_hostname_short", "hostvars", "groups", "group_names", "play_hosts",
    "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_batch", "ansible_check_mode",
    "ansible_diff_mode", "ansible_facts", "role_path", "role_name", "playbook_dir", "inventory_dir",
    "inventory_file", "omit", "item", "ansible_loop", "ansible_loop_var", "ansible_index_var", "ansible_version",
    "ansible_run_tags", "ansible_skip_tags", "ansible_limit", "ansible_forks", "ansible_verbosity",
    "ansible_config_file", "ansible_parent_role_names", "ansible_role_names", "ansible_play_role_names",
    "ansible_play_name", "ansible_search_path", "environment", "ansible_env", "lookup", "query", "q",
    "range", "dict", "lipsum", "cycler", "joiner", "namespace", "True", "False", "None", "true", "false",
    "none", "provision_facts", "ansible_local", "provision_data_dir",
}


@dataclass
class RoleInstance:
    """One role as used in a play: its files, defaults, vars and the params it was given."""

    name: str
    path: Path
    defaults: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    parent_names: tuple[str, ...] = ()


@dataclass
class Task:
    """A task with every inherited keyword already applied."""

    action: str
    args: dict[str, Any]
    pos: Position
    name: str | None = None
    when: tuple[Any, ...] = ()
    loop: Any = None
    loop_kind: str | None = None
    loop_control: dict[str, Any] = field(default_factory=dict)
    register: str | None = None
    notify: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()
    become: Any = None
    become_user: Any = None
    changed_when: tuple[Any, ...] = ()
    failed_when: tuple[Any, ...] = ()
    ignore_errors: Any = False
    ignore_unreachable: bool = False
    retries: Any = None
    until: Any = None
    delay: Any = 5
    no_log: Any = False
    check_mode: Any = None
    diff: Any = None
    environment: tuple[dict[str, Any], ...] = ()
    vars: tuple[dict[str, Any], ...] = ()
    delegate_to: Any = None
    run_once: bool = False
    any_errors_fatal: bool | None = None
    role: RoleInstance | None = None
    base_dir: Path = field(default_factory=Path)
    included: Any = None  # for a dynamic include_tasks with a fixed file: its loaded nodes

    @property
    def display_name(self) -> str:
        base = self.name or self.action
        return f"{self.role.name} : {base}" if self.role else base


@dataclass
class Block:
    block: list[Node]
    rescue: list[Node]
    always: list[Node]
    pos: Position
    name: str | None = None


Node = Task | Block


@dataclass
class Play:
    name: str
    hosts: Any
    pos: Position
    vars: dict[str, Any] = field(default_factory=dict)
    vars_files: list[Any] = field(default_factory=list)
    pre_tasks: list[Node] = field(default_factory=list)
    tasks: list[Node] = field(default_factory=list)  # roles' tasks first, then the play's tasks
    post_tasks: list[Node] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    roles: list[RoleInstance] = field(default_factory=list)
    gather_facts: bool = True
    serial: Any = None
    any_errors_fatal: bool = False
    max_fail_percentage: float | None = None
    force_handlers: bool = False
    base_dir: Path = field(default_factory=Path)
    strategy: str = "linear"
    tags: frozenset[str] = frozenset()  # the play's own; its tasks have them too


@dataclass
class Playbook:
    path: Path
    plays: list[Play]


@dataclass
class Inherited:
    """Keywords a block, role or import passes down to the tasks inside it."""

    when: tuple[Any, ...] = ()
    tags: frozenset[str] = frozenset()
    become: Any = None
    become_user: Any = None
    ignore_errors: Any = None
    no_log: Any = None
    environment: tuple[dict[str, Any], ...] = ()
    vars: tuple[dict[str, Any], ...] = ()
    check_mode: Any = None
    diff: Any = None
    delegate_to: Any = None
    run_once: bool | None = None
    any_errors_fatal: bool | None = None
    ignore_unreachable: bool | None = None
    role: RoleInstance | None = None
    base_dir: Path = field(default_factory=Path)
    notify: tuple[str, ...] = ()


class Loader:
    """Reads one playbook (with its roles and imported files) and checks it."""

    def __init__(self, playbook_path: Path, roles_path: list[Path] | None = None) -> None:
        self.playbook_path = playbook_path
        self.roles_path = roles_path or default_roles_path(playbook_path.parent)
        self.handlers: list[Task] = []
        self.roles_run: set[tuple[Path, str]] = set()

    # -- playbook --------------------------------------------------------------------------
    def load(self) -> Playbook:
        return Playbook(self.playbook_path, self._load_plays(self.playbook_path, set()))

    def _load_plays(self, path: Path, seen: set[Path]) -> list[Play]:
        if path.resolve() in seen:
            raise UserError("playbook imports itself", Position(str(path)))
        seen = seen | {path.resolve()}
        data = load_yaml_file(path)
        if not isinstance(data, list):
            pos = where(data) if isinstance(data, (YMap, YList)) else Position(str(path), 1, 1)
            raise UserError(f"a playbook must be a list of plays (`- hosts: ...`), not {type_name(data)}", pos)
        plays: list[Play] = []
        for i, raw in enumerate(data):
            if not isinstance(raw, YMap):
                raise UserError(f"each play must be a mapping with `hosts:`, not {type_name(raw)}", where(data, i))
            if "import_playbook" in raw or "ansible.builtin.import_playbook" in raw:
                key = "import_playbook" if "import_playbook" in raw else "ansible.builtin.import_playbook"
                target = path.parent / str(raw[key])
                if not target.exists():
                    raise UserError(f"imported playbook not found: {target}", where(raw, key))
                plays.extend(self._load_plays(target, seen))
                continue
            plays.append(self._load_play(raw, path))
        return plays

    def _load_play(self, raw: YMap, path: Path) -> Play:
        for key in raw:
            if key not in PLAY_KEYS:
                hint = did_you_mean(str(key), PLAY_KEYS)
                msg = f"unknown play keyword {key!r}{hint}"
                if key in TASK_KEYS or _looks_like_module(str(key)):
                    msg += " (tasks go under `tasks:`)"
                raise UserError(msg, raw.where(key))
        if "hosts" not in raw or raw["hosts"] in (None, ""):
            raise UserError("a play needs `hosts:` (a host pattern such as `all` or a group name)", raw.where())
        hosts = raw["hosts"]
        if not isinstance(hosts, (str, list)):
            raise UserError(f"`hosts` must be a pattern string or list, not {type_name(hosts)}", raw.where("hosts"))
        self.handlers = []
        self.roles_run = set()  # a role of `roles:` or a dependency runs once per play (same params)
        base = Inherited(
            tags=frozenset(_as_list(raw.get("tags"), raw, "tags")),
            become=raw.get("become"), become_user=raw.get("become_user"),
            environment=(_mapping(raw, "environment"),) if raw.get("environment") else (),
            ignore_errors=raw.get("ignore_errors"), no_log=raw.get("no_log"), check_mode=raw.get("check_mode"),
            diff=raw.get("diff"), ignore_unreachable=raw.get("ignore_unreachable"), base_dir=path.parent,
            any_errors_fatal=raw.get("any_errors_fatal"),
        )
        play = Play(name=str(raw.get("name") or hosts), hosts=hosts, pos=raw.where(), base_dir=path.parent,
                    tags=base.tags)
        play.vars = dict(_mapping(raw, "vars"))
        vf = raw.get("vars_files") or []
        if not isinstance(vf, (str, list)):
            raise UserError(f"`vars_files` must be a file name or a list of them, not {type_name(vf)}",
                            raw.where("vars_files"))
        play.vars_files = list(vf) if isinstance(vf, list) else [vf]
        for i, f in enumerate(play.vars_files):
            if isinstance(f, str) and "{{" not in f and not (path.parent / f).exists():
                raise UserError(f"vars file not found: {f}", where(vf, i) if isinstance(vf, list) else raw.where("vars_files"))
        play.gather_facts = _bool(raw.get("gather_facts", True), raw, "gather_facts")
        play.serial = raw.get("serial")
        check_serial(play.serial, raw.where("serial"))
        play.any_errors_fatal = _bool(raw.get("any_errors_fatal", False), raw, "any_errors_fatal")
        play.force_handlers = _bool(raw.get("force_handlers", False), raw, "force_handlers")
        play.strategy = str(raw.get("strategy", "linear"))
        if play.strategy not in ("linear", "free"):
            raise UserError(f"unknown strategy {play.strategy!r}: expected linear or free", raw.where("strategy"))
        if raw.get("max_fail_percentage") is not None:
            try:
                play.max_fail_percentage = float(str(raw["max_fail_percentage"]).rstrip("%"))
            except ValueError:
                raise UserError("`max_fail_percentage` must be a number", raw.where("max_fail_percentage")) from None
        play.pre_tasks = self._task_list(raw, "pre_tasks", base)
        for i, entry in enumerate(_list(raw, "roles")):
            play.tasks.extend(self._role_entry(entry, where(raw["roles"], i), base, play))
        play.tasks.extend(self._task_list(raw, "tasks", base))
        play.post_tasks = self._task_list(raw, "post_tasks", base)
        play_handlers = self._task_list(raw, "handlers", base)
        play.handlers = [*self.handlers, *iter_tasks(play_handlers, includes=False)]
        return play

    # -- roles -----------------------------------------------------------------------------
    def _role_entry(self, entry: Any, pos: Position, inherited: Inherited, play: Play | None,
                    parents: tuple[str, ...] = (), dependency: bool = False) -> list[Node]:
        if isinstance(entry, str):
            name, spec = entry, YMap()
        elif isinstance(entry, YMap):
            name = str(entry.get("role") or entry.get("name") or "")
            spec = entry
            if not name:
                raise UserError("a role entry needs `role: NAME`", pos)
        else:
            raise UserError(f"a role entry must be a name or a mapping with `role:`, not {type_name(entry)}", pos)
        keywords = {"role", "name", "when", "tags", "become", "become_user", "vars", "environment",
                    "ignore_errors", "no_log", "delegate_to", "check_mode", "any_errors_fatal", "collections"}
        params = {k: v for k, v in spec.items() if k not in keywords}
        if isinstance(spec.get("vars"), dict):
            params.update(spec["vars"])
        # As Ansible: a role (of `roles:` or a dependency) with the same params runs once per play,
        # unless its meta says allow_duplicates; an include_role/import_role always runs.
        key = (self.find_role(str(name), pos, inherited.base_dir if inherited.role else None).resolve(),
               repr(sorted(params.items(), key=lambda kv: str(kv[0]))))
        if key in self.roles_run and not _allow_duplicates(key[0]):
            return []
        self.roles_run.add(key)
        return self.load_role(str(name), pos, self._inherit(inherited, spec), params, play, parents)

    def find_role(self, name: str, pos: Position, base_dir: Path | None = None) -> Path:
        candidates = ([base_dir / "roles"] if base_dir else []) + self.roles_path
        short = name.split(".")[-1] if name.count(".") >= 2 else name
        for d in candidates:
            for n in (name, short):
                if (d / n).is_dir():
                    return d / n
        searched = ", ".join(str(c) for c in candidates)
        raise UserError(f"role {name!r} not found (searched {searched})", pos)

    def load_role(self, name: str, pos: Position, inherited: Inherited, params: dict[str, Any],
                  play: Play | None, parents: tuple[str, ...] = (), tasks_from: str = "main",
                  vars_from: str = "main", defaults_from: str = "main", handlers_from: str = "main") -> list[Node]:
        if name in parents:
            raise UserError(f"role {name!r} depends on itself ({' -> '.join(parents + (name,))})", pos)
        path = self.find_role(name, pos, inherited.base_dir if inherited.role else None)
        role = RoleInstance(name=path.name, path=path.resolve(), params=params, parent_names=parents)
        role.defaults = _vars_file(path / "defaults", defaults_from)
        role.vars = _vars_file(path / "vars", vars_from)
        if play is not None:
            play.roles.append(role)
        nodes: list[Node] = []
        meta_file = _first_yaml(path / "meta", "main")
        if meta_file:
            meta = load_yaml_file(meta_file) or YMap()
            if not isinstance(meta, dict):
                raise UserError(f"a role's meta/main.yml must be a mapping, not {type_name(meta)}",
                                Position(str(meta_file), 1, 1))
            deps = meta.get("dependencies") or []
            if not isinstance(deps, list):
                raise UserError(f"`dependencies` must be a list of roles, not {type_name(deps)}",
                                where(meta, "dependencies"))
            for i, dep in enumerate(deps):
                dep_nodes = self._role_entry(dep, where(deps, i), replace(inherited, role=None), play,
                                             parents + (role.name,), dependency=True)
                nodes.extend(dep_nodes)
        scoped = replace(inherited, role=role, base_dir=path / "tasks")
        tasks_file = _first_yaml(path / "tasks", tasks_from)
        if tasks_file is None and tasks_from != "main":
            raise UserError(f"role {name!r} has no tasks/{tasks_from}.yml", pos)
        if tasks_file is not None:
            nodes.extend(self._task_file(tasks_file, scoped))
        handlers_file = _first_yaml(path / "handlers", handlers_from)
        if handlers_file is not None:
            handlers = self._task_file(handlers_file, scoped)
            self.handlers.extend(iter_tasks(handlers, includes=False))
        return nodes

    # -- tasks -----------------------------------------------------------------------------
    def _task_list(self, raw: YMap, key: str, inherited: Inherited) -> list[Node]:
        items = raw.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            raise UserError(f"`{key}` must be a list of tasks, not {type_name(items)}", raw.where(key))
        return [self._node(item, items, i, inherited) for i, item in enumerate(items)]

    def _task_file(self, path: Path, inherited: Inherited) -> list[Node]:
        data = load_yaml_file(path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise UserError(f"a tasks file must be a list of tasks, not {type_name(data)}",
                            where(data) if isinstance(data, (YMap, YList)) else Position(str(path), 1, 1))
        inherited = replace(inherited, base_dir=path.parent)
        return [self._node(item, data, i, inherited) for i, item in enumerate(data)]

    def _node(self, raw: Any, container: Any, index: int, inherited: Inherited) -> Node:
        pos = where(container, index)
        if not isinstance(raw, YMap):
            raise UserError(f"a task must be a mapping (`- name: ...` with a module), not {type_name(raw)}", pos)
        if "block" in raw:
            for key in raw:
                if key not in BLOCK_KEYS:
                    raise UserError(f"unknown block keyword {key!r}{did_you_mean(str(key), BLOCK_KEYS)}",
                                    raw.where(key))
            inner = self._inherit(inherited, raw)
            out = Block(block=self._task_list(raw, "block", inner), rescue=self._task_list(raw, "rescue", inner),
                        always=self._task_list(raw, "always", inner), pos=raw.where(), name=raw.get("name"))
            return out
        return self._task(raw, inherited)

    def _inherit(self, inherited: Inherited, raw: YMap) -> Inherited:
        out = inherited
        if "when" in raw:
            out = replace(out, when=out.when + tuple(_conditions(raw, "when")))
        if "tags" in raw:
            out = replace(out, tags=out.tags | frozenset(_as_list(raw.get("tags"), raw, "tags")))
        if "vars" in raw:
            out = replace(out, vars=out.vars + (_mapping(raw, "vars"),))
        if raw.get("environment"):
            out = replace(out, environment=out.environment + (_mapping(raw, "environment"),))
        for key in ("become", "become_user", "ignore_errors", "no_log", "check_mode", "diff", "delegate_to",
                    "run_once", "any_errors_fatal", "ignore_unreachable"):
            if key in raw:
                out = replace(out, **{key: raw[key]})
        if "notify" in raw:
            out = replace(out, notify=out.notify + tuple(str(n) for n in _as_list(raw["notify"], raw, "notify")))
        return out

    def _task(self, raw: YMap, inherited: Inherited) -> Node:
        from provisioner.actions import lookup_action  # late import: actions import this module's types

        action_keys = [k for k in raw if k not in TASK_KEYS]
        if "action" in raw or "local_action" in raw:
            key = "action" if "action" in raw else "local_action"
            action_keys = [key]
        if not action_keys:
            raise UserError("task has no module: add one such as `apt:`, `copy:` or `command:`", raw.where())
        if len(action_keys) > 1:
            unknown = [k for k in action_keys if lookup_action(str(k)) is None]
            bad = unknown[0] if unknown else action_keys[1]
            hint = did_you_mean(str(bad), TASK_KEYS)
            msg = (f"unknown task keyword {bad!r}{hint}" if hint or (unknown and len(unknown) < len(action_keys))
                   else f"task has more than one module: {', '.join(map(str, action_keys))}")
            raise UserError(msg, raw.where(bad))
        key = str(action_keys[0])
        value = raw[key]
        if key in ("action", "local_action"):
            if isinstance(value, dict):
                value = dict(value)
                module_name = str(value.pop("module", ""))
            else:
                module_name, _, rest = str(value).partition(" ")
                value = rest
            key = module_name
        spec = lookup_action(key)
        if spec is None:
            from provisioner.actions import unknown_action_message
            raise UserError(unknown_action_message(key), raw.where(action_keys[0]))
        args = self._parse_args(value, raw, key, spec.free_form)
        if isinstance(raw.get("args"), dict):
            args = {**raw["args"], **args}
        pos = raw.where()
        inner = self._inherit(inherited, raw)
        loop, loop_kind = None, None
        for lk in ("loop", *LOOP_KEYWORDS):
            if lk in raw:
                loop, loop_kind = raw[lk], lk
                self._check_loop(loop, lk, raw)
        lc = raw.get("loop_control") or {}
        if not isinstance(lc, dict):
            raise UserError(f"`loop_control` must be a mapping, not {type_name(lc)}", raw.where("loop_control"))
        for k in lc:
            if k not in ("label", "loop_var", "index_var", "pause", "extended", "extended_allitems"):
                raise UserError(f"unknown loop_control key {k!r}", lc.where(k) if isinstance(lc, YMap) else pos)
        register = raw.get("register")
        if register is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(register)):
            raise UserError(f"`register` must be a variable name, not {register!r}", raw.where("register"))
        for k in ("retries", "delay"):
            if k in raw and not isinstance(raw[k], int) and "{{" not in str(raw[k]):
                raise UserError(f"`{k}` must be a number, not {type_name(raw[k])}", raw.where(k))
        name = raw.get("name")
        task = Task(
            action=spec.name, args=args, pos=pos, name=str(name) if name is not None else None,
            when=inner.when, loop=loop, loop_kind=loop_kind, loop_control=dict(lc),
            register=str(register) if register else None,
            notify=inner.notify if "notify" in raw else (),
            listen=tuple(str(x) for x in _as_list(raw.get("listen"), raw, "listen")),
            tags=inner.tags, become=inner.become, become_user=inner.become_user,
            changed_when=tuple(_conditions(raw, "changed_when")), failed_when=tuple(_conditions(raw, "failed_when")),
            ignore_errors=inner.ignore_errors or False, ignore_unreachable=bool(inner.ignore_unreachable),
            retries=raw.get("retries"), until=raw.get("until"), delay=raw.get("delay", 5),
            # a `!vault` value written in the task itself (its args, a loop): no_log, as any vaulted value
            no_log=True if getattr(raw, "holds_secret", False) else inner.no_log or False, check_mode=inner.check_mode,
            diff=inner.diff, environment=inner.environment, vars=inner.vars, delegate_to=inner.delegate_to,
            run_once=bool(inner.run_once), any_errors_fatal=inner.any_errors_fatal, role=inner.role,
            base_dir=inner.base_dir,
        )
        if task.until is not None and task.retries is None:
            task.retries = 3
        if "local_action" in raw:
            task.delegate_to = "localhost"
        spec.check(task, self)
        if spec.name in INCLUDE_ACTIONS:
            return self._include(task, raw, inherited)
        return task

    def _parse_args(self, value: Any, raw: YMap, key: str, free_form: str | None) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, (str, int, float)):
            return parse_kv(str(value), free_form is not None, raw.where(key))
        raise UserError(f"arguments of {key!r} must be a mapping or `k=v` text, not {type_name(value)}",
                        raw.where(key))

    def _check_loop(self, loop: Any, key: str, raw: YMap) -> None:
        if isinstance(loop, str) and "{{" in loop:
            return
        if key == "with_dict":
            if not isinstance(loop, dict):
                raise UserError(f"`with_dict` needs a mapping, not {type_name(loop)}", raw.where(key))
        elif key in ("loop", "with_list", "with_items") and not isinstance(loop, list):
            raise UserError(f"`{key}` needs a list, not {type_name(loop)}", raw.where(key))

    # -- includes --------------------------------------------------------------------------
    def _include(self, task: Task, raw: YMap, inherited: Inherited) -> Node:
        args = task.args
        own = replace(self._inherit(inherited, raw), notify=inherited.notify)
        if task.action in ("include_tasks", "import_tasks", "include"):
            target = args.get("file") or args.get("_raw_params")
            if not target:
                raise UserError(f"{task.action} needs a file name", task.pos)
            if "{{" in str(target):
                if task.action == "import_tasks":
                    raise UserError("import_tasks cannot use a templated file name: use include_tasks",
                                    task.pos)
                return task  # resolved at run time
            path = self.resolve_task_file(str(target), task.base_dir, task.role, task.pos)
            extra = {k: v for k, v in args.items() if k not in ("file", "_raw_params", "apply")}
            if extra:
                own = replace(own, vars=own.vars + (extra,))
            if task.action == "include_tasks":  # its own `when` decides once, at run time, whether to include
                own = replace(own, when=inherited.when)
            nodes = self._task_file(path, own)
            if task.action == "include_tasks" and (task.loop is not None or len(task.when) > len(inherited.when)):
                task.included = nodes
                return task
            return Block(block=nodes, rescue=[], always=[], pos=task.pos, name=task.name)
        role_name = args.get("name") or args.get("role")
        if not role_name:
            raise UserError(f"{task.action} needs `name:` (the role)", task.pos)
        params = dict(args.get("vars") or {})
        params.update({k: v for k, v in args.items() if k not in (
            "name", "role", "tasks_from", "vars_from", "defaults_from", "handlers_from", "vars", "apply",
            "public", "allow_duplicates", "rolespec_validate")})
        nodes = self.load_role(str(role_name), task.pos, replace(own, role=inherited.role), params, None,
                               tuple(inherited.role.parent_names + (inherited.role.name,)) if inherited.role else (),
                               tasks_from=str(args.get("tasks_from", "main")),
                               vars_from=str(args.get("vars_from", "main")),
                               defaults_from=str(args.get("defaults_from", "main")),
                               handlers_from=str(args.get("handlers_from", "main")))
        if task.action == "include_role" and task.loop is not None:
            task.included = nodes  # run once per item at run time, the loop variable set
            return task
        return Block(block=nodes, rescue=[], always=[], pos=task.pos, name=task.name)

    def resolve_task_file(self, target: str, base_dir: Path, role: RoleInstance | None, pos: Position) -> Path:
        candidates = [base_dir / target]
        if role:
            candidates += [role.path / "tasks" / target]
        candidates += [self.playbook_path.parent / target]
        for c in candidates:
            if c.is_file():
                return c
        raise UserError(f"tasks file not found: {target}", pos)


# -- helpers ----------------------------------------------------------------------------------
def selected_by_tags(tags: frozenset[str], only: frozenset[str], skip: frozenset[str]) -> bool:
    """Whether a task with these tags runs under `--tags only --skip-tags skip`, as in Ansible
    (`always` unless skipped by name, `never` only when asked for, `tagged`/`untagged`/`all`)."""
    if "always" in tags and "always" not in skip:
        return not (tags & skip - {"always"}) if skip else True
    if only and not (tags & only or ("tagged" in only and tags) or ("untagged" in only and not tags)
                     or "all" in only):
        return False
    if "never" in tags and not (tags & only):
        return False
    return not (skip and tags & skip)


def default_roles_path(playbook_dir: Path) -> list[Path]:
    paths = [playbook_dir / "roles", playbook_dir.parent / "roles"]
    for env in ("PROVISION_ROLES_PATH", "ANSIBLE_ROLES_PATH"):
        paths += [Path(p) for p in os.environ.get(env, "").split(":") if p]
    paths.append(shipped_roles())  # the roles that come with provision, last
    out: list[Path] = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def split_args(text: str) -> list[str]:
    """Split on whitespace like a shell, but never inside quotes or Jinja2 `{{ }}`/`{% %}` blocks."""
    tokens: list[str] = []
    cur: list[str] = []
    quote = ""
    depth = 0
    i = 0
    while i < len(text):
        c = text[i]
        two = text[i:i + 2]
        if quote:
            if c == "\\" and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
            else:
                cur.append(c)
        elif two in ("{{", "{%", "{#"):
            depth += 1
            cur.append(two)
            i += 2
            continue
        elif two in ("}}", "%}", "#}") and depth:
            depth -= 1
            cur.append(two)
            i += 2
            continue
        elif c in "'\"" and not depth:
            quote = c
        elif c.isspace() and not depth:
            if cur:
                tokens.append("".join(cur))
                cur = []
        else:
            cur.append(c)
        i += 1
    if quote:
        raise ValueError("no closing quotation")
    if cur:
        tokens.append("".join(cur))
    return tokens


def parse_kv(text: str, free_form: bool, pos: Position) -> dict[str, Any]:
    """Ansible's inline `k=v k2='v 2'` form; the rest is the free-form command for command/shell."""
    free_keys = {"creates", "removes", "chdir", "executable", "warn", "stdin", "stdin_add_newline",
                 "strip_empty_ends"}
    out: dict[str, Any] = {}
    if free_form:
        # keep the command text as written (a multi-line script keeps its lines); only pull out
        # known k=v options
        pieces: list[str] = []
        last = 0
        for m in re.finditer(r"""(?:[^\s'"]+|'[^']*'|"[^"]*")+""", text):
            k, eq, v = m.group(0).partition("=")
            if eq and k in free_keys:
                out[k] = split_args(v)[0] if v else ""
                pieces.append(text[last:m.start()])
                last = m.end()
        rest = ("".join(pieces) + text[last:]).strip()
        if rest:
            out["_raw_params"] = rest
        return out
    try:
        parts = split_args(text)
    except ValueError as exc:
        raise UserError(f"cannot parse inline arguments: {exc}", pos) from None
    for part in parts:
        k, eq, v = part.partition("=")
        if not eq:
            raise UserError(f"inline argument {part!r} is not k=v", pos)
        out[k] = v
    return out


def check_serial(serial: Any, pos: Position) -> None:
    for size in serial if isinstance(serial, list) else [serial]:
        if size is not None and "{{" not in str(size) and not re.fullmatch(r"\s*(\d+|\d+(\.\d+)?%)\s*", str(size)):
            raise UserError(f"`serial` must be a number of hosts, a percentage like 30%, or a list of them, "
                            f"not {type_name(size)}", pos)


def _looks_like_module(word: str) -> bool:
    from provisioner.actions import lookup_action
    return lookup_action(word) is not None


def _as_list(value: Any, raw: YMap, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    if isinstance(value, (str, int, float)):
        return [v.strip() for v in str(value).split(",")] if key == "tags" else [value]
    raise UserError(f"`{key}` must be a string or a list, not {type_name(value)}", raw.where(key))


def _conditions(raw: YMap, key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, (str, bool, int)):
            raise UserError(f"`{key}` must be an expression or a list of them, not {type_name(item)}", raw.where(key))
    return items


def _mapping(raw: YMap, key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if isinstance(value, str) and "{{" in value:
        return {"__template__": value}
    if not isinstance(value, dict):
        raise UserError(f"`{key}` must be a mapping, not {type_name(value)}", raw.where(key))
    for k in value:
        if key == "vars" and (not isinstance(k, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k)):
            raise UserError(f"variable name {k!r} is not a valid identifier", where(value, k))
    return value


def _list(raw: YMap, key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"`{key}` must be a list, not {type_name(value)}", raw.where(key))
    return value


def _bool(value: Any, raw: YMap, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off"):
        return False
    raise UserError(f"`{key}` must be true or false, not {type_name(value)}", raw.where(key))


def _allow_duplicates(role_path: Path) -> bool:
    meta = _first_yaml(role_path / "meta", "main")
    data = load_yaml_file(meta) if meta else None
    return bool(isinstance(data, dict) and data.get("allow_duplicates"))


def _first_yaml(directory: Path, stem: str) -> Path | None:
    for suffix in (".yml", ".yaml", ""):
        p = directory / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _vars_file(directory: Path, stem: str) -> dict[str, Any]:
    path = _first_yaml(directory, stem)
    if path is None:
        return {}
    data = load_yaml_file(path) or {}
    if not isinstance(data, dict):
        raise UserError(f"a vars file must be a mapping, not {type_name(data)}", Position(str(path), 1, 1))
    return data


def iter_tasks(nodes: list[Node], includes: bool = True) -> list[Task]:
    """Every task under these nodes, blocks opened; with `includes`, the tasks a dynamic
    include_tasks loaded at load time too (a handler list keeps the include task itself)."""
    out: list[Task] = []
    for n in nodes:
        if isinstance(n, Block):
            out.extend(iter_tasks(n.block + n.rescue + n.always, includes))
        else:
            out.append(n)
            if includes and n.included:
                out.extend(iter_tasks(n.included))
    return out
