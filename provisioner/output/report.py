"""The JSON report: every task result of every host, the recap and the timings."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from provisioner import __version__


def build_report(runner: Any, elapsed: float) -> dict[str, Any]:
    return {
        "tool": "provision", "version": __version__,
        "playbook": str(runner.playbook.path), "inventory": runner.inventory.source,
        "check_mode": runner.options.check, "elapsed_s": round(elapsed, 3),
        "interrupted": runner.interrupted.is_set(),
        "recap": {name: hr.stats.as_dict() for name, hr in sorted(runner.hosts.items())},
        "results": [r.to_json() for r in runner.results],
    }


def write_report(path: Path, runner: Any, elapsed: float) -> None:
    """Written atomically, so a reader never sees half a report."""
    data = json.dumps(build_report(runner, elapsed), indent=2, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)
