"""The per-GPU summary shown after the recap: did each GPU of each host pass, and how fast is it.

Input is what `provisioner/gpu/verify.py --json` printed on each host, as (host name, parsed JSON) pairs;
None stands for a host that returned nothing (unreachable, or the program could not be started).
Pure functions only: the engine decides when to print, this module decides what it looks like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

KERNELS = ("naive", "tiled", "cublas")
# Per-GPU checks that fail the GPU's row; the other per-GPU lines (ECC, link, Xid, burn-in...) only warn.
GPU_FAILING = ("matmul_exact_2048", "matmul_vs_cublas")


@dataclass(frozen=True)
class GpuRow:
    """One GPU's line: its host, model, how many checks passed, the GFLOP/s at the largest n, what to read."""

    host: str
    gpu: str
    checks_passed: int
    checks_total: int
    n: int | None
    naive_gflops: float | None
    tiled_gflops: float | None
    cublas_gflops: float | None
    status: str  # "ok", "warning" (a health line failed), "failed", "cannot run" or "no result"
    notes: tuple[str, ...]
    index: int | None = None   # the CUDA device number on its host
    bus_id: str | None = None  # PCI bus id, e.g. 0000:3b:00.0
    # The Rust matmul in ms (rust_project's cargo build, else verify.py's own single-thread loop), on the
    # host's first row; the CPU ones are there on a GPU-less build box too.
    rust_cpu_ms: float | None = None
    rust_rayon_ms: float | None = None
    rust_gpu_ms: float | None = None


def _gpu_name(result: Mapping[str, Any]) -> str:
    device = result.get("device") or {}
    gpus = result.get("gpus") or []
    name = device.get("name") or (gpus[0].get("name") if gpus else None) or "-"
    return f"{name} (+{len(gpus) - 1} more)" if len(gpus) > 1 else name


def _status(result: Mapping[str, Any]) -> str:
    if result.get("ok"):
        return "ok"
    return "cannot run" if result.get("exit_code") == 2 else "failed"


def gpu_row_from_result(host: str, result: Mapping[str, Any] | None) -> GpuRow:
    """Summarise a host's verify result as ONE row (its first GPU); see gpu_rows_from_result for all."""
    return gpu_rows_from_result(host, result)[0]


def _device_row(host: str, result: Mapping[str, Any], device: Mapping[str, Any] | None,
                first: bool, gpu_ok: bool = False) -> GpuRow:
    """One GPU's row: the host's checks plus the GPU's own (checks carry "gpu": index), its perf figures."""
    info = (device or {}).get("device") or {}
    index = info.get("index")
    all_checks = [c for c in result.get("checks") or [] if c.get("ok") is not None]
    checks = [c for c in all_checks if c.get("gpu") in (None, index)]
    perf = (device or {}).get("perf") if device else result.get("perf")
    gpu_perf = [p for p in perf or [] if p.get("kernel") in KERNELS]
    n = max((p["n"] for p in gpu_perf), default=None)
    at_n = {p["kernel"]: p.get("gflops") for p in gpu_perf if p["n"] == n}
    own_failed = [c for c in checks if c.get("gpu") is not None and c["ok"] is False]
    status = _status(result)
    if gpu_ok and status == "failed":  # the module's verdict: only checks it does not require failed (rustc...)
        status = "ok"
    if any(c["name"] in GPU_FAILING for c in own_failed):
        status = "failed"
    elif own_failed and status == "ok":
        status = "warning"
    notes: list[str] = [f"{c['name']}: {c.get('detail')} -- fix: {c.get('fix')}" for c in own_failed]
    diagnosis = result.get("diagnosis")
    if first and diagnosis:
        notes.append(f"[{diagnosis.get('code')}] {diagnosis.get('reason')} -- fix: {diagnosis.get('fix')}")
    rust: dict[str, float] = {}
    if first:
        notes.extend(f"warning: {w}" for w in result.get("warnings") or [])
        rust = _rust_ms(result)
        rust_n = {p.get("n") for p in result.get("perf") or [] if p.get("kernel") in RUST_KERNELS}
        if rust_n - {1024}:
            notes.append("Rust timings at n=" + ", ".join(str(n) for n in sorted(rust_n)))
    return GpuRow(
        host=host,
        gpu=(info.get("name") or _gpu_name(result)) if device else _gpu_name(result),
        checks_passed=sum(1 for c in checks if c["ok"]),
        checks_total=len(checks),
        n=n,
        naive_gflops=at_n.get("naive"),
        tiled_gflops=at_n.get("tiled"),
        cublas_gflops=at_n.get("cublas"),
        status=status,
        notes=tuple(dict.fromkeys(notes)),
        index=index,
        bus_id=info.get("pci_bus_id"),
        rust_cpu_ms=rust.get("rust_plain", rust.get("rust_cpu_1thread")),
        rust_rayon_ms=rust.get("rust_rayon"),
        rust_gpu_ms=rust.get("rust_gpu"),
    )


