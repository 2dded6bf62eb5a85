"""The driver role's traps, planned in check mode for OS families this machine is not.

FAKE hosts (tests/unit/test_roles_plan.py's FakeOsAgent): Ubuntu 24.04 and Rocky 9 facts, changed
where the trap needs it (nouveau bound to the card). What runs for real on Debian 13 is in
tests/fleet/test_gpu_traps_fleet.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.unit.test_roles_plan import FakeOsAgent, failures, load_facts, one, plan_in_check_mode, results


def with_nouveau(name: str) -> dict[str, Any]:
    """`name`'s facts on the day nouveau holds the card: no NVIDIA driver loaded."""
    facts = copy.deepcopy(load_facts(name))
    facts["nvidia"] = None
    for gpu in facts["gpus"]:
        if gpu["vendor"] == "nvidia":
            gpu["driver"] = "nouveau"
    facts["gpu_kernel"].update(modules_loaded=["nouveau"], open_driver_in_use=["nouveau"])
    return facts


def fake(tmp_path: Path, facts: dict[str, Any], name: str = "facts.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(facts))
    return str(path)


BLACKLIST = "/etc/modprobe.d/provision-blacklist-nouveau.conf"


def written(agent: FakeOsAgent, dest: str) -> str:
    """What a copy task with `content:` would write to `dest`."""
    return str(one(agent, "copy", dest=dest)["content"])


def test_ubuntu_nouveau_is_blacklisted_initramfs_rebuilt_and_the_reboot_scheduled(tmp_path: Path) -> None:
    facts = fake(tmp_path, with_nouveau("ubuntu2404-h100"))
    runner, agents = plan_in_check_mode(tmp_path, {"box": {
        "facts": "ubuntu2404-h100", "provision_fake_facts": facts, "nvidia_driver_branch": "580",
        "cuda_version": None}}, skip_tags=("verify", "cuda", "cudnn", "rust", "build"))
    assert failures(runner) == {}
    h = agents["box"]
    text = written(h, BLACKLIST)
    assert "blacklist nouveau\noptions nouveau modeset=0\nblacklist nova_core\n" in text
    assert "update-initramfs -u -k all" in h.commands()
    assert one(h, "apt", name=["nvidia-driver-580"])
    said = results(runner, "box")
    assert said["nvidia_driver : Reboot into the new driver"].msg == "would reboot"
    reasons = said["nvidia_driver : Decide whether a reboot is needed"].data["ansible_facts"]["nvidia_driver_reboot_reasons"]
    assert reasons == ["NVIDIA driver 580 is installed but no driver is loaded",
                       "nouveau holds the GPU until the next boot (now blacklisted)"]


def test_rocky_uses_dracut_and_never_reboot_says_why(tmp_path: Path) -> None:
    facts = fake(tmp_path, with_nouveau("rocky9-l40s"))
    runner, agents = plan_in_check_mode(tmp_path, {"rocky": {
        "facts": "rocky9-l40s", "provision_fake_facts": facts, "cuda_version": None,
        "nvidia_driver_reboot": "never"}}, skip_tags=("verify", "cuda", "cudnn", "rust", "build"))
    assert failures(runner) == {}
    r = agents["rocky"]
    assert BLACKLIST in [a["dest"] for a in r.module_args("copy")]
    assert "dracut --force --regenerate-all" in r.commands()
    said = results(runner, "rocky")["nvidia_driver : Say that a reboot is still required"].msg
    assert said == ("REBOOT REQUIRED: nouveau holds the GPU until the next boot (now blacklisted) "
                    "(nvidia_driver_reboot: never)")


def test_a_working_nvidia_box_gets_no_blacklist(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"h100": {"facts": "ubuntu2404-h100", "cuda_version": None}},
                                        skip_tags=("verify", "cuda", "cudnn", "rust", "build"))
    assert failures(runner) == {}
    h = agents["h100"]
    assert not h.module_args("copy") and not h.commands()
    assert results(runner, "h100")["nvidia_driver : Reboot into the new driver"].status == "skipped"


def sb_on(key_state: str) -> Any:
    """FAKE mokutil answers: Secure Boot on, the signing key in `key_state`."""
    def probes(os_key: str) -> list[tuple[str, dict[str, Any]]]:
        return [(r"^mokutil --sb-state", {"rc": 0, "stdout": "SecureBoot enabled"}),
                (r"^mokutil --test-key (\S+)", {"rc": 0, "stdout": "{0} " + key_state})]
    return probes


def test_ubuntu_secure_boot_key_made_dkms_told_enrolment_queued_and_the_host_stopped(tmp_path: Path) -> None:
    facts = fake(tmp_path, with_nouveau("ubuntu2404-h100"))
    runner, agents = plan_in_check_mode(tmp_path, {"box": {
        "facts": "ubuntu2404-h100", "provision_fake_facts": facts, "nvidia_driver_branch": "580",
        "cuda_version": None, "nvidia_driver_mok_password": "one-time-pw"}},
        skip_tags=("verify", "cuda", "cudnn", "rust", "build"), probes=sb_on("is not enrolled"))
    h = agents["box"]
    assert one(h, "package", name=["dkms", "mokutil", "openssl"])
    openssl = [c for c in h.commands() if c.startswith("openssl req")]
    assert openssl and "-keyout /var/lib/shim-signed/mok/MOK.priv -out /var/lib/shim-signed/mok/MOK.der" in openssl[0]
    lines = {a["line"] for a in h.module_args("lineinfile") if a["path"] == "/etc/dkms/framework.conf"}
    assert lines == {'mok_signing_key="/var/lib/shim-signed/mok/MOK.priv"',
                     'mok_certificate="/var/lib/shim-signed/mok/MOK.der"'}
    imports = [a for m, a, check in h.calls if m == "command" and a.get("argv", [""])[:2] == ["mokutil", "--import"]]
    assert imports and imports[0]["stdin"] == "one-time-pw\none-time-pw"
    assert "one-time-pw" not in json.dumps([r.to_json() for r in runner.results])     # no_log
    assert failures(runner) == {"box: nvidia_driver : Stop this host until the key is enrolled": (
        "Secure Boot: enrol the DKMS signing key at the console on the next boot (MokManager: Enroll MOK, then the "
        "one-time password nvidia_driver_mok_password), then rerun provision")}
    assert not [n for n in h.installed() if n.startswith("nvidia-driver")]   # stopped before the driver


