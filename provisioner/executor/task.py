"""One task on one host: conditions, loops, retries, the action itself, and its verdict.

Host modules are decided and applied by the host's agent in one request per loop item;
controller actions (template, set_fact, assert...) run here and call host modules
through `ActionContext`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisioner.actions import ActionSpec, lookup_action
from provisioner.connection.base import Unreachable
from provisioner.errors import TaskFailed, UserError
from provisioner.executor.context import HostRun, RunContext
from provisioner.executor.results import CHANGED, FAILED, OK, SKIPPED, UNREACHABLE, Include, TaskResult
from provisioner.load.playbook import Task, selected_by_tags
from provisioner.lookups import LOOP_LOOKUPS, LookupContext, run_lookup
from provisioner.modules import validate_args
from provisioner.template import LazyVars, _bool, mark_unsafe
from provisioner.validate import ArgsError, as_dict, validate_model
from provisioner.vault import taint

_ALL_TRUE = object()


def _registered(data: dict[str, Any]) -> dict[str, Any]:
    """A result as `register` stores it: without the executor's private keys (a loop item's _label)."""
    out = {k: v for k, v in data.items() if not k.startswith("_")}
    if isinstance(out.get("results"), list):
        out["results"] = [{k: v for k, v in r.items() if not k.startswith("_")} if isinstance(r, dict) else r
                          for r in out["results"]]
    return out


class ActionContext:
    """What a controller action may use: variables, templating, the host's modules, files."""

    def __init__(self, task_runner: TaskRunner, hr: HostRun, task: Task, variables: LazyVars,
                 check: bool, diff: bool, env: dict[str, str], become: dict[str, Any] | None,
                 session: Any) -> None:
        self._tasks = task_runner
        self._run = task_runner.context
        self.hr = hr
        self.task = task
        self.vars = variables
        self.templar = task_runner.context.templar
        self.check = check
        self.diff = diff
        self.env = env
        self.become = become
        self.session = session  # the delegate_to host's session; None: the host's own

    @property
    def host_name(self) -> str:
        return self.hr.name

    @property
    def playbook_dir(self) -> Path:
        return self._run.playbook_dir

    def vars_file(self, path: Path) -> Any:
        """A YAML vars file's data, parsed once per run for every host: copy what you keep."""
        return self._run.vars_file(path)

    def connect(self) -> TaskResult:
        """Connect to the host again and start its agent (after a reboot)."""
        return self._run.connect(self.hr)

    def run_module(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        spec = lookup_action(name)
        if spec is None or spec.host_module is None:
            raise TaskFailed(f"no host module {name!r}")
        return self._tasks.call_module(self.hr, spec, args, self.check, self.diff, self.env, self.become,
                                       self.session)

    def find_file(self, kind: str, name: str) -> Path:
        """A local file by Ansible's search order: the role's files/ or templates/, then the playbook's."""
        p = Path(name).expanduser()
        if p.is_absolute():
            if p.exists():
                return p
            raise TaskFailed(f"file not found: {name}")
        dirs: list[Path] = []
        if self.task.role:
            dirs += [self.task.role.path / kind, self.task.role.path, self.task.role.path / "tasks"]
        dirs += [self.task.base_dir / kind, self.task.base_dir, self.playbook_dir / kind, self.playbook_dir]
        for d in dirs:
            if (d / name).exists():
                return d / name
        raise TaskFailed(f"could not find {name!r} in {', '.join(str(d) for d in dirs[:3])}...")

    def put(self, data: bytes, path: str, mode: Any = None) -> dict[str, Any]:
        assert self.hr.session is not None
        import base64
        req: dict[str, Any] = {"path": path, "data": base64.b64encode(data).decode(), "mode": mode}
        if self.become:
            req["become"] = self.become
        return self.hr.session.call("put", **req)


class TaskRunner:
    """Runs one task on one host; what it needs of the run comes through `context` (RunContext)."""

    def __init__(self, context: RunContext) -> None:
        self.context = context

    # -- selection ---------------------------------------------------------------------------
    def selected_by_tags(self, task: Task) -> bool:
        return selected_by_tags(task.tags, self.context.options.tags, self.context.options.skip_tags)

    def variables(self, hr: HostRun, task: Task, extra: Mapping[str, Any] | None = None) -> LazyVars:
        run = self.context
        layers = run.base_layers(hr, run.play)
        role = task.role
        if role is not None:
            layers.set("task_role_defaults", role.defaults).set("task_role_vars", role.vars)
            layers.set("role_params", role.params)
            layers.set("role_name", {"role_name": role.name, "role_path": str(role.path)})
        if task.vars:
            layers.set("block_task_vars", *task.vars)
        if extra:
            layers.set("task_extra", extra)
        return LazyVars(layers.stack(), run.templar)

    def when_ok(self, hr: HostRun, task: Task, variables: LazyVars | None = None) -> bool:
        if variables is None:  # not `or`: a LazyVars' truth value counts every variable of every layer
            variables = self.variables(hr, task)
        return all(self.context.templar.condition(c, variables) for c in task.when)

    # -- the task ---------------------------------------------------------------------------
    def apply(self, hr: HostRun, task: Task) -> TaskResult:
        t0 = time.monotonic()
        try:
            result = self._apply(hr, task)
        except Unreachable as exc:
            hr.unreachable = True
            result = self._result(hr, task, UNREACHABLE, str(exc), {})
        except (TaskFailed, UserError) as exc:
            result = self._result(hr, task, FAILED, f"{exc} (task at {task.pos})", {})
            result = self._maybe_ignore(hr, task, result)
        except Exception as exc:  # a bug in an action: this host fails, the run goes on
            import traceback
            result = self._result(hr, task, FAILED, f"internal error: {type(exc).__name__}: {exc}",
                                  {"exception": traceback.format_exc()})
        return dataclasses.replace(result, duration=time.monotonic() - t0)

    def _apply(self, hr: HostRun, task: Task) -> TaskResult:
        variables = self.variables(hr, task)
        templar = self.context.templar
        if task.loop is None:
            false_condition = self._false_condition(task, variables)
            if false_condition is not _ALL_TRUE:
                skipped = {"changed": False, "false_condition": false_condition,
                           "skip_reason": "Conditional result was False", "skipped": True}
                if task.register:  # `r is skipped` must see this run's result, as in Ansible
                    hr.registered[task.register] = dict(skipped)
                return self._result(hr, task, SKIPPED, "conditional result was False", skipped)
            data, includes = self._run_once(hr, task, variables)
            data.setdefault("failed", False)
            secret = variables.secret_used or bool(data.pop("_secret", False))
            self._set_facts(hr, data, secret)
        else:
            data, includes = self._loop(hr, task, variables)
            secret = variables.secret_used or bool(data.pop("_secret", False))
        if task.register:
            registered = mark_unsafe(_registered(data))
            hr.registered[task.register] = taint(registered) if secret else registered
        status = FAILED if data.get("failed") else CHANGED if data.get("changed") else \
            SKIPPED if data.get("skipped") else OK
        if status == CHANGED and task.notify:
            for name in task.notify:
                rendered = str(templar.render(name, variables))
                if rendered not in hr.notified:
                    hr.notified.append(rendered)
        result = self._result(hr, task, status, str(data.get("msg") or ""), data, secret=secret,
                              includes=includes)
        return self._maybe_ignore(hr, task, result)

    def share_run_once(self, hr: HostRun, task: Task, leader: TaskResult) -> TaskResult:
        """A run_once task's result for the hosts that did not run it: the leader's registered
        value and facts become theirs too (Ansible applies a run_once result to every host)."""
        source = self.context.hosts[leader.host]
        if task.register and task.register in source.registered:
            hr.registered[task.register] = source.registered[task.register]
        if task.action in ("set_fact", "include_vars"):
            looped = leader.data.get("results")
            for item in looped if isinstance(looped, list) else [leader.data]:
                if isinstance(item, dict) and isinstance(item.get("ansible_facts"), Mapping):
                    hr.host_facts.update(item["ansible_facts"])
        return dataclasses.replace(leader, host=hr.name)

    def _loop(self, hr: HostRun, task: Task, variables: LazyVars) -> tuple[dict[str, Any], tuple[Include, ...]]:
        """Every item in turn, as Ansible: each one sees the facts the previous ones set
        (set_fact, include_vars), and the result is `results` with one entry per item."""
        templar = self.context.templar
        items = self._loop_items(task, variables)
        loop_var = str(task.loop_control.get("loop_var", "item"))
        index_var = task.loop_control.get("index_var")
        label = task.loop_control.get("label")
        results: list[dict[str, Any]] = []
        includes: list[Include] = []
        secret = False  # a vaulted value read by any item makes the whole result secret
        for index, item in enumerate(items):
            layer: dict[str, Any] = {loop_var: mark_unsafe(item), "ansible_loop_var": loop_var}  # rendered already
            marks: dict[str, Any] = {loop_var: item, "ansible_loop_var": loop_var}
            if index_var:
                layer[str(index_var)] = marks[str(index_var)] = index
                marks["ansible_index_var"] = str(index_var)
            ivars = self.variables(hr, task, layer)
            shown = templar.render(label, ivars) if label is not None else item
            false_condition = self._false_condition(task, ivars)
            if false_condition is not _ALL_TRUE:
                results.append({"changed": False, "false_condition": false_condition,
                                "skip_reason": "Conditional result was False", "skipped": True,
                                **marks, "_label": shown})
                continue
            data, item_includes = self._run_once(hr, task, ivars)
            includes.extend(item_includes)
            data.setdefault("failed", False)
            item_secret = ivars.secret_used or bool(data.pop("_secret", False))
            secret = secret or item_secret
            self._set_facts(hr, data, item_secret)
            data.update(marks)
            data["_label"] = shown
            results.append(data)
            if task.loop_control.get("pause"):
                time.sleep(float(task.loop_control["pause"]))
        out: dict[str, Any] = {"changed": any(r.get("changed") for r in results), "results": results}
        if not results:
            out.update(skipped=True, skipped_reason="No items in the list")
            return out, ()
        out["skipped"] = all(r.get("skipped") for r in results)
        if any(r.get("failed") for r in results):
            out.update(failed=True, msg="One or more items failed")
        else:
            out["msg"] = "All items skipped" if out["skipped"] else "All items completed"
        if secret:
            out["_secret"] = True
        return out, tuple(includes)

    def _false_condition(self, task: Task, variables: LazyVars) -> Any:
        """The first `when` condition that is false (as Ansible's `false_condition`), else _ALL_TRUE."""
        for c in task.when:
            if not self.context.templar.condition(c, variables):
                return c
        return _ALL_TRUE

    @staticmethod
    def _set_facts(hr: HostRun, data: dict[str, Any], secret: bool = False) -> None:
        """set_fact / include_vars: the facts count from now on (the next loop item included); facts
        made from a vaulted value stay secret (no_log wherever they are read)."""
        facts = data.pop("_set_facts", None)
        if facts:
            hr.host_facts.update({k: taint(v) for k, v in facts.items()} if secret else facts)

    def _loop_items(self, task: Task, variables: LazyVars) -> list[Any]:
        value = self.context.templar.render(task.loop, variables)
        if task.loop_kind == "with_dict":
            if not isinstance(value, Mapping):
                raise TaskFailed(f"with_dict needs a mapping, got {type(value).__name__}")
            return [{"key": k, "value": v} for k, v in value.items()]
        if task.loop_kind == "with_sequence":
            parts = dict(p.split("=") for p in str(value).split()) if "=" in str(value) else {"end": value}
            start, end = int(parts.get("start", 1)), int(parts.get("end", 0))
            return [str(i) for i in range(start, end + 1, int(parts.get("stride", 1)))]
        kind = task.loop_kind or ""
        lookup_name = kind[len("with_"):] if kind.startswith("with_") else ""
        if lookup_name == "fileglob" or lookup_name in LOOP_LOOKUPS:  # with_X: lookup X's list, as Ansible
            terms = tuple(value) if isinstance(value, list) else (value,)
            return list(run_lookup(LookupContext(variables), lookup_name, terms, {"wantlist": True}))
        if isinstance(value, str) and task.loop_kind == "with_items":
            return [value]
        if not isinstance(value, list):
            raise TaskFailed(f"`{task.loop_kind}` needs a list, got {type(value).__name__}: {str(value)[:80]!r}")
        if task.loop_kind == "with_items":
            flat: list[Any] = []
            for v in value:
                flat.extend(v if isinstance(v, list) else [v])
            return flat
        return value

    def _run_once(self, hr: HostRun, task: Task,
                  variables: LazyVars) -> tuple[dict[str, Any], tuple[Include, ...]]:
        """The action, with retries/until and changed_when/failed_when applied; and what it included
        (the last attempt's)."""
        templar = self.context.templar
        attempts = 1
        if task.until is not None:
            attempts = int(templar.render(task.retries, variables)) + 1 if task.retries is not None else 4
        delay = float(templar.render(task.delay, variables)) if task.delay is not None else 5.0
        data: dict[str, Any] = {}
        includes: tuple[Include, ...] = ()
        for attempt in range(1, attempts + 1):
            data, includes = self._action(hr, task, variables)
            data = self._judge(task, data, variables)
            if task.until is None:
                break
            data["attempts"] = attempt
            judged = self._with_result(task, data, variables)
            if not data.get("failed") and templar.condition(task.until, judged):
                break
            if attempt < attempts:
                time.sleep(delay)
            else:
                data["failed"] = True
                data.setdefault("msg", "")
                data["msg"] = (data["msg"] + " " if data["msg"] else "") + f"(until not met after {attempt} attempts)"
        return data, includes

    def _with_result(self, task: Task, data: dict[str, Any], variables: LazyVars) -> LazyVars:
        layer = {task.register: data} if task.register else {}
        layer["result"] = data  # harmless convenience when register is absent
        return LazyVars([variables, layer], self.context.templar)

    def _judge(self, task: Task, data: dict[str, Any], variables: LazyVars) -> dict[str, Any]:
        if not task.changed_when and not task.failed_when:
            return data
        judged = self._with_result(task, data, variables)
        templar = self.context.templar
        if task.changed_when and not data.get("skipped"):
            data["changed"] = all(templar.condition(c, judged) for c in task.changed_when)
        if task.failed_when and not data.get("skipped"):
            failed = any(templar.condition(c, judged) for c in task.failed_when)
            data["failed_when_result"] = failed
            if failed and not data.get("failed"):
                data["msg"] = data.get("msg") or "failed_when condition was true"
            data["failed"] = failed
        return data

    def _action(self, hr: HostRun, task: Task, variables: LazyVars) -> tuple[dict[str, Any], tuple[Include, ...]]:
        spec = lookup_action(task.action)
        assert spec is not None
        templar = self.context.templar
        opts = self.context.options
        check = opts.check
        if task.check_mode is not None:
            check = _bool(templar.render(task.check_mode, variables))
        diff = opts.diff if task.diff is None else _bool(templar.render(task.diff, variables))
        env: dict[str, str] = {}
        for layer in task.environment:
            rendered = templar.render(layer.get("__template__", layer), variables)
            if not isinstance(rendered, Mapping):
                raise TaskFailed("`environment` must be a mapping")
            env.update({str(k): str(v) for k, v in rendered.items()})
        become = self._become(task, variables)
        session = self._delegate(hr, task, variables)
        if task.action in ("include_tasks", "include") or task.included is not None:
            include = self._include(task, variables)
            return {"changed": False, "msg": "included", "include": str(
                task.args.get("file") or task.args.get("_raw_params"))}, (include,)
        args = templar.render(task.args, variables)
        if spec.controller is not None:
            ctx = ActionContext(self, hr, task, variables, check, diff, env, become, session)
            model = getattr(spec.controller, "ARGS", None)
            free = getattr(spec.controller, "FREE_FORM", None)
            if free and "_raw_params" in args:
                args[free] = args.pop("_raw_params")
            if model is not None:
                try:
                    args = validate_model(model, args)
                except ArgsError as exc:
                    where = ".".join(str(x) for x in exc.loc)
                    return {"failed": True, "msg": f"argument {where!r} of {task.action!r}: {exc.msg.lower()}"}, ()
            return dict(spec.controller.run(args, ctx)), ()
        return self.call_module(hr, spec, args, check, diff, env, become, session), ()

    def call_module(self, hr: HostRun, spec: ActionSpec, args: dict[str, Any], check: bool, diff: bool,
                    env: dict[str, str], become: dict[str, Any] | None,
                    session: Any = None) -> dict[str, Any]:
        assert spec.host_module is not None
        try:
            validated = validate_args(spec.host_module, args)
        except ArgsError as exc:
            where = ".".join(str(x) for x in exc.loc)
            return {"failed": True, "msg": f"argument {where!r} of {spec.name!r}: {exc.msg.lower()}"}
        request: dict[str, Any] = {
            "module": spec.host_module.module.__name__.rsplit(".", 1)[-1],
            "args": as_dict(validated), "check": check, "diff": diff, "env": env,
        }
        if become:
            request["become"] = become
        session = session or hr.session
        assert session is not None
        return session.call("run", **request)

    def _delegate(self, hr: HostRun, task: Task, variables: LazyVars) -> Any:
        """The agent session that runs this task: the host's own, or the one `delegate_to` names."""
        if task.delegate_to is None:
            return None
        target = str(self.context.templar.render(task.delegate_to, variables))
        if target == hr.name:
            return None
        if target in ("localhost", "127.0.0.1") and target not in self.context.hosts:
            return self.context.local_session()
        other = self.context.hosts.get(target)
        if other is None or other.session is None:
            raise TaskFailed(f"delegate_to: {target!r} is not a connected host of this run")
        return other.session

    def _become(self, task: Task, variables: LazyVars) -> dict[str, Any] | None:
        templar = self.context.templar
        become = task.become
        if become is None:
            become = variables.get("ansible_become", False)
        if not _bool(templar.render(become, variables)):
            return None
        user = task.become_user if task.become_user is not None else variables.get("ansible_become_user", "root")
        user = str(templar.render(user, variables) or "root")
        # the become password goes to sudo's stdin only, never into a result: reading it does not
        # make the task no_log
        secret_used = variables.secret_used
        password = (variables.get("ansible_become_password") or variables.get("ansible_become_pass")
                    or self.context.options.become_password)
        out: dict[str, Any] = {"user": user}
        if password:
            out["password"] = str(templar.render(password, variables))
        variables.secret_used = secret_used
        return out

    def _include(self, task: Task, variables: LazyVars) -> Include:
        """The tasks an include_tasks / include_role brings in, and the params they run with."""
        if task.included is not None:
            nodes = task.included
        else:
            target = self.context.templar.render(task.args.get("file") or task.args.get("_raw_params"), variables)
            loader = self.context.loader
            path = loader.resolve_task_file(str(target), task.base_dir, task.role, task.pos)
            from provisioner.load.playbook import Inherited
            inherited = Inherited(tags=task.tags, become=task.become, become_user=task.become_user,
                                  environment=task.environment, vars=task.vars, role=task.role,
                                  base_dir=path.parent)
            nodes = loader._task_file(path, inherited)
        params = {} if task.action == "include_role" else {  # a role's params went to its RoleInstance
            k: self.context.templar.render(v, variables) for k, v in task.args.items()
            if k not in ("file", "_raw_params", "apply")}
        loop_var = str(task.loop_control.get("loop_var", "item"))
        if task.loop is not None and loop_var in variables:
            params[loop_var] = variables[loop_var]
        return Include(nodes, params)

    def _maybe_ignore(self, hr: HostRun, task: Task, result: TaskResult) -> TaskResult:
        if result.status != FAILED:
            return result
        try:
            ignore = _bool(self.context.templar.render(task.ignore_errors, self.variables(hr, task)))
        except TaskFailed:
            ignore = False
        return dataclasses.replace(result, ignored=ignore)

    def _result(self, hr: HostRun, task: Task, status: str, msg: str, data: dict[str, Any],
                secret: bool = False, includes: tuple[Include, ...] = ()) -> TaskResult:
        """`secret`: the task read a vaulted value, so its result is no_log whatever the task says."""
        no_log = secret or (bool(task.no_log) if isinstance(task.no_log, bool) else _bool(task.no_log))
        diffs: list[dict[str, Any]] = []
        if data.get("diff"):
            diffs.append(data["diff"])
        for r in data.get("results", []) if isinstance(data.get("results"), list) else []:
            if isinstance(r, dict) and r.get("diff"):
                diffs.append(r["diff"])
        is_handler = self.context.play is not None and any(task is h for h in self.context.play.handlers)
        return TaskResult(hr.name, task.display_name, task.action, status, msg, data, diffs, no_log=no_log,
                          position=str(task.pos), handler=is_handler, includes=includes)
