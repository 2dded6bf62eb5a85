"""`provision status`: every host's last `provision pull` result, read over SSH, in one table.

One agent session per host and one request in it (the agent's `get` of the state file, sent with
the code bundle): no facts gathered, nothing run, nothing changed on the host.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from typing import Any

from provisioner.pull import DEFAULT_STATE_DIR, STATE_FILE

STATE_VAR = "provision_pull_state_file"  # a host's own state file, when its pull uses another --state-dir
COLUMNS = ("host", "last run", "age", "commit", "result", "ok", "changed", "failed", "rc")


def collect(runner: Any, names: list[str], default_path: str) -> dict[str, dict[str, Any]]:
    """{host: the state JSON, or {"error": why}} for the named hosts, in parallel (-f)."""
    def read(name: str) -> tuple[str, dict[str, Any]]:
        session = None
        try:
            hvars = runner.variables_for(name)
            path = str(hvars.get(STATE_VAR, default_path))
            session = runner.agent_session(name, hvars)
            reply = session.start({"op": "get", "path": path})
        except Exception as exc:  # unreachable, or a setting that does not resolve: this host only
            return name, {"error": f"unreachable: {exc}"}
        finally:
            if session is not None:
                session.close()
        if reply.get("failed"):
            return name, {"error": f"never pulled ({reply.get('msg', '')})"}
        try:
            state = json.loads(base64.b64decode(reply["data"]))
        except ValueError as exc:
            return name, {"error": f"unreadable state file {path}: {exc}"}
        return name, state if isinstance(state, dict) else {"error": f"unreadable state file {path}"}

    return dict(runner._parallel(names, read))


def rows(states: dict[str, dict[str, Any]], now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per host, in natural order (host2 before host10)."""
    now = now or datetime.now(timezone.utc)
    out = []
    for name in sorted(states, key=natural_key):
        state = states[name]
        if "error" in state:
            out.append({"host": name, "result": state["error"]})
            continue
        counts = state.get("counts") or {}
        finished = state.get("finished") or state.get("started")
        out.append({
            "host": name, "last run": finished, "age": _age(finished, now),
            "commit": str(state.get("commit") or "")[:12], "result": state.get("result"),
            "ok": counts.get("ok"), "changed": counts.get("changed"), "failed": counts.get("failed"),
            "rc": state.get("exit_code"), "state": state,
        })
    return out


def format_table(table: list[dict[str, Any]]) -> str:
    """Aligned columns; a host without a result gets its reason after its name."""
    def cells(row: dict[str, Any]) -> list[str]:
        return ["-" if row.get(c) is None else str(row[c]) for c in COLUMNS]

    full = [cells(row) for row in table if "last run" in row]
    widths = [max([len(c)] + [len(r[i]) for r in full]) for i, c in enumerate(COLUMNS)]
    widths[0] = max([widths[0]] + [len(row["host"]) for row in table])
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    for row in table:
        if "last run" in row:
            lines.append("  ".join(v.ljust(w) for v, w in zip(cells(row), widths)).rstrip())
        else:
            lines.append(f"{row['host'].ljust(widths[0])}  {row['result']}")
    return "\n".join(lines)


def healthy(row: dict[str, Any]) -> bool:
    return "last run" in row and row.get("rc") == 0


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _age(when: str | None, now: datetime) -> str:
    if not when:
        return "-"
    try:
        seconds = int((now - datetime.fromisoformat(when)).total_seconds())
    except (ValueError, TypeError):
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


DEFAULT_STATE_FILE = str(DEFAULT_STATE_DIR / STATE_FILE)
