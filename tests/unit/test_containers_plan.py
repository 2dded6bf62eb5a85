"""The nvidia_container_toolkit role, planned in check mode (FAKE hosts: no GPU, docker or NVIDIA repo here).

Off by default in playbooks/lab.yml; `nvidia_containers: true` turns it on for NVIDIA hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.test_roles_plan import failures, one, plan_in_check_mode, results

SKIP = ("verify", "cuda", "cudnn", "rust", "build", "driver")
REPO = "https://nvidia.github.io/libnvidia-container/stable"


def engines(*present: str) -> Any:
    """FAKE stat answers: these engine binaries exist."""
    def respond(module: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if module == "stat" and args.get("path") in {f"/usr/bin/{e}" for e in present}:
            return {"changed": False, "stat": {"exists": True}}
        return None
    return respond


def probes(spec_current: bool, runtime_known: tuple[str, ...] = ()) -> Any:
    def table(os_key: str) -> list[tuple[str, dict[str, Any]]]:
        out = [(r"^grep -qsF \S+ /etc/cdi/nvidia.yaml", {"rc": 0 if spec_current else 1, "stdout": ""}),
               (r"^nvidia-ctk cdi list", {"rc": 0, "stdout": "INFO Found 2 CDI devices\nnvidia.com/gpu=0\n"
                                                              "nvidia.com/gpu=all\n"})]
        for engine, conf in (("docker", "/etc/docker/daemon.json"), ("containerd", "/etc/containerd/config.toml")):
            out.append((rf"^grep -qs nvidia {conf}", {"rc": 0 if engine in runtime_known else 1, "stdout": ""}))
        return out
    return table


def test_off_by_default(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"h100": {"facts": "ubuntu2404-h100"}}, skip_tags=SKIP)
    assert failures(runner) == {}
    assert not [r for r in runner.results if r.task.startswith("nvidia_container_toolkit")
                and r.status != "skipped"]
    assert not [a for m, a, _ in agents["h100"].calls if "nvidia-container-toolkit" in str(a) or "nvidia-ctk" in str(a)]


def test_ubuntu_repo_toolkit_docker_runtime_and_a_cdi_spec_for_the_loaded_driver(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"h100": {"facts": "ubuntu2404-h100", "nvidia_containers": True}},
                                        skip_tags=SKIP, respond=engines("docker"), probes=probes(False))
    assert failures(runner) == {}
    h = agents["h100"]
    repo = one(h, "deb822_repository", name="nvidia-container-toolkit")
    assert (repo["uris"], repo["suites"], repo["signed_by"]) == (
        [f"{REPO}/deb/$(ARCH)"], ["/"], "https://nvidia.github.io/libnvidia-container/gpgkey")
    assert one(h, "package", name=["nvidia-container-toolkit"])
    cmds = h.commands()
    assert "nvidia-ctk runtime configure --runtime=docker" in cmds
    assert "nvidia-ctk runtime configure --runtime=containerd" not in cmds          # not installed
    assert "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml" in cmds
    grep = [a["argv"] for m, a, check in h.calls if m == "command" and not check and a["argv"][:2] == ["grep", "-qsF"]]
    assert grep == [["grep", "-qsF", "580.159.04", "/etc/cdi/nvidia.yaml"]]   # the spec names the driver's libraries
    assert one(h, "service", name="docker")["state"] == "restarted"                 # the handler
    listed = results(runner, "h100")["nvidia_container_toolkit : List the CDI devices"]
    assert listed.status == "ok"


def test_rocky_repo_file_containerd_configured_already_spec_current(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"rocky": {"facts": "rocky9-l40s", "nvidia_containers": True}},
                                        skip_tags=SKIP, respond=engines("containerd"),
                                        probes=probes(True, runtime_known=("containerd",)))
    assert failures(runner) == {}
    r = agents["rocky"]
    assert one(r, "get_url")["url"] == f"{REPO}/rpm/nvidia-container-toolkit.repo"
    assert not [c for c in r.commands() if c.startswith("nvidia-ctk runtime configure")]
    # the package "would change" in check mode, so its handler regenerates the spec; nothing else does
    assert r.commands().count("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml") == 1
    assert results(runner, "rocky")["nvidia_container_toolkit : Generate the CDI spec for this driver"].status == \
        "skipped"
