"""The run's settings and each host's state during a run: one object each, passed down."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from provisioner.connection.agent_client import AgentSession
from provisioner.executor.results import HostStats
from provisioner.load.inventory import Host, Inventory

if TYPE_CHECKING:
    from provisioner.executor.layers import VarLayers
    from provisioner.executor.results import TaskResult
    from provisioner.load.playbook import Loader, Play
    from provisioner.template import Templar


@dataclass
class RunOptions:
    """Everything the command line decided; never changed during the run."""

    check: bool = False
    diff: bool = False
    forks: int = 50
    limit: str | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: dict[str, Any] = field(default_factory=dict)
    verbosity: int = 0
    become_password: str | None = None
    known_hosts: list[Path] = field(default_factory=list)
    accept_new_host_keys: bool = False
    insecure_no_host_key_check: bool = False
    ssh_config: Path | None = None  # None: ~/.ssh/config when it exists
    connect_timeout: float = 10.0
    persist: float = 0.0    # seconds a daemon keeps each host's agent after the run (connection/persist.py)
    report_path: Path | None = None
    # What-if facts (executor/fake_facts.py): --facts-from's content; fake facts are used only in
    # check mode (plan, --check), and never by `provision facts`, which shows the gathered ones.
    facts_from: dict[str, Any] | None = None
    use_fake_facts: bool = True


@dataclass
class HostRun:
    """One host's life in a run: its connection, facts, registered variables and counters."""

    host: Host
    session: AgentSession | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    host_facts: dict[str, Any] = field(default_factory=dict)  # set_fact / include_vars / register
    registered: dict[str, Any] = field(default_factory=dict)
    notified: list[str] = field(default_factory=list)
    include_layers: dict[int, dict[str, Any]] = field(default_factory=dict)  # id(role) -> last include's vars
    stats: HostStats = field(default_factory=HostStats)
    unreachable: bool = False
    failed: bool = False
    stopped: bool = False  # ended by any_errors_fatal, max_fail_percentage or meta: end_host

    @property
    def name(self) -> str:
        return self.host.name


class RunContext(Protocol):
    """What a task (executor/task.py) and, through its ActionContext, a controller action may use of
    the run they belong to. Runner implements it; the rest of the Runner (output, the worker pool,
    the strategy, the connections) is not theirs to touch."""

    @property
    def templar(self) -> Templar: ...

    @property
    def options(self) -> RunOptions: ...

    @property
    def loader(self) -> Loader: ...  # dynamic includes load their task files

    @property
    def play(self) -> Play | None: ...  # the play running now: its roles and handlers

    @property
    def hosts(self) -> Mapping[str, HostRun]: ...  # run_once shares a result, delegate_to a session

    @property
    def playbook_dir(self) -> Path: ...  # where relative local files are looked for

    def base_layers(self, hr: HostRun, play: Play | None) -> VarLayers:
        """The host's variable layers in the play, by name; a task adds its own by name."""
        ...

    def vars_file(self, path: Path) -> Any:
        """A YAML vars file's data, parsed once per run."""
        ...

    def connect(self, hr: HostRun) -> TaskResult:
        """(Re)connect to the host and start its agent (reboot, wait_for_connection)."""
        ...

    def local_session(self) -> AgentSession:
        """The controller itself, for `delegate_to: localhost`."""
        ...


class HostVars(Mapping[str, Any]):
    """`hostvars[name]`: another host's variables, resolved when read."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def __getitem__(self, name: str) -> Any:
        return self._runner.variables_for(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runner.inventory.hosts)

    def __len__(self) -> int:
        return len(self._runner.inventory.hosts)


def fact_vars(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts as Ansible exposes them: `ansible_facts.x` and `ansible_x`."""
    out: dict[str, Any] = {f"ansible_{k}": v for k, v in facts.items()}
    out["ansible_facts"] = facts
    if "hostname" in facts:
        out["ansible_nodename"] = facts["hostname"]
    return out


__all__ = ["HostRun", "HostVars", "Inventory", "RunContext", "RunOptions", "fact_vars"]
