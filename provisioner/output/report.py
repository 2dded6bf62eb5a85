"""The JSON report: every task result of every host, the recap and the timings."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.vault import keyring


def build_report(runner: Any, elapsed: float) -> dict[str, Any]:
    return {
        "tool": "provision", "version": __version__,
        "playbook": str(runner.playbook.path), "inventory": runner.inventory.source,
        "check_mode": runner.options.check, "elapsed_s": round(elapsed, 3),
        "interrupted": runner.interrupted.is_set(),
        "recap": {name: hr.stats.as_dict() for name, hr in sorted(runner.hosts.items())},
        "results": [r.to_json() for r in runner.results],
    }


def redact_json(text: str) -> str:
    """JSON text with every decrypted vault value replaced, in the escaped form JSON gives it."""
    return keyring().redact(text, escape=lambda s: json.dumps(s)[1:-1])


def write_report(path: Path, runner: Any, elapsed: float) -> None:
    """Written atomically, so a reader never sees half a report; decrypted vault values are replaced."""
    data = redact_json(json.dumps(build_report(runner, elapsed), indent=2, default=str))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)
