"""What a task did on a host, as a small frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.load.playbook import Node

OK, CHANGED, FAILED, SKIPPED, UNREACHABLE = "ok", "changed", "failed", "skipped", "unreachable"
CENSORED = "the output has been hidden due to 'no_log: true' for this result"


@dataclass(frozen=True)
class Include:
    """Tasks that an include (include_tasks, include_role) brought in for a host: the host runs them
    next, with `params` (the include's parameters, a loop item) among its variables meanwhile."""

    nodes: list[Node]
    params: dict[str, Any]


@dataclass(frozen=True)
class TaskResult:
    host: str
    task: str
    action: str
    status: str
    msg: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    diff: list[dict[str, Any]] = field(default_factory=list)
    ignored: bool = False
    duration: float = 0.0
    no_log: bool = False
    position: str = ""
    handler: bool = False
    includes: tuple[Include, ...] = ()  # one per included file (per loop item), in order

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def public_data(self) -> dict[str, Any]:
        """The result as it may be shown or written: no_log results are censored."""
        if self.no_log:
            return {"censored": CENSORED, "changed": self.status == CHANGED}
        return dict(self.data)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "host": self.host, "task": self.task, "action": self.action, "status": self.status,
            "msg": CENSORED if self.no_log and self.msg else self.msg, "ignored": self.ignored,
            "duration_s": round(self.duration, 4), "position": self.position,
            "result": self.public_data(),
        }
        if self.diff and not self.no_log:
            out["diff"] = self.diff
        if self.handler:
            out["handler"] = True
        return out


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0
    rescued: int = 0
    ignored: int = 0

    def count(self, result: TaskResult) -> None:
        if result.status == CHANGED:
            self.changed += 1
            self.ok += 1
        elif result.status == OK:
            self.ok += 1
        elif result.status == SKIPPED:
            self.skipped += 1
        elif result.status == UNREACHABLE:
            self.unreachable += 1
        elif result.status == FAILED:
            if result.ignored:
                self.ignored += 1
            else:
                self.failed += 1

    def as_dict(self) -> dict[str, int]:
        return dict(ok=self.ok, changed=self.changed, unreachable=self.unreachable, failed=self.failed,
                    skipped=self.skipped, rescued=self.rescued, ignored=self.ignored)
