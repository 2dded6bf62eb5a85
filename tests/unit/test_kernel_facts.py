"""The gpu_kernel fact, read from a fake root tree built the way the kernel lays out /proc and /sys.

A FAKE tree (tmp_path): this machine has no NVIDIA card, nouveau or Secure Boot. The parsers are
the ones the probe runs on hosts; the tree's shapes are the kernel's (the PCI function's `driver`
symlink to /sys/bus/pci/drivers/<name>, /proc/modules lines, the SecureBoot EFI variable's 4
attribute bytes then its value, /lib/modules/<release>/updates/dkms/nvidia.ko for DKMS builds).
"""

from __future__ import annotations

from pathlib import Path

from provisioner.host import kernel_facts as kf

PROC_MODULES = """\
nouveau 3096576 1 - Live 0x0000000000000000
drm_ttm_helper 16384 1 nouveau, Live 0x0000000000000000
nvme 61440 2 - Live 0x0000000000000000
"""


def tree(tmp_path: Path, modules: str = PROC_MODULES, bound: str | None = "nouveau",
         secure_boot: bytes | None = b"\x06\x00\x00\x00\x01") -> str:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "modules").write_text(modules)
    dev = root / "sys/bus/pci/devices/0000:01:00.0"
    dev.mkdir(parents=True)
    if bound:
        (root / "sys/bus/pci/drivers" / bound).mkdir(parents=True)
        (dev / "driver").symlink_to(f"../../../../bus/pci/drivers/{bound}")
    if secure_boot is not None:
        efivars = root / "sys/firmware/efi/efivars"
        efivars.mkdir(parents=True)
        (efivars / Path(kf.SECURE_BOOT_VAR).name).write_bytes(secure_boot)
    for release, dkms in (("6.12.9-amd64", True), ("6.12.10-amd64", False)):
        mod = root / "lib/modules" / release
        (mod / "kernel").mkdir(parents=True)
        (mod / "modules.dep").write_text("")
        if dkms:
            (mod / "updates/dkms").mkdir(parents=True)
            (mod / "updates/dkms/nvidia.ko.xz").write_bytes(b"")
    return str(root)


def gpu(root: str) -> dict[str, object]:
    return {"vendor": "nvidia", "pci_slot": "0000:01:00.0",
            "driver": kf.bound_driver(root + "/sys/bus/pci/devices/0000:01:00.0")}


def test_nouveau_loaded_and_bound_secure_boot_on_and_nvidia_built_for_the_older_kernel(tmp_path: Path) -> None:
    root = tree(tmp_path)
    card = gpu(root)
    assert card["driver"] == "nouveau"
    facts = kf.gpu_kernel_facts("6.12.9-amd64", [card], root=root)
    assert facts["modules_loaded"] == ["nouveau"] and facts["open_driver_in_use"] == ["nouveau"]
    assert facts["modules_blacklisted"] == []
    assert (facts["efi"], facts["secure_boot"]) == (True, True)
    assert facts["installed_kernels"] == ["6.12.9-amd64", "6.12.10-amd64"]   # numeric order, not text
    assert facts["newest_kernel"] == "6.12.10-amd64"
    assert facts["nvidia_built_for_running"] is True and facts["nvidia_built_for_newest"] is False
    assert facts["nvidia_module"] == {"6.12.9-amd64": root + "/lib/modules/6.12.9-amd64/updates/dkms/nvidia.ko.xz"}


def test_a_card_bound_to_nova_core_without_nouveau_loaded_and_blacklists_read(tmp_path: Path) -> None:
    root = tree(tmp_path, modules="nvme 61440 2 - Live 0x0\n", bound="nova_core", secure_boot=b"\x06\x00\x00\x00\x00")
    conf = Path(root) / "etc/modprobe.d"
    conf.mkdir(parents=True)
    (conf / "nvidia.conf").write_text("# comment\nblacklist nouveau  # trailing\ninstall nova_core /bin/false\n"
                                      "options nvidia NVreg_PreserveVideoMemoryAllocations=1\n")
    facts = kf.gpu_kernel_facts("6.1.0-26-amd64", [gpu(root)], root=root)
    assert facts["open_driver_in_use"] == ["nova_core"]
    assert facts["modules_blacklisted"] == ["nouveau", "nova_core"]
    assert facts["secure_boot"] is False
    assert facts["nvidia_built_for_running"] is False      # no /lib/modules for the running kernel at all


def test_no_efi_means_no_secure_boot_and_an_unbound_card(tmp_path: Path) -> None:
    root = tree(tmp_path, bound=None, secure_boot=None)
    facts = kf.gpu_kernel_facts("6.12.10-amd64", [gpu(root)], root=root)
    assert (facts["efi"], facts["secure_boot"]) == (False, False)
    assert facts["open_driver_in_use"] == ["nouveau"]      # loaded, even if not (yet) bound
    assert kf.parse_secure_boot_var(b"\x06\x00") is None


def test_a_loaded_nvidia_module_counts_as_built_for_the_running_kernel(tmp_path: Path) -> None:
    """As on the device's H200 VM (captured 2026-12-04): nvidia and nvidia_uvm are in /proc/modules, the
    driver's files are outside /lib/modules, and no /lib/modules tree exists for the running kernel."""
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "modules").write_text(
        "nvidia_uvm 1875968 - - Live 0xffffffffc080c000 (O)\nnvidia 14299136 - - Live 0xffffffffc0400000 (O)\n")
    facts = kf.gpu_kernel_facts("6.18.44-fc-v1252-gpu", [], root=str(root))
    assert facts["modules_loaded"] == ["nvidia", "nvidia_uvm"]
    assert facts["installed_kernels"] == [] and facts["nvidia_module"] == {}
    assert facts["nvidia_built_for_running"] is True and facts["nvidia_built_for_newest"] is None
