"""Tables printed after the recap, from results that carry them (the GPU verification)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def gpu_results(results: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(host, the module's whole result) for each host's last gpu_verify run, in first-seen host order."""
    last: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.action.rsplit(".", 1)[-1] == "gpu_verify" and isinstance(r.data.get("gpu_verify"), dict) \
                and not r.no_log:
            last[r.host] = r.data
    return list(last.items())


def gpu_rows(results: list[Any]) -> list[Any]:
    """Table rows; a host whose GPU checks passed reads 'ok' even when other checklist lines failed
    (rustc missing...): those stay in its notes, as the module's verdict decides the status."""
    found = gpu_results(results)
    if not found:  # most runs: no need to import the table code (rich.table) at all
        return []
    from provisioner.output.gpu_table import gpu_rows_from_result

    return [row for host, data in found
            for row in gpu_rows_from_result(host, data["gpu_verify"], bool(data.get("gpu_ok")))]


def print_summaries(results: list[Any], console: Console | Callable[[], Console]) -> None:
    """The tables after the recap; `console` may be a factory, called only when there is one."""
    rows = gpu_rows(results)
    if not rows:
        return
    if callable(console):
        console = console()
    from provisioner.output.gpu_table import render_gpu_table, render_gpu_text

    console.print()
    if console.is_terminal:
        console.print(render_gpu_table(rows))
    else:  # a log or a pipe: fixed-width text that survives copying into an issue
        console.print("GPU verification", markup=False, highlight=False)
        console.print(render_gpu_text(rows), markup=False, highlight=False, soft_wrap=True)
