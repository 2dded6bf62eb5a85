"""cuda_version / cudnn_version auto: a working box keeps what it has; a fresh one gets what its driver runs.

The box of issue 17 is real: Ubuntu 24.04, driver 580.159.04, CUDA 13.0 in /usr/local/cuda-13.0,
cuDNN 9.14 for CUDA 13 from NVIDIA's packages. Its facts are `tests/data/facts/ubuntu2404-h100.json`
(gathered on such a box) with the cuDNN fact completed the way the probe now completes it: from
the box's captured package list (`tests/data/gpustack/h100-dpkg-nvidia.txt`, `dpkg-query -W`),
read by the probe's own parser. Other hosts are the other fact files; the lab runs against
them in check mode through test_roles_plan's fake host (FAKE: another OS, a GPU we lack).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from provisioner.actions import gpu_preflight
from provisioner.host import facts as host_facts
from tests.unit.test_roles_plan import (
    _plan_inventory,
    _provision,
    failures,
    load_facts,
    one,
    plan_in_check_mode,
    results,
    written,
)

DATA = Path(__file__).resolve().parents[1] / "data"
ROLE_DEFAULTS = {"cuda_version": "auto", "cudnn_version": "auto", "cudnn_method": "nvidia_repo"}


def dpkg_status_from_capture() -> str:
    """The captured `dpkg-query -W` list as /var/lib/dpkg/status stanzas (what the probe reads)."""
    lines = (DATA / "gpustack" / "h100-dpkg-nvidia.txt").read_text().splitlines()
    return "\n\n".join(f"Package: {name}\nStatus: install ok installed\nVersion: {version}"
                       for name, version in (line.split() for line in lines if line.strip()))


def cuda13_box() -> dict[str, Any]:
    """The H100/H200 box's facts, cuDNN completed from its package list by the probe's parser."""
    facts = load_facts("ubuntu2404-h100")
    majors = host_facts.parse_cudnn_packages(dpkg_status_from_capture())
    assert majors == {"9": [13]}
    cudnn = {**facts["cudnn"], "cuda_majors": majors["9"], "origin": "NVIDIA packages libcudnn9-cuda-13"}
    facts["cudnn"] = {**cudnn, "installs": [cudnn]}
    return facts


def without_toolkit(facts: dict[str, Any]) -> dict[str, Any]:
    facts = copy.deepcopy(facts)
    facts["cuda"] = {"toolkits": [], "default_path": None, "nvcc_on_path": None, "nvcc_version": None}
    facts["cudnn"] = None
    return facts


def link_exists(module: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """The fake host has /usr/local/cuda (the box's alternatives link)."""
    if module == "stat" and args.get("path") == "/usr/local/cuda":
        return {"changed": False, "stat": {"exists": True, "islnk": True, "lnk_source": "/usr/local/cuda-13.0"}}
    return None


# -- the planner -----------------------------------------------------------------------------------

def test_the_cuda13_box_keeps_its_toolkit_and_cudnn() -> None:
    plan = gpu_preflight.plan_for(cuda13_box(), ROLE_DEFAULTS)
    assert plan["refusals"] == []
    assert (plan["cuda_action"], plan["cuda_version"], plan["cuda_pinned"]) == ("keep", "13.0", False)
    assert plan["cuda_packages"] == [] and plan["cuda_toolkits"] == [{"version": "13.0", "packages": []}]
    assert plan["cuda_reason"] == ("installed at /usr/local/cuda-13.0; driver 580.159.04 runs it; "
                                   "compute capability 9.0 within 7.5-12.1")
    assert (plan["cudnn_action"], plan["cudnn_version"], plan["cudnn_packages"]) == ("keep", "9.14.0", [])
    assert plan["cudnn_reason"] == "installed (NVIDIA packages libcudnn9-cuda-13), for CUDA 13.x"
    assert plan["driver_branch"] is None and plan["driver_packages"] == []
    assert gpu_preflight.summary(plan) == "ubuntu2404, CUDA 13.0 (keep installed), cuDNN 9.14.0 (keep installed)"


def test_a_pin_is_still_honoured_and_cudnn_auto_follows_its_major() -> None:
    plan = gpu_preflight.plan_for(cuda13_box(), {**ROLE_DEFAULTS, "cuda_version": "12.8"})
    assert (plan["cuda_action"], plan["cuda_pinned"], plan["cuda_packages"]) == ("install", True, ["cuda-toolkit-12-8"])
    # the installed cuDNN is built for CUDA 13: not kept for 12.8; the CUDA 12 packages instead
    assert plan["cudnn_action"] == "install"
    assert plan["cudnn_packages"] == ["libcudnn9-cuda-12", "libcudnn9-dev-cuda-12"]
    assert "installed cuDNN 9.14.0 (NVIDIA packages libcudnn9-cuda-13) is built for CUDA 13.x, not 12.x: not kept" \
        in plan["notes"]


def test_no_toolkit_installs_the_newest_the_loaded_driver_supports() -> None:
    # driver 550 (RTX 4090, Ubuntu 22.04): 12.4 at full features
    plan = gpu_preflight.plan_for(without_toolkit(load_facts("ubuntu2204-rtx4090")), ROLE_DEFAULTS)
    assert plan["refusals"] == []
    assert (plan["cuda_action"], plan["cuda_version"], plan["cuda_reason"]) == (
        "install", "12.4", "newest the driver 550 supports")
    assert plan["cuda_packages"] == ["cuda-toolkit-12-4"] and plan["cuda_pinned"] is False
    assert (plan["cudnn_action"], plan["cudnn_reason"]) == ("install", "newest cuDNN built for CUDA 12.x")
    # driver 535 on RHEL 8 (V100): 12.2; WSL's Windows driver 566: 12.6
    rhel = gpu_preflight.plan_for(load_facts("rhel8-v100"), ROLE_DEFAULTS)
    assert (rhel["cuda_version"], rhel["cuda_reason"]) == ("12.2", "newest the driver 535 supports")
    wsl = gpu_preflight.plan_for(load_facts("wsl2-ubuntu2204-rtx3090"), {**ROLE_DEFAULTS, "cudnn_method": "pip"})
    assert (wsl["cuda_version"], wsl["cuda_reason"]) == ("12.6", "newest the driver 566 supports")


def test_a_toolkit_the_driver_cannot_run_is_not_kept() -> None:
    facts = cuda13_box()
    facts["nvidia"]["driver_version"] = "550.127.05"
    plan = gpu_preflight.plan_for(facts, ROLE_DEFAULTS)
    assert "installed CUDA 13.0 at /usr/local/cuda-13.0 not kept: the loaded driver 550.127.05 is too old " \
           "for it (it needs >= 580.65.06)" in plan["notes"]
    # Ubuntu 24.04 is served from 12.5 on: 550 runs 12.x under minor-version compatibility
    assert (plan["cuda_action"], plan["cuda_version"], plan["cuda_reason"]) == (
        "install", "12.9", "newest the driver 550 runs (minor-version compatibility)")
    assert plan["refusals"] == []


def test_no_driver_loaded_takes_the_matrix_default_or_a_pinned_branchs_newest() -> None:
    facts = without_toolkit(cuda13_box())
    facts["nvidia"] = None
    facts["gpus"][0].pop("model")
    plan = gpu_preflight.plan_for(facts, ROLE_DEFAULTS)
    assert (plan["cuda_version"], plan["cuda_reason"]) == ("12.8", "the matrix default; no NVIDIA driver loaded")
    branch = gpu_preflight.plan_for(facts, {**ROLE_DEFAULTS, "nvidia_driver_branch": "580"})
    assert (branch["cuda_version"], branch["cuda_reason"]) == ("13.0", "newest the driver branch 580 supports")
    assert branch["driver_packages"] == ["cuda-drivers-580"]


def test_a_cudnn_wheel_for_the_toolkits_major_is_kept() -> None:
    facts = load_facts("ubuntu2204-rtx4090")   # CUDA 12.4 installed, driver 550
    wheel = {"version": "9.14.0", "header": "/opt/provision/venv/lib/python3.10/site-packages/nvidia/cudnn/include/"
             "cudnn_version.h", "libraries": [], "source": "pip", "cuda_majors": [12],
             "origin": "pip wheel nvidia_cudnn_cu12 in /opt/provision/venv/lib/python3.10/site-packages"}
    facts["cudnn"] = {**wheel, "installs": [wheel]}
    plan = gpu_preflight.plan_for(facts, ROLE_DEFAULTS)
    assert (plan["cuda_action"], plan["cuda_version"]) == ("keep", "12.4")
    assert (plan["cudnn_action"], plan["cudnn_version"]) == ("keep", "9.14.0")
    assert plan["cudnn_reason"].startswith("installed (pip wheel nvidia_cudnn_cu12 in /opt/provision/venv")


def test_facts_parse_cudnn_packages_and_wheels() -> None:
    status = dpkg_status_from_capture() + (
        "\n\nPackage: libcudnn9-cuda-12\nStatus: deinstall ok config-files\nVersion: 9.14.0.64-1\n")
    assert host_facts.parse_cudnn_packages(status) == {"9": [13]}
    assert host_facts.parse_cudnn_wheel_major("/x/site-packages/nvidia_cudnn_cu13-9.14.0.64.dist-info") == 13
    assert host_facts.parse_cudnn_wheel_major("/x/site-packages/nvidia_cublas_cu12-12.8.dist-info") is None


# -- the lab, in check mode -------------------------------------------------------------------------

def test_the_lab_on_the_cuda13_box_installs_nothing_and_leaves_usr_local_cuda(tmp_path: Path) -> None:
    box = tmp_path / "box.json"
    box.write_text(json.dumps(cuda13_box()))
    runner, agents = plan_in_check_mode(tmp_path, {"box": {"facts": "ubuntu2404-h100",
                                                          "provision_fake_facts": str(box)}},
                                        respond=link_exists)
    assert failures(runner) == {}
    h = agents["box"]
    gpu_packages = [n for n in h.installed() if n.startswith(("cuda", "libcudnn", "nvidia", "linux-headers"))]
    assert gpu_packages == []
    assert not [a for a in h.module_args("file") if a.get("path") == "/usr/local/cuda"]
    assert not h.module_args("get_url")                                   # no repository fetched either
    said = results(runner, "box")
    assert said["cuda_toolkit : Say which toolkit, and why"].msg.startswith("keep 13.0 (installed at /usr/local/cuda-13.0")
    assert said["cudnn : Say which cuDNN, and why"].msg == \
        "keep 9.14.0 (installed (NVIDIA packages libcudnn9-cuda-13), for CUDA 13.x)"
    assert said["cudnn : Install cuDNN by the planned method"].status == "skipped"
    # the role's own state files are still written (the environment for login shells and ld.so)
    assert "export CUDA_HOME=/usr/local/cuda\n" in written(h, "/etc/profile.d/cuda.sh")


def test_a_pin_on_the_cuda13_box_repoints_usr_local_cuda(tmp_path: Path) -> None:
    box = tmp_path / "box.json"
    box.write_text(json.dumps(cuda13_box()))
    runner, agents = plan_in_check_mode(tmp_path, {"box": {"facts": "ubuntu2404-h100", "provision_fake_facts": str(box),
                                                          "cuda_version": "12.8"}}, respond=link_exists)
    assert failures(runner) == {}
    h = agents["box"]
    assert one(h, "apt", name=["cuda-toolkit-12-8"])
    assert one(h, "file", path="/usr/local/cuda")["src"] == "/usr/local/cuda-12.8"


def test_provision_plan_says_keep_and_why(tmp_path: Path) -> None:
    box = tmp_path / "box.json"
    box.write_text(json.dumps(cuda13_box()))
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(without_toolkit(load_facts("ubuntu2204-rtx4090"))))
    inv = _plan_inventory(tmp_path, {"box": {"facts": "ubuntu2404-h100"}, "rtx": {"facts": "ubuntu2204-rtx4090"}})
    text = inv.read_text().replace(str(DATA / "facts" / "ubuntu2404-h100.json"), str(box)) \
        .replace(str(DATA / "facts" / "ubuntu2204-rtx4090.json"), str(fresh))
    inv.write_text(text)
    out = _provision("plan", "playbooks/lab.yml", "-i", str(inv))
    assert out.returncode == 0, out.stdout + out.stderr
    flat = " ".join(out.stdout.split())
    assert "cuda keep 13.0 (installed) why installed at /usr/local/cuda-13.0; driver 580.159.04 runs it" in flat
    assert "cudnn keep 9.14.0 (installed) why installed (NVIDIA packages libcudnn9-cuda-13), for CUDA 13.x" in flat
    assert "cuda install 12.4 (newest the driver 550 supports) via nvidia_repo" in flat
    assert "packages cuda-toolkit-12-4" in flat
