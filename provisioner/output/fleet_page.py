"""The fleet page: one self-contained HTML file (no script, no network) of every host's GPU verification.

Built from a `--report` JSON (and, when given, the SQLite history): per host and GPU the status, versions,
checklist and diagnosis; charts of naive / tiled / cuBLAS GFLOP/s against the model's figure, memory and
PCIe bandwidth against their limits, and a history line per GPU. The charts are matplotlib drawings
inlined as SVG; matplotlib (the `report` extra) is imported only here.
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.gpu.verify import link_name, pcie_gbs
from provisioner.output.gpu_table import KERNELS, GpuRow, gpu_rows_from_result

RED, GREEN, GREY, AMBER = "#c62828", "#2e7d32", "#9e9e9e", "#ef6c00"
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;
vertical-align:top}th{background:#f3f3f3}tr.bad td{background:#ffebee;color:#b71c1c}tr.ok td.status{color:#2e7d32}
.flag{color:#b71c1c;font-weight:bold}.note{color:#555}.charts{display:flex;flex-wrap:wrap;gap:1em}.charts svg{max-width:480px;height:auto}
section.host{border-top:2px solid #ddd;margin-top:1.5em}code{font-size:12px}
"""


def _last_verify_tasks(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """host -> the result of its last gpu_verify task (the module's data, verify.py's JSON inside)."""
    last: dict[str, Mapping[str, Any]] = {}
    for r in report.get("results") or []:
        data = r.get("result") or {}
        if str(r.get("action", "")).rsplit(".", 1)[-1] == "gpu_verify" and isinstance(data.get("gpu_verify"), dict):
            last[r["host"]] = data
    return last


def verify_results(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any] | None]]:
    """(host, verify.py's JSON or None) for every host of the run, in the recap's order."""
    last = {host: data["gpu_verify"] for host, data in _last_verify_tasks(report).items()}
    hosts = list(report.get("recap") or {}) or list(last)
    return [(h, last.get(h)) for h in hosts] + [(h, r) for h, r in last.items() if h not in hosts]


def gpu_ok_hosts(report: Mapping[str, Any]) -> set[str]:
    """Hosts whose GPU checks passed by the module's verdict (`gpu_ok`), though other checklist lines
    (rustc missing...) failed: they read "ok", as in the run's own table (output/summary.py)."""
    return {host for host, data in _last_verify_tasks(report).items() if data.get("gpu_ok")}


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "provision"  # the same page for the same data
    import matplotlib.pyplot as plt

    return plt


def perf_chart(label: str, device: Mapping[str, Any]) -> str:
    """Bars of naive / tiled / cuBLAS GFLOP/s at the largest n, the model's figure as a grey tick."""
    perf = [p for p in device.get("perf") or [] if p.get("kernel") in KERNELS]
    if not perf:
        return ""
    n = max(p["n"] for p in perf)
    got = {p["kernel"]: p["gflops"] for p in perf if p["n"] == n}
    expected = device.get("expected") or {}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    names = [k for k in KERNELS if k in got]
    want = [expected.get(f"{k}_{n}_gflops") for k in names]
    colors = [RED if w and got[k] < 0.5 * w else GREEN for k, w in zip(names, want)]
    ax.bar(names, [got[k] for k in names], color=colors, label="measured")
    ax.scatter([k for k, w in zip(names, want) if w], [w for w in want if w], marker="_", s=900, color="#333",
               label=f"expected ({expected.get('model', '?')})", zorder=3)
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"{label}: matmul fp32, n={n}", fontsize=10)
    ax.legend(fontsize=7)
    return _svg(fig)


def bandwidth_chart(label: str, device: Mapping[str, Any]) -> str:
    """Memory copy against the model's figure, H2D/D2H against what the PCIe link allows (two panels)."""
    bw, link = device.get("bandwidth") or {}, device.get("link") or {}
    if bw.get("d2d_gbs") is None and bw.get("h2d_gbs") is None:
        return ""
    plt = _plt()
    fig, (mem, pcie) = plt.subplots(1, 2, figsize=(5.2, 2.6))
    want = (device.get("expected") or {}).get("memory_copy_gbs")
    d2d = bw.get("d2d_gbs") or 0
    mem.bar(["device copy"], [d2d], color=RED if want and d2d < 0.7 * want else GREEN)
    if want:
        mem.axhline(want, color="#333", linestyle="--", label=f"expected {want:.0f}")
        mem.legend(fontsize=7)
    mem.set_ylabel("GB/s (read+write)")
    possible = pcie_gbs(link.get("gen_max"), link.get("width_max"))
    allowed = pcie_gbs(link.get("gen_current"), link.get("width_current"))
    host = [bw.get("h2d_gbs") or 0, bw.get("d2h_gbs") or 0]
    pcie.bar(["H2D", "D2H"], host, color=[RED if possible and v < 0.5 * possible else GREEN for v in host])
    if possible:
        pcie.axhline(possible, color="#333", linestyle="--",
                     label=f"{link_name(link.get('gen_max'), link.get('width_max'))} {possible:.0f}")
    if allowed and allowed != possible:
        pcie.axhline(allowed, color=RED, linestyle=":",
                     label=f"now {link_name(link.get('gen_current'), link.get('width_current'))} {allowed:.1f}")
    if possible or allowed:
        pcie.legend(fontsize=7)
    pcie.set_ylabel("GB/s pinned")
    fig.suptitle(f"{label}: memory and PCIe", fontsize=10)
    fig.tight_layout()
    return _svg(fig)


