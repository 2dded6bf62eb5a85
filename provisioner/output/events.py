"""Live progress and the recap, as Ansible users read them; output never decides anything."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from provisioner.executor.results import CHANGED, FAILED, OK, SKIPPED, UNREACHABLE, HostStats, TaskResult
from provisioner.vault import redact

if TYPE_CHECKING:
    from rich.console import Console

    from provisioner.load.playbook import Play, Task

_STYLE = {OK: "green", CHANGED: "yellow", FAILED: "red", SKIPPED: "cyan", UNREACHABLE: "bold red"}
_SGR = {"bold": "1", "red": "31", "green": "32", "yellow": "33", "magenta": "35", "cyan": "36"}


def use_colour(stream: TextIO) -> bool:
    """Colour on a terminal unless NO_COLOR is set or TERM=dumb; FORCE_COLOR forces it."""
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Output:
    """Prints one line per host result as it arrives, under a header per task.

    Plain writes with ANSI colour on a terminal: the live lines and the recap need no more,
    and rich (~15 ms to import, more per line) is loaded only for the tables after the recap.
    """

    def __init__(self, verbosity: int = 0, stream: TextIO | None = None, quiet: bool = False,
                 show_skipped: bool = True, colour: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream) if colour is None else colour
        self.verbosity = verbosity
        self.quiet = quiet
        self.show_skipped = show_skipped
        self._lock = threading.Lock()
        self._last_task: str | None = None
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """A rich console on the same stream, for the tables printed after the recap."""
        if self._console is None:
            from rich.console import Console
            self._console = Console(file=self.stream, highlight=False, soft_wrap=True)
        return self._console

    def style(self, text: str, style: str) -> str:
        if not self.colour or not style:
            return text
        codes = ";".join(_SGR[word] for word in style.split())
        return f"\x1b[{codes}m{text}\x1b[0m"

    def _print(self, text: str, always: bool = False) -> None:
        if always or not self.quiet:
            text = redact(text)  # a decrypted vault value never reaches the terminal
            with self._lock:
                self.stream.write(text + "\n")
                self.stream.flush()

    def play_start(self, play: Play, hosts: list[str]) -> None:
        self._last_task = None
        self._print("\n" + self.style(f"PLAY [{play.name}]", "bold")
                    + f" ({len(hosts)} host{'s' if len(hosts) != 1 else ''})")

    def task_start(self, name: str, task: Task | None) -> None:
        if name != self._last_task:
            self._last_task = name
            self._print(self.style(f"TASK [{name}]", "bold"))

    # Events the live view (output/live.py) uses; the per-host lines need none of them.
    def step_start(self, hosts: int) -> None:
        """A step of the linear strategy begins: `hosts` hosts each run one task."""

    def host_finished(self, result: TaskResult) -> None:
        """A host's task ended (from its worker thread), before the step's results are recorded."""

    def host_progress(self, host: str, info: dict[str, Any]) -> None:
        """A module on `host` says how far it is (apt's percentage...)."""

    def step_end(self) -> None:
        """Every host of the step has finished and its result was recorded."""

    def host_result(self, result: TaskResult) -> None:
        line = self.format_result(result)
        if line is not None:
            self._print(line)

    def format_result(self, result: TaskResult) -> str | None:
        """A host's result as Ansible's per-host line (with -v/-vv details and diffs), None when hidden."""
        if self.quiet or (result.status == SKIPPED and not self.show_skipped):
            return None
        status = result.status
        label = status
        if status == FAILED and result.ignored:
            label = "failed (ignored)"
        line = self.style(f"{label}: [{result.host}]", _STYLE.get(status, ""))
        items = result.data.get("results") if isinstance(result.data.get("results"), list) else None
        if items and not result.no_log and self.verbosity < 2:
            shown = ", ".join(str(r.get("_label", r.get("item")))[:40] for r in items[:6])
            more = f" +{len(items) - 6}" if len(items) > 6 else ""
            line += f" (items: {shown}{more})"
        if status in (FAILED, UNREACHABLE) or (result.msg and self.verbosity >= 1):
            msg = "censored (no_log)" if result.no_log else result.msg
            if status == FAILED and not result.no_log and items:
                bad = [r for r in items if r.get("failed")]
                if bad:
                    msg = f"item {bad[0].get('_label', bad[0].get('item'))!s}: {bad[0].get('msg', '')}"
            if status == FAILED and not result.no_log and result.data.get("stderr"):
                msg = f"{msg}: {str(result.data['stderr']).strip()[-400:]}"
            if msg:
                line += f" => {msg}"
        if self.verbosity >= 1 and result.action == "debug" and not result.no_log:
            shown_data = {k: v for k, v in result.data.items() if k not in ("changed", "failed", "msg")}
            if "msg" in result.data:
                line += f"\n  {result.data['msg']}"
            elif shown_data:
                line += f"\n  {json.dumps(shown_data, default=str)}"
        elif result.action == "debug" and not result.no_log and status == OK:
            m = result.data.get("msg")
            if m is None:
                m = {k: v for k, v in result.data.items() if k not in ("changed", "failed", "msg")}
            line += f" => {m}"
        if self.verbosity >= 2 and not result.no_log:
            line += f"\n  {json.dumps(result.public_data(), default=str)[:4000]}"
        for d in result.diff if not result.no_log else []:
            line += "\n" + render_diff(d)
        return line

    def note(self, text: str) -> None:
        self._print(self.style(text, "magenta"))

    def interrupted(self) -> None:
        self._print(self.style("Interrupted: stopping now; the recap shows what was done.", "bold red"))

    def recap(self, stats: dict[str, HostStats], elapsed: float) -> None:
        self._print("\n" + self.style("PLAY RECAP", "bold"), always=True)
        width = max((len(h) for h in stats), default=4) + 2
        for host in sorted(stats, key=natural_key):
            s = stats[host]
            colour = "red" if s.failed or s.unreachable else "yellow" if s.changed else "green"
            # as Ansible's default callback: a count is coloured only when it is not 0
            counts = " ".join(self.style(f"{word}={n:<4}", style if n else "")
                              for word, n, style in (("ok", s.ok, "green"), ("changed", s.changed, "yellow"),
                                                     ("unreachable", s.unreachable, "red"),
                                                     ("failed", s.failed, "red"), ("skipped", s.skipped, "cyan"),
                                                     ("rescued", s.rescued, "green"),
                                                     ("ignored", s.ignored, "magenta")))
            self._print(f"{self.style(host.ljust(width), colour)}: {counts}", always=True)
        total_changed = sum(s.changed for s in stats.values())
        verdict = "nothing changed" if total_changed == 0 else f"{total_changed} change(s)"
        self._print(f"{len(stats)} host(s), {verdict}, in {elapsed:.2f}s", always=True)


def natural_key(name: str) -> list[Any]:
    """Sort key for host names as people count: host2 before host10 (numbers compared as numbers)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def render_diff(diff: dict[str, Any]) -> str:
    import difflib
    before = diff.get("before", "")
    after = diff.get("after", "")
    path = diff.get("path") or diff.get("before_header") or ""
    if not isinstance(before, str) or not isinstance(after, str):
        before, after = json.dumps(before, indent=1, default=str), json.dumps(after, indent=1, default=str)
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"before: {path}", tofile=f"after: {path}")
    return "".join(lines).rstrip("\n")

