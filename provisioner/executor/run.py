"""Plays × hosts × tasks: the linear strategy, with many hosts at once.

Each host walks its own task tree as a generator (blocks, rescue/always, includes and
handler flushes are plain control flow there); the runner advances every live host by
one task per step, all hosts of a step in parallel, and checks any_errors_fatal and
max_fail_percentage between steps, as Ansible's linear strategy does.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Generator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any

from provisioner.actions.raw import starts_without_python
from provisioner.connection.agent_client import AgentSession
from provisioner.connection.base import Unreachable
from provisioner.connection.factory import ConnectionFactory, ConnectionSettingError
from provisioner.connection.local import LocalConnection
from provisioner.errors import TaskFailed, UserError
from provisioner.executor.context import HostRun, HostVars, RunOptions, fact_vars
from provisioner.executor.fake_facts import FAKE_FACTS_VAR, fake_facts
from provisioner.executor.layers import VarLayers
from provisioner.executor.results import FAILED, OK, SKIPPED, UNREACHABLE, TaskResult
from provisioner.executor.task import TaskRunner
from provisioner.load.inventory import Inventory
from provisioner.load.playbook import Block, Loader, Node, Play, Playbook, Task, iter_tasks
from provisioner.load.yamlsrc import load_yaml_file
from provisioner.output.events import Output
from provisioner.shipped import DATA_DIR
from provisioner.template import LazyVars, Templar, mark_unsafe

HostProgram = Generator[Task, TaskResult, bool]
_FLUSH = "meta:flush_handlers"


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: stop now, report what was done."""