def history_chart(host: str, lines: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """cuBLAS TFLOP/s of each GPU of a host over its recorded runs."""
    if not lines:
        return ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    for gpu, points in lines.items():
        xs = [_dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc) for t, _g in points]
        ax.plot(xs, [g / 1000 for _t, g in points], marker="o", label=gpu)
    ax.set_ylabel("cuBLAS TFLOP/s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{host}: history", fontsize=10)
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _svg(fig)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _row_bad(row: GpuRow) -> bool:
    return row.status not in ("ok",)


def _summary_table(rows: Sequence[tuple[GpuRow, Mapping[str, Any] | None]]) -> str:
    out = ["<table id='fleet'><tr><th>host</th><th>#</th><th>GPU</th><th>bus id</th><th>status</th>"
           "<th>checks</th><th>cuBLAS GFLOP/s</th><th>memory copy GB/s</th><th>H2D / D2H GB/s</th><th>link</th>"
           "<th>burn-in</th><th>what to do</th></tr>"]
    for row, dev in rows:
        dev = dev or {}
        bw, link, burn = dev.get("bandwidth") or {}, dev.get("link") or {}, dev.get("burn_in") or {}
        cells = [row.host, row.index, row.gpu, row.bus_id, row.status, f"{row.checks_passed}/{row.checks_total}",
                 f"{row.cublas_gflops:,.0f}" if row.cublas_gflops else "-", bw.get("d2d_gbs", "-"),
                 f"{bw.get('h2d_gbs', '-')} / {bw.get('d2h_gbs', '-')}",
                 link_name(link.get("gen_current"), link.get("width_current")) if link else "-",
                 f"{burn.get('tflops')} TFLOP/s" if burn.get("tflops") else "-", "; ".join(row.notes[:2])]
        tds = "".join(f"<td class='{'status' if i == 4 else ''}'>{_e(c)}</td>" for i, c in enumerate(cells))
        out.append(f"<tr class='{'bad' if _row_bad(row) else 'ok'}' data-host='{_e(row.host)}'>{tds}</tr>")
    return "\n".join(out) + "</table>"


def _host_section(host: str, result: Mapping[str, Any] | None, rows: Sequence[GpuRow],
                  history: Mapping[str, Sequence[tuple[float, float]]], gpu_ok: bool = False) -> str:
    parts = [f"<section class='host' id='host-{_e(host)}'><h2>{_e(host)}</h2>"]
    if not result:
        return parts[0] + "<p class='flag'>no result: verify.py returned nothing (unreachable?)</p></section>"
    h = result.get("host") or {}
    parts.append("<p>" + ", ".join(f"{k} <code>{_e(h.get(k))}</code>" for k in
                                    ("driver_version", "cuda_driver_version", "nvcc_release", "cupy", "python")
                                    if h.get(k)) + "</p>")
    diag = result.get("diagnosis")
    if diag:
        parts.append(f"<p class='{'note' if gpu_ok else 'flag'}'>[{_e(diag.get('code'))}] {_e(diag.get('reason'))}<br>fix: {_e(diag.get('fix'))}</p>")
    charts = []
    for dev in result.get("devices") or []:
        label = f"{host} GPU {(dev.get('device') or {}).get('index')}"
        charts += [perf_chart(label, dev), bandwidth_chart(label, dev)]
    charts.append(history_chart(host, history))
    parts.append("<div class='charts'>" + "".join(c for c in charts if c) + "</div>")
    parts.append("<table><tr><th>check</th><th>GPU</th><th>ok</th><th>detail</th><th>fix</th></tr>")
    for c in result.get("checks") or []:
        mark = {True: "ok", False: "FAIL", None: "n/a"}[c.get("ok")]
        cls = "bad" if c.get("ok") is False else ""
        parts.append(f"<tr class='{cls}'><td>{_e(c.get('name'))}</td><td>{_e(c.get('gpu', ''))}</td><td>{mark}</td>"
                     f"<td>{_e(c.get('detail'))}</td><td>{_e(c.get('fix') or '')}</td></tr>")
    parts.append("</table>")
    for w in result.get("warnings") or []:
        parts.append(f"<p>warning: {_e(w)}</p>")
    return "\n".join(parts) + "</section>"


def build_page(report: Mapping[str, Any], history_db: Path | None = None, flags: Sequence[str] = ()) -> str:
    """The whole page as one string."""
    results = verify_results(report)
    ok_hosts = gpu_ok_hosts(report)
    rows: list[tuple[GpuRow, Mapping[str, Any] | None]] = []
    for host, result in results:
        devices = list((result or {}).get("devices") or [])
        for i, row in enumerate(gpu_rows_from_result(host, result, host in ok_hosts)):
            rows.append((row, devices[i] if i < len(devices) else None))
    db = sqlite3.connect(str(history_db)) if history_db and history_db.exists() else None
    try:
        from provisioner.output.history import series

        histories = {host: series(db, host) if db else {} for host, _r in results}
    finally:
        if db:
            db.close()
    bad = sum(1 for row, _d in rows if _row_bad(row))
    body = [f"<h1>GPU fleet: {len(results)} host(s), {len(rows)} GPU row(s), {bad} flagged</h1>",
            f"<p>from {_e(report.get('playbook'))}, provision {_e(report.get('version'))}, "
            f"{_e(report.get('elapsed_s'))} s</p>"]
    body += [f"<p class='flag'>{_e(f)}</p>" for f in flags]
    body.append(_summary_table(rows))
    body += [_host_section(host, result, [r for r, _d in rows if r.host == host], histories.get(host, {}),
                           gpu_ok=host in ok_hosts)
             for host, result in results]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>GPU fleet</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_page(path: Path, report: Mapping[str, Any], history_db: Path | None = None,
               flags: Sequence[str] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_page(report, history_db, flags), encoding="utf-8")


def load_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
