"""The `gpu_kernel` fact: what the kernel side of a GPU box is, read from files only (no command).

Runs on the managed host (python3 >= 3.7, standard library only), from facts.gather. It answers
the questions behind the traps that leave a GPU box without a working driver:

- is nouveau (or nova_core, its Rust successor) loaded, or bound to an NVIDIA card, and is it
  blacklisted? (/proc/modules, the PCI function's `driver` link, modprobe.d)
- is Secure Boot on? (the SecureBoot EFI variable: 4 attribute bytes, then 1 = on)
- is the nvidia module built for the running kernel, and for the newest installed one?
  (/lib/modules/<kernel>/ where DKMS, Ubuntu's prebuilt packages and NVIDIA's put it)

Every path is read under `root` ("" on a host), so tests can build a fake tree.
"""

from __future__ import annotations

import os
import re

from provisioner.host.runtime import glob_paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Kernel modules that matter for a GPU box: the open-source NVIDIA drivers that hold the card
# before the real one can, the real ones, and AMD's.
OPEN_NVIDIA_MODULES = ("nouveau", "nova_core", "nova_drm")
WATCHED_MODULES = OPEN_NVIDIA_MODULES + ("nvidia", "nvidia_drm", "nvidia_modeset", "nvidia_uvm", "amdgpu")
MODPROBE_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                 "/lib/modprobe.d")
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0398c13a2a4"
# Where the nvidia module of a kernel lives: DKMS (updates/dkms, or extra on RHEL), Ubuntu's
# signed prebuilt packages (kernel/nvidia-<branch>), NVIDIA's runfile (kernel/drivers/video).
NVIDIA_MODULE_GLOBS = ("updates/dkms/nvidia.ko*", "extra/nvidia.ko*", "extra/*/nvidia.ko*", "updates/nvidia.ko*",
                       "kernel/nvidia*/nvidia.ko*", "kernel/drivers/video/nvidia.ko*")


def parse_proc_modules(text: str) -> list[str]:
    """Module names from /proc/modules (first column)."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def parse_modprobe_blacklist(text: str) -> list[str]:
    """Modules a modprobe.d file keeps out: `blacklist X`, or `install X /bin/false` (or /bin/true)."""
    names = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        blacklist = len(words) >= 2 and words[0] == "blacklist"
        disabled = len(words) >= 3 and words[0] == "install" and os.path.basename(words[2]) in ("false", "true")
        if blacklist or disabled:
            names.append(words[1])
    return names


def parse_secure_boot_var(data: bytes | None) -> bool | None:
    """The SecureBoot EFI variable's value (after its 4 attribute bytes); None when unreadable."""
    if data is None or len(data) < 5:
        return None
    return data[4] == 1


def kernel_sort_key(release: str) -> tuple[Any, ...]:
    """"6.12.9-amd64" < "6.12.10-amd64": numbers compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", release))


def _text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(64)
    except OSError:
        return None


def bound_driver(pci_device_dir: str) -> str | None:
    """The kernel driver bound to a PCI function (the name its `driver` link points to), or None."""
    try:
        return os.path.basename(os.readlink(pci_device_dir + "/driver"))
    except OSError:
        return None


def nvidia_module_path(modules_dir: str) -> str | None:
    for pattern in NVIDIA_MODULE_GLOBS:
        found = sorted(glob_paths(os.path.join(modules_dir, pattern)))
        if found:
            return found[0]
    return None


def gpu_kernel_facts(running: str, gpus: list[dict[str, Any]], root: str = "") -> dict[str, Any]:
    """The `gpu_kernel` fact (see the module docstring). `gpus` entries carry the bound `driver`."""
    loaded = set(parse_proc_modules(_text(root + "/proc/modules") or ""))
    blacklisted: set[str] = set()
    for directory in MODPROBE_DIRS:
        for conf in sorted(glob_paths(root + directory + "/*.conf")):
            blacklisted.update(parse_modprobe_blacklist(_text(conf) or ""))
    holding = sorted({str(g.get("driver")) for g in gpus
                      if g.get("vendor") == "nvidia" and g.get("driver") in OPEN_NVIDIA_MODULES})
    installed = sorted((os.path.basename(d) for d in glob_paths(root + "/lib/modules/*")
                        if os.path.isfile(d + "/modules.dep") or os.path.isdir(d + "/kernel")),
                       key=kernel_sort_key)
    newest = installed[-1] if installed else None
    built = {k: nvidia_module_path(root + "/lib/modules/" + k) for k in sorted(set(installed) | {running})}
    efi = os.path.isdir(root + "/sys/firmware/efi")
    return {
        "modules_loaded": sorted(loaded & set(WATCHED_MODULES)),
        "modules_blacklisted": sorted(blacklisted & set(WATCHED_MODULES)),
        # open-source NVIDIA drivers in the way: loaded, or bound to an NVIDIA card
        "open_driver_in_use": sorted((loaded & set(OPEN_NVIDIA_MODULES)) | set(holding)),
        "efi": efi,
        "secure_boot": parse_secure_boot_var(_bytes(root + SECURE_BOOT_VAR)) if efi else False,
        "running_kernel": running,
        "installed_kernels": installed,
        "newest_kernel": newest,
        "nvidia_module": {k: v for k, v in built.items() if v},
        # a loaded nvidia module proves a build for this kernel (the kernel refuses another's vermagic),
        # also where the driver lives outside /lib/modules (a VM image's own tree, as on the H200 box)
        "nvidia_built_for_running": built.get(running) is not None or "nvidia" in loaded,
        "nvidia_built_for_newest": built.get(newest) is not None if newest else None,
    }
