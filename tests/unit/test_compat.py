"""The version matrix and GPU planning, on fake facts of hosts we cannot run here (tests/data/facts)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from provisioner import compat
from provisioner.compat import GpuPlan, MatrixError, Refusal, RequestError, load_matrix, plan_host
from provisioner.host.facts import FACT_KEYS

FACTS_DIR = Path(__file__).resolve().parents[1] / "data" / "facts"
NVIDIA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"
CUDNN_REDIST = "https://developer.download.nvidia.com/compute/cudnn/redist/cudnn/linux-x86_64"


def host(name: str) -> dict[str, Any]:
    return json.loads((FACTS_DIR / f"{name}.json").read_text())


def plan(name: str | dict[str, Any], **request: Any) -> tuple[GpuPlan, list[Refusal]]:
    return plan_host(host(name) if isinstance(name, str) else name, request)


def reasons(refusals: list[Refusal], component: str) -> list[str]:
    return [r.reason for r in refusals if r.component == component]


# -- the data file -----------------------------------------------------------------------------

def test_the_matrix_validates_and_is_cached() -> None:
    matrix = load_matrix()
    assert matrix is load_matrix()
    for version in ("11.8", "12.1", "12.2", "12.3", "12.4", "12.6", "12.8", "12.9", "13.0"):
        assert version in matrix.cuda.versions
    assert matrix.cuda.versions["12.4"].min_driver == "550.54.14"
    assert matrix.cuda.versions["13.0"].min_driver == "580.65.06"
    assert str(matrix.cuda.versions["13.0"].compute_capability) == "7.5-12.1"
    assert str(matrix.cuda.versions["12.0"].compute_capability) == "5.0-9.0"
    assert matrix.minor_version_compat.min_driver["12"] == "525.60.13"
    assert [(r.cuda, r.cudnn, r.pytorch) for r in matrix.chapter_table.rows] == [
        ("12.3", "8.9", "2.1+"), ("12.1", "8.9", "2.0+"), ("11.8", "8.7", "1.13+")]
    assert matrix.cudnn.versions["9"].cuda_majors == [12, 13]
    assert matrix.distro_cuda.packages["debian13"].version == "12.4"
    assert {"5.7", "6.0", "6.1", "6.2", "6.3", "6.4"} <= set(matrix.rocm.versions)
    for section in ("chapter_table", "nvidia_repo", "minor_version_compat", "cuda", "driver_branches",
                    "cudnn", "distro_cuda", "rocm", "amd_gpus"):
        assert len(getattr(matrix, section).source) > 20, section


def test_a_malformed_matrix_names_the_file_and_the_field(tmp_path: Path) -> None:
    data = compat.MATRIX_PATH.read_text()
    bad = tmp_path / "compat.yml"
    data = data.replace('min_driver: "550.54.14"', 'min_driver: "five-fifty"', 1)
    data = data.replace('      pytorch: "2.0+"\n', '      pytorch: "2.0+"\n      min_drvier: "1"\n', 1)
    bad.write_text(data)
    with pytest.raises(MatrixError) as err:
        load_matrix(bad)
    message = str(err.value)
    assert str(bad) in message
    assert "cuda.versions.12.4.min_driver" in message
    assert "cuda.versions.11.8.min_drvier: Extra inputs are not permitted" in message


def test_a_matrix_that_is_not_yaml_points_at_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "compat.yml"
    bad.write_text("schema: 1\ncuda:\n  versions: [unclosed\n")
    with pytest.raises(MatrixError, match=r"compat\.yml:\d+:\d+: the version matrix is not valid YAML"):
        load_matrix(bad)


def test_a_section_without_source_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "compat.yml"
    data = compat.MATRIX_PATH.read_text()
    bad.write_text(data.replace("distro_cuda:\n  source:", "distro_cuda:\n  origin:", 1))
    with pytest.raises(MatrixError, match=r"distro_cuda\.source: Field required"):
        load_matrix(bad)


def test_the_fake_facts_have_exactly_the_probe_keys() -> None:
    files = sorted(FACTS_DIR.glob("*.json"))
    assert len(files) == 9
    for path in files:
        assert tuple(json.loads(path.read_text())) == FACT_KEYS, path.name


# -- good plans, one per OS --------------------------------------------------------------------

def test_ubuntu2404_h100_cuda13_with_cudnn9_from_the_repo() -> None:
    gpu_plan, refusals = plan("ubuntu2404-h100", cuda_version="13.0", cudnn_version="9",
                              cudnn_method="nvidia_repo")
    assert refusals == []
    assert gpu_plan.os_key == "ubuntu2404" and gpu_plan.gpu_stack == "cuda"
    assert gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/ubuntu2404/x86_64/"
    assert gpu_plan.cuda_repo_setup_url == f"{NVIDIA_REPOS}/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb"
    assert gpu_plan.cuda_packages == ["cuda-toolkit-13-0"]
    assert gpu_plan.cudnn_packages == ["libcudnn9-cuda-13", "libcudnn9-dev-cuda-13"]
    assert gpu_plan.cudnn_version == "9.14.0.64"
    assert gpu_plan.driver_branch is None and gpu_plan.driver_packages == []
    assert "keeping the installed NVIDIA driver 580.159.04" in gpu_plan.notes
    assert "CUDA 13.0 is already installed at /usr/local/cuda-13.0" in gpu_plan.notes


def test_ubuntu2204_rtx4090_the_chapters_way_plus_a_driver_branch() -> None:
    gpu_plan, refusals = plan("ubuntu2204-rtx4090", cuda_version="12.4", nvidia_driver_branch="550",
                              cudnn_version="9", cudnn_method="archive")
    assert refusals == []
    assert gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/ubuntu2204/x86_64/"
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-4"]
    assert gpu_plan.driver_branch == "550" and gpu_plan.driver_packages == ["cuda-drivers-550"]
    assert gpu_plan.cudnn_archive_url == f"{CUDNN_REDIST}/cudnn-linux-x86_64-9.14.0.64_cuda12-archive.tar.xz"
    assert gpu_plan.cudnn_packages == []


def test_ubuntu2204_rtx4090_chapter_table_row_cuda_12_3_cudnn_8_9() -> None:
    gpu_plan, refusals = plan("ubuntu2204-rtx4090", cuda_version="12.3", cudnn_version="8.9")
    assert refusals == []
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-3"]
    assert gpu_plan.cudnn_archive_url == f"{CUDNN_REDIST}/cudnn-linux-x86_64-8.9.7.29_cuda12-archive.tar.xz"


def test_debian12_a100_distro_cuda_and_pip_cudnn() -> None:
    gpu_plan, refusals = plan("debian12-a100", cuda_version="11.8", cuda_method="distro",
                              cudnn_version="8.7", cudnn_method="pip")
    assert refusals == []
    assert gpu_plan.os_key == "debian12"
    assert gpu_plan.cuda_packages == ["nvidia-cuda-toolkit"] and gpu_plan.cuda_repo_url is None
    assert gpu_plan.cudnn_packages == ["nvidia-cudnn-cu11==8.7.0.84"]
    assert any("'non-free' component" in n for n in gpu_plan.notes)


def test_debian12_a100_nvidia_repo_under_minor_version_compatibility() -> None:
    gpu_plan, refusals = plan("debian12-a100", cuda_version="12.4")
    assert refusals == []
    assert gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/debian12/x86_64/"
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-4"]
    assert any("535.216.01 runs CUDA 12.4 under minor-version compatibility" in n for n in gpu_plan.notes)


def test_debian13_build_box_without_gpu_gets_distro_cuda_when_forced() -> None:
    gpu_plan, refusals = plan("debian13-nogpu", gpu_stack="cuda", force=True, cuda_version="12.4",
                              cuda_method="distro")
    assert refusals == []
    assert gpu_plan.os_key == "debian13" and gpu_plan.cuda_packages == ["nvidia-cuda-toolkit"]
    assert "no NVIDIA driver: CUDA 12.4 can compile here but not run" in gpu_plan.notes


def test_debian13_without_gpu_and_auto_stack_plans_nothing() -> None:
    gpu_plan, refusals = plan("debian13-nogpu", cuda_version="12.4", rocm_version="6.2")
    assert refusals == [] and gpu_plan.gpu_stack == "none" and gpu_plan.cuda_packages == []
    assert "no NVIDIA or AMD GPU found (gpu_stack auto): nothing to install" in gpu_plan.notes


def test_rocky9_l40s_uses_the_rhel9_repo_and_dnf_names() -> None:
    gpu_plan, refusals = plan("rocky9-l40s", cuda_version="12.4", cudnn_version="9",
                              cudnn_method="nvidia_repo")
    assert refusals == []
    assert gpu_plan.os_key == "rhel9"
    assert gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/rhel9/x86_64/"
    assert gpu_plan.cuda_repo_setup_url == f"{NVIDIA_REPOS}/rhel9/x86_64/cuda-rhel9.repo"
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-4"]
    assert gpu_plan.cudnn_packages == ["libcudnn9-cuda-12", "libcudnn9-devel-cuda-12"]


def test_rhel8_v100_with_the_535_branch() -> None:
    gpu_plan, refusals = plan("rhel8-v100", cuda_version="12.2", nvidia_driver_branch=535)
    assert refusals == []
    assert gpu_plan.os_key == "rhel8"
    assert gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/rhel8/x86_64/"
    assert gpu_plan.cuda_repo_setup_url == f"{NVIDIA_REPOS}/rhel8/x86_64/cuda-rhel8.repo"
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-2"]
    assert gpu_plan.driver_packages == ["cuda-drivers-535"]


def test_wsl2_uses_the_wsl_ubuntu_repo_and_keeps_the_windows_driver() -> None:
    gpu_plan, refusals = plan("wsl2-ubuntu2204-rtx3090", cuda_version="12.4", cudnn_version="9")
    assert refusals == []
    assert gpu_plan.os_key == "wsl-ubuntu"
    assert gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/wsl-ubuntu/x86_64/"
    assert gpu_plan.cuda_repo_setup_url == f"{NVIDIA_REPOS}/wsl-ubuntu/x86_64/cuda-keyring_1.1-1_all.deb"
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-4"]
    assert gpu_plan.driver_packages == [] and "keeping the installed NVIDIA driver 566.36" in gpu_plan.notes


def test_ubuntu2204_mi210_rocm_installer_urls() -> None:
    gpu_plan, refusals = plan("ubuntu2204-mi210", rocm_version="6.2")
    assert refusals == [] and gpu_plan.gpu_stack == "rocm"
    assert gpu_plan.rocm_installer_url == (
        "https://repo.radeon.com/amdgpu-install/6.2/ubuntu/jammy/amdgpu-install_6.2.60200-1_all.deb")
    assert gpu_plan.rocm_packages == ["amdgpu-install"]
    assert "then: amdgpu-install -y --usecase=rocm" in gpu_plan.notes
    assert "ROCm 6.2.0 is already installed at /opt/rocm-6.2.0" in gpu_plan.notes
    chapter_plan, refusals = plan("ubuntu2204-mi210", rocm_version="5.7")
    assert refusals == []
    assert chapter_plan.rocm_installer_url == (
        "https://repo.radeon.com/amdgpu-install/5.7/ubuntu/jammy/amdgpu-install_5.7.50700-1_all.deb")


def test_rocm_on_rocky_uses_the_el9_rpm() -> None:
    facts = host("rocky9-l40s")
    facts["gpus"] = [{"vendor": "amd", "vendor_id": "0x1002", "device_id": "0x74a1",
                      "pci_slot": "0000:0a:00.0", "class": "0x120000", "model": None, "memory_mib": 196592}]
    facts["nvidia"] = None
    gpu_plan, refusals = plan(facts, rocm_version="6.2")
    assert refusals == []
    assert gpu_plan.rocm_installer_url == (
        "https://repo.radeon.com/amdgpu-install/6.2/rhel/9.4/amdgpu-install-6.2.60200-1.el9.noarch.rpm")


def test_debian12_k80_can_still_have_debians_cuda_11_8() -> None:
    gpu_plan, refusals = plan("debian12-k80", cuda_version="11.8", cuda_method="distro", cudnn_version="8.7")
    assert refusals == []
    assert gpu_plan.cuda_packages == ["nvidia-cuda-toolkit"] and gpu_plan.cuda_repo_url is None
    assert gpu_plan.cudnn_archive_url == f"{CUDNN_REDIST}/cudnn-linux-x86_64-8.7.0.84_cuda11-archive.tar.xz"
    assert any("470.256.02 runs CUDA 11.8 under minor-version compatibility" in n for n in gpu_plan.notes)


# -- one test per refusal ----------------------------------------------------------------------

def test_refused_cuda_that_does_not_support_the_compute_capability() -> None:
    _, refusals = plan("debian12-k80", cuda_version="13.0", nvidia_driver_branch="580")
    # Two K80 dies, one line; the 580 driver cannot drive them either.
    assert reasons(refusals, "cuda") == [
        "CUDA 13.0 does not support compute capability 3.7 (Tesla K80); it needs 7.5-12.1"]
    assert reasons(refusals, "driver") == [
        ("NVIDIA driver branch 580 does not drive compute capability 3.7 (Tesla K80); it supports 5.0-12.1; "
         "branches that do: 470")]
    _, refusals = plan("debian12-k80", cuda_version="12.4")
    assert "CUDA 12.4 does not support compute capability 3.7 (Tesla K80); it needs 5.0-9.0" in reasons(
        refusals, "cuda")


def test_refused_cudnn_built_for_another_cuda_major() -> None:
    _, refusals = plan("ubuntu2404-h100", cuda_version="13.0", cudnn_version="8.9")
    assert reasons(refusals, "cudnn") == [
        ("cuDNN 8.9 is not built for CUDA 13.x (CUDA 13.0); it is built for CUDA 11.x, 12.x; "
         "for CUDA 13.x use cuDNN 9")]
    # With no cuda_version, the installed toolkit (nvcc 13.0) decides.
    _, refusals = plan("ubuntu2404-h100", cudnn_version="8.7")
    assert reasons(refusals, "cudnn")[0].startswith("cuDNN 8.7 is not built for CUDA 13.x (CUDA 13.0)")


def test_refused_installed_driver_too_old_for_the_cuda() -> None:
    _, refusals = plan("debian12-k80", cuda_version="12.4")
    assert ("installed NVIDIA driver 470.256.02 is too old for CUDA 12.4: it needs >= 525.60.13 "
            "(minor-version compatibility), 550.54.14 for every feature; "
            "no driver branch in the matrix runs it on this GPU") in reasons(refusals, "driver")
    _, refusals = plan("rhel8-v100", cuda_version="13.0")
    assert reasons(refusals, "driver") == [
        ("installed NVIDIA driver 535.183.06 is too old for CUDA 13.0: it needs >= 580.65.06; "
         "set nvidia_driver_branch (e.g. \"580\")")]


def test_refused_requested_driver_branch_too_old_for_the_cuda() -> None:
    _, refusals = plan("ubuntu2204-rtx4090", cuda_version="13.0", nvidia_driver_branch="575")
    assert reasons(refusals, "driver") == [
        "NVIDIA driver branch 575 is too old for CUDA 13.0: it needs >= 580.65.06"]


def test_refused_driver_branch_that_does_not_drive_the_gpu() -> None:
    _, refusals = plan("debian12-k80", cuda_version="11.8", nvidia_driver_branch="550")
    assert reasons(refusals, "driver") == [
        ("NVIDIA driver branch 550 does not drive compute capability 3.7 (Tesla K80); it supports 5.0-9.0; "
         "branches that do: 470")]


def test_refused_os_the_nvidia_repo_does_not_serve() -> None:
    _, refusals = plan("ubuntu2404-h100", cuda_version="11.8")
    assert reasons(refusals, "cuda") == [
        ("NVIDIA's CUDA repository does not serve CUDA 11.8 for ubuntu2404 (Ubuntu 24.04); "
         "it serves ubuntu2004, ubuntu2204, debian11, rhel8, rhel9, wsl-ubuntu")]
    _, refusals = plan("debian13-nogpu", gpu_stack="cuda", force=True, cuda_version="12.4")
    assert reasons(refusals, "cuda")[0].startswith(
        "NVIDIA's CUDA repository does not serve CUDA 12.4 for debian13 (Debian 13.1)")


def test_refused_cudnn_from_a_repo_that_lacks_it() -> None:
    facts = host("debian13-nogpu")
    _, refusals = plan(facts, gpu_stack="cuda", force=True, cuda_version="13.0", cudnn_version="9",
                       cudnn_method="nvidia_repo")
    assert reasons(refusals, "cudnn") == [
        "NVIDIA's repository for debian13 has no cuDNN 9 packages; use cudnn_method: archive or pip"]


def test_refused_distro_method_when_the_distro_ships_another_version() -> None:
    _, refusals = plan("debian12-a100", cuda_version="12.4", cuda_method="distro")
    assert reasons(refusals, "cuda") == [
        "cuda_method distro: Debian 12.7 ships CUDA 11.8 (nvidia-cuda-toolkit), not the requested 12.4"]
    _, refusals = plan("rocky9-l40s", cuda_version="12.4", cuda_method="distro")
    assert reasons(refusals, "cuda") == [
        "cuda_method distro: Rocky 9.4 packages no CUDA toolkit; use cuda_method: nvidia_repo"]


def test_refused_rocm_on_an_os_it_does_not_support() -> None:
    facts = host("ubuntu2204-mi210")
    facts.update(os_id="debian", os_version_id="13", distribution="Debian", distribution_version="13.1",
                 distribution_major_version="13", distribution_release="trixie")
    _, refusals = plan(facts, rocm_version="6.4")
    assert reasons(refusals, "rocm") == [
        ("ROCm 6.4 does not support Debian 13.1 (trixie); it supports Ubuntu jammy, noble; Debian bookworm; "
         "RHEL 8.10, 9.4, 9.5, 9.6")]
    facts.update(os_version_id="12", distribution_version="12.7", distribution_major_version="12",
                 distribution_release="bookworm")
    assert reasons(plan(facts, rocm_version="6.2")[1], "rocm")[0].startswith(
        "ROCm 6.2 does not support Debian 12.7 (bookworm)")
    bookworm_plan, refusals = plan(facts, rocm_version="6.4")
    assert refusals == [] and bookworm_plan.rocm_installer_url == (
        "https://repo.radeon.com/amdgpu-install/6.4/ubuntu/jammy/amdgpu-install_6.4.60400-1_all.deb")


def test_refused_rocm_on_rhel8_minor_it_does_not_list() -> None:
    facts = host("rhel8-v100")
    mi210 = {"vendor": "amd", "vendor_id": "0x1002", "device_id": "0x740f", "pci_slot": "0000:af:00.0",
             "class": "0x038000", "model": None, "memory_mib": 65520}
    facts["gpus"].append(mi210)
    _, refusals = plan(facts, gpu_stack="rocm", rocm_version="6.0")
    assert reasons(refusals, "rocm") == [
        "ROCm 6.0 does not support RedHat 8.10; it supports Ubuntu focal, jammy; RHEL 8.8, 8.9, 9.2, 9.3"]


def test_refused_rocm_for_a_gpu_target_it_does_not_support() -> None:
    facts = host("ubuntu2204-mi210")
    facts["gpus"][1]["device_id"] = "0x66a1"
    _, refusals = plan(facts, rocm_version="6.4")
    assert reasons(refusals, "rocm") == [
        ("ROCm 6.4 does not support gfx906 (Instinct MI50, PCI 0x66a1); "
         "it supports gfx908, gfx90a, gfx942, gfx1030, gfx1100, gfx1101")]


def test_a_consumer_card_runs_as_its_compatible_target_with_the_gfx_override() -> None:
    facts = host("ubuntu2204-mi210")
    facts["gpus"][1]["device_id"] = "0x73ff"          # RX 6600: gfx1032, which ROCm does not build
    gpu_plan, refusals = plan(facts, rocm_version="6.2")
    assert refusals == [] and gpu_plan.rocm_gfx_override == "10.3.0"
    assert "Radeon RX 6600/6600 XT (gfx1032) runs ROCm as gfx1030: HSA_OVERRIDE_GFX_VERSION=10.3.0" in gpu_plan.notes
    assert ("ROCm 6.2 does not build gfx1032 (Radeon RX 6600/6600 XT); it runs as gfx1030 through "
            "HSA_OVERRIDE_GFX_VERSION") in gpu_plan.notes
    facts["gpus"].append({**facts["gpus"][1], "device_id": "0x7480", "pci_slot": "0000:0b:00.0"})   # + RX 7600
    gpu_plan, _ = plan(facts, rocm_version="6.2")
    assert gpu_plan.rocm_gfx_override is None
    assert any(n.startswith("AMD cards needing different HSA_OVERRIDE_GFX_VERSION values") for n in gpu_plan.notes)


def test_refused_rocm_on_a_host_without_amd_gpu() -> None:
    _, refusals = plan("rhel8-v100", gpu_stack="rocm", rocm_version="6.2")
    assert reasons(refusals, "rocm") == [
        ("gpu_stack rocm, but this host has no AMD GPU (no PCI vendor 0x1002); "
         "set force: true to install ROCm anyway")]


def test_refused_cuda_on_a_host_without_nvidia_gpu_unless_forced() -> None:
    gpu_plan, refusals = plan("debian13-nogpu", gpu_stack="cuda", cuda_version="13.0")
    assert reasons(refusals, "cuda") == [
        ("gpu_stack cuda, but this host has no NVIDIA GPU (no PCI vendor 0x10de, no driver); "
         "set force: true to install CUDA anyway")]
    assert gpu_plan.cuda_packages == []
    gpu_plan, refusals = plan("debian13-nogpu", gpu_stack="cuda", force=True, cuda_version="13.0")
    assert refusals == [] and gpu_plan.cuda_packages == ["cuda-toolkit-13-0"]


def test_refused_driver_install_on_wsl2() -> None:
    gpu_plan, refusals = plan("wsl2-ubuntu2204-rtx3090", cuda_version="12.4", nvidia_driver_branch="550")
    assert reasons(refusals, "driver") == [
        ("WSL2 uses the Windows host's NVIDIA driver (566.36); nvidia_driver_branch 550 cannot be "
         "installed inside WSL: update the driver on Windows and leave it unset")]
    assert gpu_plan.driver_packages == [] and gpu_plan.cuda_repo_url == f"{NVIDIA_REPOS}/wsl-ubuntu/x86_64/"


def test_refused_unknown_versions() -> None:
    _, refusals = plan("ubuntu2404-h100", cuda_version="12.7", cudnn_version="7.6",
                       nvidia_driver_branch="999")
    assert reasons(refusals, "cuda")[0].startswith(
        "CUDA 12.7 is not in the version matrix (known: 11.8, 12.0")
    assert reasons(refusals, "driver")[0].startswith("NVIDIA driver branch 999 is not in the version matrix")
    assert reasons(refusals, "cudnn")[0].startswith("cuDNN 7.6 is not in the version matrix")


def test_a_malformed_request_is_an_error_not_a_refusal() -> None:
    with pytest.raises(RequestError, match="cuda_methd: Extra inputs are not permitted"):
        plan_host(host("ubuntu2404-h100"), {"cuda_methd": "distro"})
    with pytest.raises(RequestError, match="cudnn_method"):
        plan_host(host("ubuntu2404-h100"), {"cudnn_method": "tarball"})
    # YAML numbers are taken back as version text.
    gpu_plan, _ = plan_host(host("ubuntu2204-rtx4090"), {"cuda_version": 12.4, "nvidia_driver_branch": 550})
    assert gpu_plan.cuda_packages == ["cuda-toolkit-12-4"] and gpu_plan.driver_branch == "550"


def test_planning_does_not_change_the_facts() -> None:
    facts = host("ubuntu2204-mi210")
    before = copy.deepcopy(facts)
    plan_host(facts, {"rocm_version": "6.2", "cuda_version": "12.4"})
    assert facts == before
