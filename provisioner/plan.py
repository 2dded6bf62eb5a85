"""`provision plan`: per host, the GPU stack versions and methods a playbook would use."""

from __future__ import annotations

from typing import Any


def show_plan(playbook: Any, inventory: Any, options: Any, loader: Any) -> int:
    raise NotImplementedError("provision plan is being written (issue 4)")
