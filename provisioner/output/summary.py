"""Tables printed after the recap, from results that carry them (the GPU verification)."""

from __future__ import annotations

from typing import Any

from rich.console import Console


def print_summaries(results: list[Any], console: Console) -> None:
    rows = [(r.host, r.data.get("gpu_verify")) for r in results
            if r.action == "gpu_verify" and isinstance(r.data.get("gpu_verify"), dict) and not r.no_log]
    if not rows:
        return
    try:
        from provisioner.output.gpu_table import render_gpu_table
    except ImportError:
        return
    console.print()
    console.print(render_gpu_table(rows))