RUST_KERNELS = ("rust_plain", "rust_cpu_1thread", "rust_rayon", "rust_gpu")
RUST_HEADERS = ("Rust CPU ms", "Rust rayon ms", "Rust GPU ms")


def _rust_ms(result: Mapping[str, Any]) -> dict[str, float]:
    """kernel -> the first timing of that kernel (one user's project; they all ran on the same box)."""
    out: dict[str, float] = {}
    for p in result.get("perf") or []:
        if p.get("kernel") in RUST_KERNELS and p.get("ms") is not None:
            out.setdefault(p["kernel"], float(p["ms"]))
    return out


def gpu_rows_from_result(host: str, result: Mapping[str, Any] | None, gpu_ok: bool = False) -> list[GpuRow]:
    """One row per GPU the host tested ("devices"); results without them give one row for the host.
    `gpu_ok`: the gpu_verify module's verdict (its required checks passed)."""
    if not result:
        return [GpuRow(host, "-", 0, 0, None, None, None, None, "no result", ("verify.py returned no JSON",))]
    devices = [d for d in result.get("devices") or [] if isinstance(d, dict)]
    if not devices:
        return [_device_row(host, result, None, True, gpu_ok)]
    return [_device_row(host, result, d, i == 0, gpu_ok) for i, d in enumerate(devices)]


def gpu_rows_from_results(results: Iterable[tuple[str, Mapping[str, Any] | None]]) -> list[GpuRow]:
    """One row per GPU, hosts in the order given (the engine passes inventory order)."""
    return [row for host, result in results for row in gpu_rows_from_result(host, result)]


def _gflops(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _rust_columns(rows: Sequence[GpuRow]) -> list[int]:
    """Which of RUST_HEADERS to show: those some host ran."""
    values = [(r.rust_cpu_ms, r.rust_rayon_ms, r.rust_gpu_ms) for r in rows]
    return [i for i in range(len(RUST_HEADERS)) if any(v[i] is not None for v in values)]


def _headers(rows: Sequence[GpuRow]) -> list[str]:
    return list(HEADERS[:-1]) + [RUST_HEADERS[i] for i in _rust_columns(rows)] + [HEADERS[-1]]


def _cells(row: GpuRow, rust_columns: Sequence[int] = ()) -> list[str]:
    rust = (row.rust_cpu_ms, row.rust_rayon_ms, row.rust_gpu_ms)
    return [
        row.host,
        "-" if row.index is None else str(row.index),
        row.gpu,
        row.bus_id or "-",
        f"{row.checks_passed}/{row.checks_total}",
        "-" if row.n is None else str(row.n),
        _gflops(row.naive_gflops),
        _gflops(row.tiled_gflops),
        _gflops(row.cublas_gflops),
        *(_ms(rust[i]) for i in rust_columns),
        row.status,
    ]


HEADERS = ("host", "#", "GPU", "bus id", "checks", "n", "naive GFLOP/s", "tiled GFLOP/s", "cuBLAS GFLOP/s", "status")
_STATUS_STYLE = {"ok": "green", "warning": "yellow", "failed": "red", "cannot run": "red", "no result": "yellow"}


def render_gpu_table(rows: Sequence[GpuRow]) -> Table:
    """The rich table the engine prints after the recap; notes (warnings, diagnosis) in the last column."""
    table = Table(title="GPU verification", title_justify="left", show_lines=False)
    columns = _rust_columns(rows)
    for header in _headers(rows):
        numeric = header in ("#", "checks", "n") or header.endswith(("GFLOP/s", " ms"))
        table.add_column(header, justify="right" if numeric else "left", no_wrap=header != "GPU")
    table.add_column("warnings / diagnosis", overflow="fold")
    for row in rows:
        # Text, not str: a diagnosis such as "[no_gpu] ..." must not be read as rich markup.
        cells = [Text(cell) for cell in _cells(row, columns)]
        cells[-1].stylize(_STATUS_STYLE.get(row.status, ""))
        cells.append(Text("\n".join(row.notes)))
        table.add_row(*cells)
    return table


def render_gpu_text(rows: Sequence[GpuRow]) -> str:
    """Plain fixed-width text of the same table, notes listed below it: for an issue note or a log."""
    columns = _rust_columns(rows)
    headers = _headers(rows)
    lines = [headers] + [_cells(row, columns) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    numeric = {1, 4} | set(range(5, len(headers) - 1))
    out = [
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    ]
    notes = [f"  {row.host}: {note}" for row in rows for note in row.notes]
    if notes:
        out += ["", "notes:"] + notes
    return "\n".join(out)