def test_secure_boot_with_the_key_enrolled_goes_on_to_the_driver(tmp_path: Path) -> None:
    facts = fake(tmp_path, with_nouveau("rocky9-l40s"))
    runner, agents = plan_in_check_mode(tmp_path, {"rocky": {
        "facts": "rocky9-l40s", "provision_fake_facts": facts, "nvidia_driver_branch": "570", "cuda_version": None}},
        skip_tags=("verify", "cuda", "cudnn", "rust", "build"), probes=sb_on("is already enrolled"))
    assert failures(runner) == {}
    r = agents["rocky"]
    assert not [a for m, a, _ in r.calls if m == "command" and "--import" in (a.get("argv") or [])]
    assert "dnf -y module install nvidia-driver:570-dkms" in r.commands()


def test_kernel_headers_for_running_and_newest_kernels_and_the_meta_package(tmp_path: Path) -> None:
    facts = load_facts("ubuntu2204-rtx4090")
    facts["gpu_kernel"].update(installed_kernels=["6.8.0-52-generic", "6.8.0-60-generic"],
                               newest_kernel="6.8.0-60-generic", nvidia_built_for_running=True,
                               nvidia_built_for_newest=False)
    path = fake(tmp_path, facts)
    runner, agents = plan_in_check_mode(tmp_path, {"rtx": {
        "facts": "ubuntu2204-rtx4090", "provision_fake_facts": path, "nvidia_driver_branch": "570",
        "cuda_version": None}}, skip_tags=("verify", "cuda", "cudnn", "rust", "build"))
    assert failures(runner) == {}
    r = agents["rtx"]
    assert one(r, "package", name=["linux-headers-6.8.0-52-generic", "linux-headers-6.8.0-60-generic",
                                   "linux-headers-generic"])
    assert "dkms autoinstall -k 6.8.0-60-generic" in r.commands()
    deb = load_facts("debian12-a100")
    assert deb["kernel"] == "6.1.0-26-amd64"
    runner, agents = plan_in_check_mode(tmp_path, {"deb": {
        "facts": "debian12-a100", "nvidia_driver_branch": "535", "cuda_version": None, "cudnn_version": None}},
        skip_tags=("verify", "cuda", "cudnn", "rust", "build"))
    assert failures(runner) == {}
    assert one(agents["deb"], "package", name=["linux-headers-6.1.0-26-amd64", "linux-headers-amd64"])


def files_exist(*paths: str) -> Any:
    """FAKE stat answers: these paths exist on the host."""
    def respond(module: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if module == "stat" and args.get("path") in paths:
            return {"changed": False, "stat": {"exists": True}}
        return None
    return respond


UNIT = "/lib/systemd/system/nvidia-persistenced.service"


def test_persistence_on_a_headless_box_and_off_under_a_display_manager(tmp_path: Path) -> None:
    skip = ("verify", "cuda", "cudnn", "rust", "build")
    runner, agents = plan_in_check_mode(tmp_path, {"h100": {"facts": "ubuntu2404-h100", "cuda_version": None}},
                                        skip_tags=skip, respond=files_exist(UNIT))
    assert failures(runner) == {}
    service = one(agents["h100"], "service", name="nvidia-persistenced")
    assert (service["enabled"], service["state"]) == (True, "started")
    desk = tmp_path / "desk"
    desk.mkdir()
    runner, agents = plan_in_check_mode(desk, {"desk": {"facts": "ubuntu2404-h100", "cuda_version": None}},
                                        skip_tags=skip,
                                        respond=files_exist(UNIT, "/etc/systemd/system/display-manager.service"))
    assert failures(runner) == {}
    assert not agents["desk"].module_args("service")
    assert results(runner, "desk")["nvidia_driver : Look for the nvidia-persistenced unit"].status == "skipped"
    # asked for explicitly on a desktop
    forced = tmp_path / "forced"
    forced.mkdir()
    runner, agents = plan_in_check_mode(forced, {"desk": {"facts": "ubuntu2404-h100", "cuda_version": None,
                                                          "nvidia_persistence": True}}, skip_tags=skip,
                                        respond=files_exist(UNIT, "/etc/systemd/system/display-manager.service"))
    assert one(agents["desk"], "service", name="nvidia-persistenced")["enabled"] is True


def test_debian_installs_the_persistence_daemon_with_the_driver(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"deb": {
        "facts": "debian12-a100", "nvidia_driver_branch": "535", "cuda_version": None, "cudnn_version": None}},
        skip_tags=("verify", "cuda", "cudnn", "rust", "build"))
    assert failures(runner) == {}
    d = agents["deb"]
    assert one(d, "package", name=["nvidia-persistenced"])
    assert one(d, "service", name="nvidia-persistenced")["state"] == "started"
