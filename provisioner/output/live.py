"""The compact live view for a terminal: one line per task, redrawn in place while hosts finish.

At 50 hosts a no-op prints a dozen lines instead of 600: a task's line counts ok, changed,
failed, skipped and unreachable hosts with a progress bar, elapsed time and the latest progress
a host reported (`apt download 43% host07`); only changed, failed and unreachable hosts get a
line of their own (every host with -v), in the per-host format of `--output lines`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, TextIO

from provisioner.executor.results import CHANGED, FAILED, OK, SKIPPED, UNREACHABLE, TaskResult
from provisioner.output.events import Output
from provisioner.vault import redact

_COUNTS = ((OK, "green"), (CHANGED, "yellow"), (FAILED, "red"), (SKIPPED, "cyan"), (UNREACHABLE, "red"))
_BAR = 20
_TICK = 0.5  # seconds between redraws of a running task's line (its elapsed time)
_MIN_REDRAW = 0.05  # at most 20 redraws a second for hosts finishing or reporting progress


class CompactOutput(Output):
    """One line per task; in place on a terminal (`live`), else only each task's final line."""

    def __init__(self, verbosity: int = 0, stream: TextIO | None = None, quiet: bool = False,
                 show_skipped: bool = True, colour: bool | None = None, live: bool | None = None,
                 width: int | None = None, min_redraw: float = _MIN_REDRAW) -> None:
        super().__init__(verbosity, stream, quiet, show_skipped, colour)
        isatty = getattr(self.stream, "isatty", None)
        if live is None:  # redrawing in place needs a terminal that understands ESC [K
            live = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        self.live = live
        self.width = width  # None: the terminal's, asked at each redraw (it may be resized)
        self.min_redraw = min_redraw
        self._lock = threading.RLock()  # type: ignore[assignment]  # _print is called while drawing
        self._name: str | None = None
        self._others = 0
        self._total = 0
        self._counts: dict[str, int] = {}
        self._seen: dict[int, TaskResult] = {}  # by identity, held so that an id is not reused
        self._progress: dict[str, dict[str, Any]] = {}
        self._started = 0.0
        self._drawn = False
        self._drawn_at = 0.0
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # -- what the executor says ---------------------------------------------------------------
    def task_start(self, name: str, task: Any) -> None:
        with self._lock:
            if self._name is None:
                self._name = name
                self._draw()
            elif name != self._name:
                self._others += 1  # hosts of one step may be at different tasks (includes, handlers)

    def step_start(self, hosts: int) -> None:
        with self._lock:
            self._name, self._others, self._total = None, 0, hosts
            self._counts = {}
            self._seen = {}
            self._progress = {}
            self._started = time.monotonic()
        if self.live and not self.quiet:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="live-view", daemon=True)
            self._ticker.start()

    def host_finished(self, result: TaskResult) -> None:
        with self._lock:
            if self._seen.get(id(result)) is result:
                return
            self._seen[id(result)] = result
            key = "ignored" if result.status == FAILED and result.ignored else result.status
            self._counts[key] = self._counts.get(key, 0) + 1
            self._progress.pop(result.host, None)
            if self._shows_line(result):
                line = self.format_result(result)
                if line is not None:
                    self._print(line)
            else:
                self._draw(soon=sum(self._counts.values()) < self._total)

    def host_result(self, result: TaskResult) -> None:
        if self._name is None and not self._total:   # outside a step (nothing today): as a line
            super().host_result(result)
        else:
            self.host_finished(result)

    def host_progress(self, host: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._progress.pop(host, None)
            self._progress[host] = info  # the latest reporter last
            self._draw(soon=True)

    def step_end(self) -> None:
        self._stop_ticker()
        with self._lock:
            if self._name is not None and not self.quiet:
                self._clear()
                self.stream.write(redact(self._line(final=True)) + "\n")
                self.stream.flush()
            self._name, self._total = None, 0

    def interrupted(self) -> None:
        self.step_end()  # the running task's line stays, with what had finished
        super().interrupted()

    # -- drawing ------------------------------------------------------------------------------
    def _shows_line(self, result: TaskResult) -> bool:
        if self.verbosity >= 1:
            return True
        if result.status in (CHANGED, FAILED, UNREACHABLE):
            return True
        return result.action.rsplit(".", 1)[-1] == "debug" and result.status == OK  # what debug is for

    def _print(self, text: str, always: bool = False) -> None:
        if always or not self.quiet:
            with self._lock:
                self._clear()
                self.stream.write(redact(text) + "\n")
                self._draw()
                self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def _draw(self, soon: bool = False) -> None:
        """Redraw the task's line; `soon`: unless it was drawn in the last `min_redraw` s (200 hosts finishing
        at once, or reporting progress, need not cost 200 redraws: the ticker catches up)."""
        if not self.live or self.quiet or self._name is None:
            return
        now = time.monotonic()
        if soon and self._drawn and now - self._drawn_at < self.min_redraw:
            return
        self._drawn_at = now
        self.stream.write("\r" + redact(self._line(final=False, width=self.width or _width(self.stream))) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _tick(self) -> None:
        while not self._stop.wait(_TICK):
            with self._lock:
                self._draw()

    def _stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=2)
        self._ticker = None

    def _line(self, final: bool, width: int = 0) -> str:
        """`TASK [name] ok=3 changed=1 failed=0 skipped=0 unreachable=0 [####----] 4/50 12s apt 43% host07`"""
        parts: list[tuple[str, str]] = [(f"TASK [{self._name}]", "bold")]
        if self._others:
            parts.append((f"(+{self._others} other task{'s' if self._others > 1 else ''})", ""))
        for status, style in _COUNTS:
            n = self._counts.get(status, 0)
            parts.append((f"{status}={n}", style if n else ""))
        if self._counts.get("ignored"):
            parts.append((f"ignored={self._counts['ignored']}", "magenta"))
        done = sum(self._counts.values())
        elapsed = time.monotonic() - self._started
        if final:
            hosts = f"{done}/{self._total} hosts" if done < self._total else f"{done} host{'s' if done != 1 else ''}"
            parts.append((f"({hosts}, {_duration(elapsed)})", ""))
        else:
            filled = _BAR * done // self._total if self._total else 0
            parts.append(("[" + "#" * filled + "-" * (_BAR - filled) + "]", ""))
            parts.append((f"{done}/{self._total}", ""))
            parts.append((_duration(elapsed), ""))
            if self._progress:
                host, info = next(reversed(self._progress.items()))
                more = f" (+{len(self._progress) - 1})" if len(self._progress) > 1 else ""
                parts.append((_describe(info, host) + more, "magenta"))  # +N: other hosts reporting
        return self._fit(parts, width)

    def _fit(self, parts: list[tuple[str, str]], width: int) -> str:
        """The parts joined by spaces, coloured, cut to the terminal's width (a wrapped line
        could not be redrawn in place)."""
        out: list[str] = []
        used = 0
        for text, style in parts:
            room = width - used - (1 if out else 0) - 1 if width else len(text)
            if room <= 0:
                break
            if len(text) > room:
                text = text[:max(0, room - 1)] + "…"
            out.append(self.style(text, style))
            used += len(text) + (1 if len(out) > 1 else 0)
        return " ".join(out)


def _describe(info: dict[str, Any], host: str) -> str:
    """`apt download 43% host07`: what a host last reported."""
    tool = str(info.get("tool", ""))
    phase = str(info.get("phase", ""))
    percent = info.get("percent")
    shown = f"{percent:.0f}%" if isinstance(percent, (int, float)) else str(info.get("text", ""))[:30]
    return " ".join(p for p in (tool, phase, shown, host) if p)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80
