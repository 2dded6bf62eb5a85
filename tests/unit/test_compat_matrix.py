"""The version matrix stays current: its check date, `provision compat`, and the 13.x / ROCm 7 rows."""

from __future__ import annotations

import copy
import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

import yaml
from rich.console import Console

from provisioner import compat
from provisioner.actions import gpu_preflight
from provisioner.output.compat_table import STALE_AFTER_DAYS, print_matrix
from tests.unit.test_roles_plan import load_facts

ROOT = Path(__file__).resolve().parents[2]


def test_the_matrix_was_checked_within_six_months() -> None:
    matrix = compat.load_matrix()
    age = (datetime.date.today() - matrix.oldest_check()).days
    assert age <= STALE_AFTER_DAYS, (
        f"provisioner/data/compat.yml was last checked {matrix.oldest_check()} ({age} days ago): re-read "
        "NVIDIA's and AMD's release notes (the sources it names), update the rows and their checked: dates")


def test_every_section_and_every_newer_row_names_its_source_and_date() -> None:
    raw = yaml.safe_load(compat.MATRIX_PATH.read_text())
    for name, section in raw.items():
        if isinstance(section, dict):
            assert section.get("source") and section.get("checked"), name
    for version in ("13.1", "13.2", "13.3"):
        row = raw["cuda"]["versions"][version]
        assert row["source"] and row["checked"], version
    for version in ("7.0.2", "7.1", "7.2"):
        assert raw["rocm"]["versions"][version]["source"], version


def test_a_stale_matrix_says_so() -> None:
    matrix = compat.load_matrix()
    out = io.StringIO()
    print_matrix(matrix, Console(file=out, width=200), today=matrix.checked + datetime.timedelta(days=200))
    assert "(200 days ago) - STALE: re-read the sources" in out.getvalue()


def test_provision_compat_prints_the_tables_and_json() -> None:
    env = {"COLUMNS": "220", "PATH": "/usr/bin:/bin"}
    text = subprocess.run([sys.executable, "-m", "provisioner.cli", "compat"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout
    flat = " ".join(text.split())
    assert "version matrix provisioner/data/compat.yml, checked 2026-12-04" in flat
    assert "│ 13.3 │ 610.43.02 │ 7.5-12.1 │" in flat and "│ 590 │ 13.1 │ 7.5-12.1 │" in flat
    assert "│ 12.8 (default) │ 570.26 │" in flat
    assert "gfx1032 │ 10.3.0" in flat
    data = json.loads(subprocess.run([sys.executable, "-m", "provisioner.cli", "compat", "--json"], cwd=ROOT,
                                     env=env, capture_output=True, text=True, timeout=60, check=True).stdout)
    raw = yaml.safe_load(compat.MATRIX_PATH.read_text())
    assert set(data) == set(raw) and set(data["cuda"]["versions"]) == set(raw["cuda"]["versions"])
    assert data["cuda"]["versions"]["13.2"]["min_driver"] == "595.45.04"
    assert data["schema"] == 1 and data["checked"] == "2026-12-04"
    assert data["driver_branches"]["branches"]["610"]["max_cuda"] == "13.3"


def test_a_590_driver_box_gets_cuda_13_1_and_a_pascal_box_is_told_why_not() -> None:
    facts = load_facts("ubuntu2404-h100")
    facts["nvidia"]["driver_version"] = "590.48.01"
    facts["cuda"] = {"toolkits": [], "default_path": None, "nvcc_on_path": None, "nvcc_version": None}
    facts["cudnn"] = None
    plan = gpu_preflight.plan_for(facts, {"cuda_version": "auto", "cudnn_version": "auto"})
    assert (plan["cuda_version"], plan["cuda_reason"]) == ("13.1", "newest the driver 590 supports")
    assert plan["cuda_packages"] == ["cuda-toolkit-13-1"]
    pascal = copy.deepcopy(facts)
    pascal["nvidia"]["gpus"][0]["compute_cap"] = "6.1"
    _, refusals = compat.plan_host(pascal, {"cuda_version": "13.2", "nvidia_driver_branch": "595"})
    reasons = [r.reason for r in refusals]
    assert "CUDA 13.2 does not support compute capability 6.1 (NVIDIA H100 80GB HBM3); it needs 7.5-12.1" in reasons
    assert any(r.startswith("NVIDIA driver branch 595 does not drive compute capability 6.1") for r in reasons)


def test_rocm_7_2_plans_on_noble_for_an_rdna4_card() -> None:
    facts = load_facts("ubuntu2204-mi210")
    facts.update(distribution_release="noble", distribution_version="24.04", os_version_id="24.04")
    facts["gpus"][0]["device_id"] = "0x7550"
    plan, refusals = compat.plan_host(facts, {"rocm_version": "7.2"})
    assert refusals == []
    assert plan.rocm_installer_url == ("https://repo.radeon.com/amdgpu-install/7.2/ubuntu/noble/"
                                       "amdgpu-install_7.2.70200-1_all.deb")
