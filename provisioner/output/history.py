"""Every GPU verification result, per host and GPU, kept in one SQLite file on the controller.

Where: $PROVISION_HISTORY if set, else $XDG_STATE_HOME/provision/history.sqlite, else
~/.local/state/provision/history.sqlite (`provision apply --history FILE` overrides both). One row per
(run, host, GPU); a GPU is known by its UUID where verify.py found one, else by host + PCI bus id.
A GPU whose cuBLAS figure falls more than 20% below the median of its own earlier runs is flagged, and
so is a GPU that a host had in its previous run and lacks now.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGRESSION = 0.8  # below 80% of the GPU's own median of earlier runs
SCHEMA = """
CREATE TABLE IF NOT EXISTS gpu_runs (
    run_at REAL NOT NULL,            -- seconds since the epoch, the controller's clock
    host TEXT NOT NULL,
    gpu_key TEXT NOT NULL,           -- UUID, or host/bus id when no UUID was reported
    bus_id TEXT, uuid TEXT, idx INTEGER, model TEXT,
    status TEXT,                     -- ok | failed | cannot run
    cublas_gflops REAL, d2d_gbs REAL, h2d_gbs REAL, d2h_gbs REAL, burn_tflops REAL,
    result TEXT                      -- the device's JSON, for what this table has no column for
);
CREATE INDEX IF NOT EXISTS gpu_runs_key ON gpu_runs (gpu_key, run_at);
CREATE INDEX IF NOT EXISTS gpu_runs_host ON gpu_runs (host, run_at);
"""


def default_path() -> Path:
    """The documented place: $PROVISION_HISTORY, else the XDG state directory."""
    if os.environ.get("PROVISION_HISTORY"):
        return Path(os.environ["PROVISION_HISTORY"])
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "provision" / "history.sqlite"


def open_history(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path))
    db.executescript(SCHEMA)
    return db


@dataclass(frozen=True)
class GpuRecord:
    """One GPU of one host in one run, as the history keeps it."""

    host: str
    gpu_key: str
    bus_id: str | None
    uuid: str | None
    index: int | None
    model: str | None
    status: str
    cublas_gflops: float | None
    d2d_gbs: float | None
    h2d_gbs: float | None
    d2h_gbs: float | None
    burn_tflops: float | None
    device: Mapping[str, Any]


def _largest(perf: Iterable[Mapping[str, Any]], kernel: str) -> float | None:
    rows = [p for p in perf if p.get("kernel") == kernel and p.get("gflops") is not None]
    return max(rows, key=lambda p: p.get("n", 0))["gflops"] if rows else None


def records_from_result(host: str, result: Mapping[str, Any]) -> list[GpuRecord]:
    """The GPUs verify.py tested on a host (none when it could not run)."""
    status = "ok" if result.get("ok") else ("cannot run" if result.get("exit_code") == 2 else "failed")
    out = []
    for dev in result.get("devices") or []:
        info, bw = dev.get("device") or {}, dev.get("bandwidth") or {}
        bus, uuid = info.get("pci_bus_id"), info.get("uuid")
        out.append(GpuRecord(
            host=host, gpu_key=uuid or f"{host}/{bus or info.get('index')}", bus_id=bus, uuid=uuid,
            index=info.get("index"), model=info.get("name"), status=status,
            cublas_gflops=_largest(dev.get("perf") or [], "cublas"), d2d_gbs=bw.get("d2d_gbs"),
            h2d_gbs=bw.get("h2d_gbs"), d2h_gbs=bw.get("d2h_gbs"),
            burn_tflops=(dev.get("burn_in") or {}).get("tflops"), device=dev))
    return out


def flags_for(db: sqlite3.Connection, host: str, records: list[GpuRecord], before: float) -> list[str]:
    """What this run shows against the history before it: cuBLAS regressions, GPUs gone from the host."""
    flags = []
    for rec in records:
        earlier = [r[0] for r in db.execute(
            "SELECT cublas_gflops FROM gpu_runs WHERE gpu_key = ? AND run_at < ? AND cublas_gflops IS NOT NULL",
            (rec.gpu_key, before))]
        if earlier and rec.cublas_gflops is not None:
            median = statistics.median(earlier)
            if rec.cublas_gflops < REGRESSION * median:
                flags.append(f"{host} GPU {rec.index} ({rec.bus_id}): cuBLAS {rec.cublas_gflops / 1000:.1f} TFLOP/s "
                             f"is {100 * (1 - rec.cublas_gflops / median):.0f}% below its median of "
                             f"{median / 1000:.1f} over {len(earlier)} earlier run(s)")
    last = db.execute("SELECT MAX(run_at) FROM gpu_runs WHERE host = ? AND run_at < ?", (host, before)).fetchone()[0]
    if last is not None:
        now = {r.gpu_key for r in records}
        for key, bus, idx, model in db.execute(
                "SELECT gpu_key, bus_id, idx, model FROM gpu_runs WHERE host = ? AND run_at = ?", (host, last)):
            if key not in now:
                flags.append(f"{host}: GPU {idx} ({model}, {bus}, {key}) was there in the previous run and is gone")
    return flags


def record(db: sqlite3.Connection, host: str, result: Mapping[str, Any], run_at: float) -> list[str]:
    """Store this host's GPUs for the run at `run_at`, and return the flags against earlier runs."""
    records = records_from_result(host, result)
    flags = flags_for(db, host, records, run_at)
    with db:
        db.executemany(
            "INSERT INTO gpu_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(run_at, r.host, r.gpu_key, r.bus_id, r.uuid, r.index, r.model, r.status, r.cublas_gflops,
              r.d2d_gbs, r.h2d_gbs, r.d2h_gbs, r.burn_tflops, json.dumps(r.device, default=str)) for r in records])
    return flags


def series(db: sqlite3.Connection, host: str) -> dict[str, list[tuple[float, float]]]:
    """Per GPU of a host ('GPU 0 0000:3b:00.0'), its (run_at, cuBLAS GFLOP/s) over time, oldest first."""
    out: dict[str, list[tuple[float, float]]] = {}
    for at, idx, bus, gflops in db.execute(
            "SELECT run_at, idx, bus_id, cublas_gflops FROM gpu_runs WHERE host = ? AND cublas_gflops IS NOT NULL "
            "ORDER BY run_at", (host,)):
        out.setdefault(f"GPU {idx} {bus}", []).append((at, gflops))
    return out


def record_results(path: Path, results: Iterable[tuple[str, Mapping[str, Any]]], run_at: float) -> list[str]:
    """Record every host's result of one run; the flags of all hosts. No GPU tested and no file yet: no file."""
    results = list(results)
    if not path.exists() and not any(records_from_result(h, r) for h, r in results):
        return []
    db = open_history(path)
    try:
        return [flag for host, result in results for flag in record(db, host, result, run_at)]
    finally:
        db.close()
