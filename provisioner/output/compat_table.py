"""`provision compat`: the version matrix (provisioner/data/compat.yml) as tables, or as JSON.

Pure rendering: compat.py loads and validates the file; this module decides what it looks like.
"""

from __future__ import annotations

import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from provisioner.compat import Matrix

STALE_AFTER_DAYS = 183          # the test suite fails past this: re-read the sources


def matrix_json(matrix: Matrix) -> dict[str, Any]:
    """The matrix as plain JSON data, with the file's keys (`schema`, not the model's field names)."""
    return matrix.model_dump(mode="json", by_alias=True)


def _age(checked: datetime.date, today: datetime.date) -> str:
    days = (today - checked).days
    stale = " - STALE: re-read the sources" if days > STALE_AFTER_DAYS else ""
    return f"checked {checked.isoformat()} ({days} days ago){stale}"


def print_matrix(matrix: Matrix, console: Console, today: datetime.date | None = None) -> None:
    """Every table of the matrix, each with its source and the date it was checked."""
    today = today or datetime.date.today()
    console.print(f"[bold]version matrix[/bold] provisioner/data/compat.yml, {_age(matrix.checked, today)}")

    cuda = Table(title="CUDA toolkits", title_justify="left")
    for col in ("CUDA", "driver >=", "compute capability", "NVIDIA repository", "PyTorch", "checked"):
        cuda.add_column(col, overflow="fold")
    for version, cv in matrix.cuda.versions.items():
        default = " (default)" if version == matrix.cuda.default else ""
        cuda.add_row(version + default, cv.min_driver, str(cv.compute_capability), " ".join(cv.nvidia_repo_os),
                     cv.pytorch or "-", str(cv.checked or matrix.cuda.checked))
    _print(console, cuda, matrix.cuda.source)
    floors = ", ".join(f"{major}.x >= {floor}" for major, floor in matrix.minor_version_compat.min_driver.items())
    console.print(f"  minor-version compatibility: {floors}", style="dim")

    drivers = Table(title="NVIDIA driver branches", title_justify="left")
    for col in ("branch", "newest CUDA", "compute capability"):
        drivers.add_column(col)
    for branch, info in matrix.driver_branches.branches.items():
        drivers.add_row(branch, info.max_cuda, str(info.compute_capability))
    _print(console, drivers, matrix.driver_branches.source)

    cudnn = Table(title="cuDNN", title_justify="left")
    for col in ("cuDNN", "release", "CUDA majors", "apt", "pip"):
        cudnn.add_column(col, overflow="fold")
    for version, entry in matrix.cudnn.versions.items():
        cudnn.add_row(version, entry.full, ", ".join(f"{m}.x" for m in entry.cuda_majors),
                      "; ".join(" ".join(p) for p in entry.apt.values()), " ".join(entry.pip.values()))
    _print(console, cudnn, matrix.cudnn.source)

    rocm = Table(title="ROCm", title_justify="left")
    for col in ("ROCm", "Ubuntu", "Debian", "RHEL", "GPU targets", "checked"):
        rocm.add_column(col, overflow="fold")
    for version, rv in matrix.rocm.versions.items():
        rocm.add_row(version, " ".join(rv.ubuntu), " ".join(f"{d} (as {u})" for d, u in rv.debian.items()) or "-",
                     " ".join(rv.rhel), " ".join(rv.gfx), str(rv.checked or matrix.rocm.checked))
    _print(console, rocm, matrix.rocm.source)

    amd = Table(title="AMD GPUs", title_justify="left")
    for col in ("PCI id", "name", "target", "HSA_OVERRIDE_GFX_VERSION"):
        amd.add_column(col)
    for pci, gpu in matrix.amd_gpus.devices.items():
        amd.add_row(pci, gpu.name, gpu.gfx, gpu.gfx_override or "-")
    _print(console, amd, matrix.amd_gpus.source)


def _print(console: Console, table: Table, source: str) -> None:
    console.print(table)
    console.print(f"  source: {source}", style="dim")