class Runner:
    """Runs a playbook against an inventory; owns the hosts' connections for the whole run."""

    def __init__(self, playbook: Playbook, inventory: Inventory, options: RunOptions, output: Output,
                 loader: Loader | None = None) -> None:
        self.playbook = playbook
        self.inventory = inventory
        self.options = options
        self.output = output
        self.loader = loader or Loader(playbook.path)
        self.templar = Templar()
        self.hosts: dict[str, HostRun] = {}
        self.results: list[TaskResult] = []
        self.task_runner = TaskRunner(self)
        self.pool = ThreadPoolExecutor(max_workers=max(1, options.forks), thread_name_prefix="host")
        self.interrupted = threading.Event()
        self.play: Play | None = None
        self.defer_agent = False  # the play starts without python (raw first): connect, start the agent later
        self.play_hosts: list[str] = []
        self.started = time.monotonic()
        self._results_lock = threading.Lock()
        self._local: AgentSession | None = None
        self.connections = ConnectionFactory(options)
        self._layer_cache: dict[tuple[Any, ...], Any] = {}

    @property
    def playbook_dir(self) -> Path:
        return self.playbook.path.parent

    # -- variables -----------------------------------------------------------------------
    def base_layers(self, hr: HostRun, play: Play | None) -> VarLayers:
        """A host's variable layers in a play, by name (executor/layers.py orders them): everything but
        what a task adds (its role's, its blocks' and its own vars, a loop item). A new builder each
        call, from one kept per host and play: the no-op path asks for it per host per task."""
        live = self.hosts.get(hr.name) is hr  # not a passing HostRun of variables_for (hostvars)
        key = ("layers", id(hr), id(play), id(hr.facts), id(self.play_hosts))
        def build() -> VarLayers:
            layers = VarLayers().set("inventory", self._inventory_layer(hr)).set("facts", self._facts_layer(hr))
            layers.set("host_facts", hr.host_facts).set("registered", hr.registered)
            layers.set("magic", self._magic_layer(hr, play)).set("extra_vars", self.options.extra_vars)
            if play:
                layers.set("role_defaults", *(r.defaults for r in play.roles)).set("play_vars", play.vars)
                layers.set("vars_files", self._cached(("vars_files", hr.name, id(play)),
                                                      lambda: self._vars_files(play, hr)))
                layers.set("role_vars", *(r.vars for r in play.roles))
            return layers
        # kept only for the run's own HostRun: it, its facts, the play and play_hosts live as long
        # as the entry, so their ids hold
        return (self._cached(key, build) if live else build()).copy()

    def _inventory_layer(self, hr: HostRun) -> dict[str, Any]:
        return self._cached(("inventory", hr.name), lambda: self.inventory.host_vars(hr.name))

    def _facts_layer(self, hr: HostRun) -> dict[str, Any]:
        return self._cached(("facts", hr.name, id(hr.facts)), lambda: fact_vars(hr.facts))

    def _magic_layer(self, hr: HostRun, play: Play | None) -> dict[str, Any]:
        return self._cached(("magic", hr.name, id(play), id(self.play_hosts)),
                            lambda: self.magic_vars(hr, play))

    def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        """What stays the same for a play or a run (a host's layers, a parsed vars file), built once
        instead of per task or per host.

        The values are only read (variables are layered, never written into these dicts).
        """
        try:
            return self._layer_cache[key]
        except KeyError:
            value = self._layer_cache[key] = make()
            return value

    def vars_file(self, path: Path) -> Any:
        """A YAML vars file's data, parsed once per run while the file is unchanged: every host reads
        the same vars_files and include_vars files. Callers copy what they keep."""
        try:
            st = path.stat()
        except OSError:
            return load_yaml_file(path)  # says what is wrong with it
        return self._cached(("file", str(path), st.st_mtime_ns, st.st_size), lambda: load_yaml_file(path))

    def variables_for(self, name: str) -> LazyVars:
        hr = self.hosts.get(name) or HostRun(self.inventory.hosts[name])
        return LazyVars(self.base_layers(hr, self.play).stack(), self.templar)

    def magic_vars(self, hr: HostRun, play: Play | None) -> dict[str, Any]:
        return {
            "inventory_hostname": hr.name, "inventory_hostname_short": hr.name.split(".")[0],
            "group_names": self.inventory.group_names(hr.name),
            "groups": {g: self.inventory.group_members(g) for g in self.inventory.groups},
            "hostvars": HostVars(self), "play_hosts": self.play_hosts, "ansible_play_hosts": self.play_hosts,
            "ansible_play_hosts_all": self.play_hosts, "ansible_play_batch": self.play_hosts,
            "ansible_check_mode": self.options.check, "ansible_diff_mode": self.options.diff,
            "playbook_dir": str(self.playbook.path.parent.resolve()), "provision_data_dir": str(DATA_DIR),
            "inventory_dir": str(Path(self.inventory.source).parent) if self.inventory.source else None,
            "ansible_play_name": play.name if play else "", "ansible_version": {"full": "2.19.0", "major": 2,
                                                                               "minor": 19, "string": "2.19.0"},
            "ansible_run_tags": sorted(self.options.tags) or ["all"],
            "ansible_skip_tags": sorted(self.options.skip_tags), "ansible_forks": self.options.forks,
            "ansible_verbosity": self.options.verbosity,
            "ansible_env": hr.facts.get("env", {}),
        }

    def _vars_files(self, play: Play, hr: HostRun) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        if not play.vars_files:
            return merged
        layers = VarLayers().set("inventory", self._inventory_layer(hr)).set("facts", self._facts_layer(hr))
        layers.set("play_vars", play.vars).set("magic", self._magic_layer(hr, play))
        base = LazyVars(layers.set("extra_vars", self.options.extra_vars).stack(), self.templar)
        for entry in play.vars_files:
            candidates = entry if isinstance(entry, list) else [entry]
            for cand in candidates:
                name = self.templar.render(cand, base)
                path = play.base_dir / str(name)
                if path.exists():
                    data = self.vars_file(path) or {}
                    if not isinstance(data, dict):
                        raise TaskFailed(f"vars file {path} must be a mapping of variables")
                    merged.update(data)
                    break
            else:
                raise TaskFailed(f"vars file not found: {candidates}")
        return merged

    # -- connections -------------------------------------------------------------------------
    def agent_session(self, name: str, hvars: Mapping[str, Any]) -> AgentSession:
        """The host's connection (connection/factory.py) and the python its agent runs under, not yet
        started: `start(first request)` makes the one round trip."""
        conn = self.connections.for_host(name, hvars, self.inventory.hosts[name].connection)
        python = str(hvars.get("ansible_python_interpreter", "python3"))
        if python == "auto" or python.startswith("auto_"):
            python = "python3"
        return AgentSession(conn, python=python, persist=self.options.persist)

    def connect(self, hr: HostRun, shown_as: str = "Gathering Facts") -> TaskResult:
        """Connect, start the agent and gather facts: one round trip."""
        t0 = time.monotonic()
        try:
            hvars = self.variables_for(hr.name)
            fake = fake_facts(self.options.facts_from, hr.name, hvars.get(FAKE_FACTS_VAR),
                              self.options.check) if self.options.use_fake_facts else None
            session = self.agent_session(hr.name, hvars)
            session.on_progress = partial(self.output.host_progress, hr.name)  # apt's percentage...
            hr.session = session
            if self.defer_agent:
                # `gather_facts: false` and `raw` tasks: connect now, start the agent at the first other task
                session.open_deferred(lambda reply: self._late_facts(hr, reply))
                return TaskResult(hr.name, shown_as, "setup", OK, "", duration=time.monotonic() - t0)
            reply = session.start({"op": "facts"})
        except (TaskFailed, UserError) as exc:  # UserError: fake facts outside check mode, or unreadable
            return TaskResult(hr.name, shown_as, "setup", FAILED, str(exc), duration=time.monotonic() - t0)
        except (Unreachable, ConnectionSettingError) as exc:
            hr.unreachable = True
            return TaskResult(hr.name, shown_as, "setup", UNREACHABLE, str(exc),
                              duration=time.monotonic() - t0)
        except Exception as exc:  # a broken host must not take the others down
            hr.unreachable = True
            return TaskResult(hr.name, shown_as, "setup", UNREACHABLE,
                              f"{type(exc).__name__}: {exc}", duration=time.monotonic() - t0)
        if reply.get("failed"):
            return TaskResult(hr.name, shown_as, "setup", FAILED, reply.get("msg", ""),
                              data=reply, duration=time.monotonic() - t0)
        # check mode may plan another OS family's host on this one (executor/fake_facts.py)
        hr.facts = mark_unsafe(fake if fake is not None else reply.get("facts", {}))
        return TaskResult(hr.name, shown_as, "setup", OK, "", duration=time.monotonic() - t0)

    def _late_facts(self, hr: HostRun, reply: dict[str, Any] | None) -> None:
        """The facts of an agent started after `raw` tasks (see connect)."""
        if reply and not reply.get("failed"):
            hr.facts = mark_unsafe(reply.get("facts", {}))

    def local_session(self) -> AgentSession:
        """The controller itself, for `delegate_to: localhost` (started on first use)."""
        with self._results_lock:
            if self._local is None:
                session = AgentSession(LocalConnection("localhost"))
                session.start({"op": "facts"})
                self._local = session
            return self._local

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        for hr in self.hosts.values():
            if hr.session is not None:
                try:
                    hr.session.close()
                except Exception:
                    pass
        self.connections.close()  # the jump hosts, once every host behind them is closed
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> bool:
        """Run every play; True when nothing failed and every host was reached."""
        old_term = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            for play in self.playbook.plays:
                if self.interrupted.is_set():
                    break
                self.run_play(play)
        except (KeyboardInterrupt, Interrupted):
            self.interrupted.set()
            self.output.interrupted()
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, old_term)
            self.close()
        return not any(hr.stats.failed or hr.stats.unreachable for hr in self.hosts.values()) \
            and not self.interrupted.is_set()

    def run_play(self, play: Play) -> None:
        self.play = play
        self.defer_agent = starts_without_python(play)  # once per play, not per host
        names = self.inventory.select(play.hosts, play.pos)
        if self.options.limit:
            allowed = set(self.inventory.select(self.options.limit))
            names = [n for n in names if n in allowed]
        for n in names:
            self.hosts.setdefault(n, HostRun(self.inventory.hosts[n]))
        names = [n for n in names if not self.hosts[n].unreachable]
        self.output.play_start(play, names)
        if not names:
            self.output.note("skipping: no hosts matched")
            return
        for batch in _batches(names, play.serial):
            self.play_hosts = batch
            self._run_batch(play, batch)
            live = [n for n in batch if not self.hosts[n].failed and not self.hosts[n].unreachable]
            if not live and play.serial:
                break

    def _run_batch(self, play: Play, batch: list[str]) -> None:
        runs = [self.hosts[n] for n in batch]
        for hr in runs:
            hr.failed = hr.stopped = False
            hr.notified = []
        fresh = [hr for hr in runs if hr.session is None]
        if fresh and play.gather_facts:
            self.output.step_start(len(fresh))
            self.output.task_start("Gathering Facts", None)
            for result in self._parallel(fresh, lambda hr: self._finished(self.connect(hr))):
                self._record(result)
            self.output.step_end()
        elif fresh:
            # The facts come with the connection's first round trip anyway; with gather_facts:
            # false Ansible shows no such task, so only a host that could not be reached is shown.
            results = self._parallel(fresh, lambda hr: self.connect(hr, "Connecting"))
            for result in results:
                if result.status != OK:
                    self.output.task_start("Connecting", None)
                    self._record(result)
        live = [hr for hr in runs if not hr.unreachable and hr.session is not None]
        programs: dict[str, HostProgram] = {hr.name: self._host_program(hr, play) for hr in live}
        pending: dict[str, Task] = {}
        for name, prog in list(programs.items()):
            self._advance(name, prog, None, pending, programs)
        batch_size = len(batch)
        while pending:
            if self.interrupted.is_set():
                raise Interrupted()
            step = list(pending.items())
            shown: set[int] = set()
            self.output.step_start(len(step))
            for name, task in step:
                if id(task) not in shown:
                    shown.add(id(task))
                    self.output.task_start(self._shown_name(name, task), task)
            # run_once: the first host of the step runs the task; the others take its result
            # (register, facts) without a result line of their own, as in Ansible
            leaders: dict[int, str] = {}
            for name, task in step:
                if task.run_once:
                    leaders.setdefault(id(task), name)
            to_run = [(n, t) for n, t in step if not t.run_once or leaders[id(t)] == n]
            ran = dict(zip((n for n, _ in to_run), self._parallel(
                to_run, lambda item: self._finished(self.task_runner.apply(self.hosts[item[0]], item[1])))))
            results = [ran[n] if n in ran else self.task_runner.share_run_once(self.hosts[n], t, ran[leaders[id(t)]])
                       for n, t in step]
            failed_now = []
            for (name, _), result in zip(step, results):
                if name in ran:
                    self._record(result)
                if result.status in (FAILED, UNREACHABLE) and not result.ignored:
                    failed_now.append(name)
            self.output.step_end()
            for (name, _), result in zip(step, results):
                self._advance(name, programs[name], result, pending, programs)
            if failed_now and (play.any_errors_fatal or any(
                    t.any_errors_fatal for n, t in step if n in failed_now)):
                self._stop_all(pending, programs, "any_errors_fatal: a host failed, so the play stops for all")
            elif play.max_fail_percentage is not None:
                failed = sum(1 for n in batch if self.hosts[n].failed or self.hosts[n].unreachable)
                if failed * 100.0 / batch_size > play.max_fail_percentage:
                    self._stop_all(pending, programs,
                                   f"max_fail_percentage {play.max_fail_percentage:g}% exceeded "
                                   f"({failed}/{batch_size} hosts failed)")

    def _shown_name(self, host: str, task: Task) -> str:
        """A task's name as Ansible shows it: templated with the first host's variables when it can be."""
        name = task.display_name
        if "{{" not in name:
            return name
        try:
            return str(self.templar.render(name, self.task_runner.variables(self.hosts[host], task)))
        except TaskFailed:
            return name

    def _advance(self, name: str, prog: HostProgram, result: TaskResult | None, pending: dict[str, Task],
                 programs: dict[str, HostProgram]) -> None:
        try:
            task = prog.send(result) if result is not None else next(prog)
            pending[name] = task
        except StopIteration as stop:
            pending.pop(name, None)
            programs.pop(name, None)
            if stop.value is False:
                self.hosts[name].failed = True

    def _stop_all(self, pending: dict[str, Task], programs: dict[str, HostProgram], why: str) -> None:
        self.output.note(why)
        for name in list(pending):
            self.hosts[name].stopped = True
            programs[name].close()
        pending.clear()

    def _parallel(self, items: list[Any], fn: Any) -> list[Any]:
        if len(items) == 1:
            return [fn(items[0])]
        futures = [self.pool.submit(fn, item) for item in items]
        while True:
            _, not_done = wait(futures, timeout=0.2)
            if not not_done:
                break
            if self.interrupted.is_set():
                raise Interrupted()
        return [f.result() for f in futures]

    def _finished(self, result: TaskResult) -> TaskResult:
        """A host's task is done (in its worker thread): the live view counts it now."""
        self.output.host_finished(result)
        return result

    def _record(self, result: TaskResult) -> None:
        hr = self.hosts[result.host]
        with self._results_lock:
            self.results.append(result)
            hr.stats.count(result)
        if result.status == UNREACHABLE:
            hr.unreachable = True
        self.output.host_result(result)

    # -- one host's walk through the play ---------------------------------------------------
    def _host_program(self, hr: HostRun, play: Play) -> HostProgram:
        ok = True
        for section in (play.pre_tasks, play.tasks, play.post_tasks):
            ok = yield from self._nodes(hr, section, play)
            if not ok:
                # failed from this step on (max_fail_percentage counts it now); handlers it notified
                # run only under force_handlers, as in Ansible
                hr.failed = True
                if not play.force_handlers or hr.unreachable:
                    return False
            flushed = yield from self._flush_handlers(hr, play, force=not ok)
            if not ok or not flushed:
                return False
        return ok

    def _nodes(self, hr: HostRun, nodes: list[Node], play: Play) -> Generator[Task, TaskResult, bool]:
        for node in nodes:
            if hr.stopped:
                return True
            if isinstance(node, Block):
                ok = yield from self._nodes(hr, node.block, play)
                if not ok and node.rescue and not hr.unreachable:
                    hr.stats.failed = max(0, hr.stats.failed - 1)
                    hr.stats.rescued += 1
                    ok = yield from self._nodes(hr, node.rescue, play)
                always_ok = True
                if not hr.unreachable:
                    always_ok = yield from self._nodes(hr, node.always, play)
                if not ok or not always_ok:
                    return False
                continue
            if not self.task_runner.selected_by_tags(node):
                continue
            if node.action == "meta":
                ok = yield from self._meta(hr, node, play)
                if not ok:
                    return False
                continue
            result = yield node
            if result.status == UNREACHABLE and not node.ignore_unreachable:
                return False
            if result.status == FAILED and not result.ignored:
                # what a rescue section reads, as in Ansible
                hr.host_facts["ansible_failed_task"] = {"name": node.name or node.action, "action": node.action}
                hr.host_facts["ansible_failed_result"] = result.public_data()
                return False
            for include in result.includes:
                hr_layer = dict(include.params)
                for role in {id(t.role): t.role for t in iter_tasks(include.nodes) if t.role}:
                    hr.include_layers[role] = hr_layer
                saved = dict(hr.host_facts)
                hr.host_facts.update(hr_layer)
                ok = yield from self._nodes(hr, include.nodes, play)
                for k in hr_layer:
                    if k in saved:
                        hr.host_facts[k] = saved[k]
                    else:
                        hr.host_facts.pop(k, None)
                if not ok:
                    return False
        return True

    def _meta(self, hr: HostRun, task: Task, play: Play) -> Generator[Task, TaskResult, bool]:
        what = str(task.args.get("_raw_params", "")).strip()
        if what == "flush_handlers":
            return (yield from self._flush_handlers(hr, play))
        if what in ("end_host", "end_play"):
            if self.task_runner.when_ok(hr, task):
                hr.stopped = True
            return True
        if what in ("noop", "clear_facts", "clear_host_errors", "refresh_inventory", "reset_connection", ""):
            if what == "clear_facts":
                hr.host_facts.clear()
            return True
        raise TaskFailed(f"unknown meta action {what!r}")

    def _flush_handlers(self, hr: HostRun, play: Play, force: bool = False) -> Generator[Task, TaskResult, bool]:
        if hr.failed and not force:
            return True
        notified, hr.notified = hr.notified, []
        if not notified:
            return True
        chosen: list[Task] = []
        seen_names: set[str] = set()
        for handler in reversed(play.handlers):  # of handlers with the same name, the last one runs
            names = {handler.name, *(handler.listen or ())}
            if handler.role and handler.name:
                names.add(f"{handler.role.name} : {handler.name}")
            if not names & set(notified) or (handler.name and handler.name in seen_names):
                continue
            seen_names.add(handler.name or "")
            chosen.append(handler)
        for handler in reversed(chosen):
            # a role included in a loop: its handler sees the variables of the last item, as in Ansible
            layer = hr.include_layers.get(id(handler.role)) if handler.role else None
            saved = {k: hr.host_facts[k] for k in layer or () if k in hr.host_facts}
            if layer:
                hr.host_facts.update(layer)
            result = yield handler
            for k in layer or ():
                if k in saved:
                    hr.host_facts[k] = saved[k]
                else:
                    hr.host_facts.pop(k, None)
            if result.status in (FAILED, UNREACHABLE) and not result.ignored:
                return False
        return True


def _batches(names: list[str], serial: Any) -> list[list[str]]:
    if not serial:
        return [names]
    sizes = serial if isinstance(serial, list) else [serial]
    out: list[list[str]] = []
    i = 0
    k = 0
    while i < len(names):
        s = sizes[min(k, len(sizes) - 1)]
        text = str(s).strip()
        n = math.ceil(len(names) * float(text[:-1]) / 100) if text.endswith("%") else int(text)
        n = max(1, n)
        out.append(names[i:i + n])
        i += n
        k += 1
    return out


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise Interrupted()


__all__ = ["OK", "SKIPPED", "Interrupted", "Runner"]
