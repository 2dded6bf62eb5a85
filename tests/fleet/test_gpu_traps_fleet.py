"""Issue 17 for real: the traps of a GPU box, set up on a Debian 13 fleet host, then cleared by the roles.

Real here: Debian's packages from its mirror (linux-image-amd64 and its initramfs-tools, dkms,
mokutil, linux-headers), files written, the initramfs rebuilt (and read back with lsinitramfs),
the second run changing nothing. FAKE, because this machine has no GPU and no Secure Boot: the
HARDWARE, not the facts. Inside the host's own mount namespace the test bind-mounts a PCI tree with
the card (vendor, device, class files and its `driver` link, as the kernel lays them out) over
/sys/bus/pci/devices, and a /proc/modules with the modules it names added; provision's real facts
probe then reads them as on a real box (a real apply takes no fake facts: issue 16). Each test says
which card and modules it plants.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet, FleetHost
from tests.fleet.test_roles_fleet import PROVISION, REPO, Run, apply

pytestmark = pytest.mark.fleet

# What the trap host gets before the roles run (the kernel brings initramfs-tools).
SETUP_PACKAGES = ["linux-image-amd64"]
BLACKLIST = "/etc/modprobe.d/provision-blacklist-nouveau.conf"
# The driver role alone: no toolkit (cuda_version null), the fleet host must not reboot.
DRIVER_ONLY = {"cuda_version": None, "cudnn_version": None, "nvidia_driver_reboot": "never"}


class TrapHost:
    """One Debian 13 host with a kernel installed, and what the tests need to run the lab on it."""

    def __init__(self, fleet: Fleet, workdir: Path) -> None:
        self.fleet, self.workdir = fleet, workdir
        self.host: FleetHost = fleet.hosts[0]
        self.inventory = fleet.write_inventory()
        self.real_facts = self._facts()
        self.kernel = self.sh("ls /lib/modules | grep deb13").strip()

    def sh(self, command: str) -> str:
        rc, out, err = self.fleet.run(self.host, command)
        assert rc == 0, f"{command}: {out}{err}"
        return out

    def _facts(self) -> dict[str, Any]:
        out = subprocess.run([*PROVISION, "facts", "-i", str(self.inventory)], cwd=REPO, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        return dict(json.loads(out)[self.host.name])

    def real_facts_now(self) -> dict[str, Any]:
        """The host's facts gathered again (after a test changed it)."""
        return self._facts()

    def plant(self, driver: str | None = None, modules: tuple[str, ...] = (), vendor: str = "0x10de",
              device: str = "0x2684", slot: str = "0000:01:00.0", vram_mib: int | None = None) -> None:
        """FAKE hardware: one card (default an RTX 4090's PCI id) bound to `driver`, and `modules` loaded,
        bind-mounted inside the host's mount namespace over /sys/bus/pci/devices and /proc/modules."""
        self.unplant()
        d = f"/run/fake-hw/devices/{slot}"
        lines = ["set -e", f"mkdir -p {d} /run/fake-hw/drivers", f"echo 0x030000 > {d}/class",
                 f"echo {vendor} > {d}/vendor", f"echo {device} > {d}/device"]
        if vram_mib:
            lines.append(f"echo {vram_mib * 1024 * 1024} > {d}/mem_info_vram_total")
        if driver:
            lines += [f"mkdir -p /run/fake-hw/drivers/{driver}", f"ln -s ../../drivers/{driver} {d}/driver"]
        lines.append("mount --bind /run/fake-hw/devices /sys/bus/pci/devices")
        if modules:  # a kernel built without module support (this CI machine's) has no /proc/modules to cover
            lines += ["test -e /proc/modules || exit 0", "cat /proc/modules > /run/fake-hw/modules"]
            lines += [f"echo '{m} 3096576 0 - Live 0x0000000000000000' >> /run/fake-hw/modules" for m in modules]
            lines.append("mount --bind /run/fake-hw/modules /proc/modules")
        rc, out, err = self.fleet.run(self.host, "sh -s", stdin="\n".join(lines) + "\n")
        assert rc == 0, out + err

    def unplant(self) -> None:
        self.fleet.run(self.host, "umount /proc/modules 2>/dev/null; umount /sys/bus/pci/devices 2>/dev/null; "
                                  "rm -rf /run/fake-hw; true")

    def apply(self, variables: dict[str, Any], *args: str, tags: str = "driver") -> Run:
        extra = self.workdir / f"vars-{time.monotonic_ns()}.yml"
        extra.write_text(yaml.safe_dump(variables))
        return apply(self.workdir, self.inventory, "--tags", tags, "-e", f"@{extra}", *args)


@pytest.fixture(scope="module")
def trap_host(fleet_image: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrapHost]:
    workdir = tmp_path_factory.mktemp("traps")
    fleet = Fleet(1, name="gpu-traps")
    fleet.up()
    try:
        t0 = time.monotonic()
        rc, out, err = fleet.run(fleet.hosts[0], "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
                                 "apt-get install -y -q --no-install-recommends " + " ".join(SETUP_PACKAGES))
        assert rc == 0, out + err
        print(f"\ntrap host set up ({' '.join(SETUP_PACKAGES)}) in {time.monotonic() - t0:.0f}s")
        yield TrapHost(fleet, workdir)
    finally:
        fleet.close()


def test_nouveau_holding_the_card_is_blacklisted_in_the_initramfs_and_a_reboot_scheduled(trap_host: TrapHost) -> None:
    """FAKE hardware: an NVIDIA card bound to nouveau, nouveau loaded. Real: the facts probe, the file,
    the initramfs."""
    h = trap_host
    before = h.sh(f"stat -c %Y /boot/initrd.img-{h.kernel}").strip()
    assert "provision-blacklist-nouveau" not in h.sh(f"lsinitramfs /boot/initrd.img-{h.kernel}")
    h.plant("nouveau", ("nouveau",))
    facts = h.real_facts_now()
    # nouveau in the way: bound to the card (sysfs), whether or not /proc/modules could list it here
    assert facts["gpus"][0]["driver"] == "nouveau" and facts["gpu_kernel"]["open_driver_in_use"] == ["nouveau"]
    first = h.apply(DRIVER_ONLY)
    assert first.rc == 0, first.out
    name = h.host.name
    assert first.task(name, "nvidia_driver : Blacklist nouveau and nova_core")["status"] == "changed"
    assert first.task(name, "nvidia_driver : Rebuild the initramfs without them")["status"] == "changed"
    assert first.task(name, "nvidia_driver : Say that a reboot is still required")["msg"] == (
        "REBOOT REQUIRED: nouveau holds the GPU until the next boot (now blacklisted) (nvidia_driver_reboot: never)")
    conf = h.sh(f"cat {BLACKLIST}")
    assert "blacklist nouveau\noptions nouveau modeset=0\nblacklist nova_core\nblacklist nova_drm\n" in conf
    # the initramfs was rebuilt for real, and carries the blacklist into early boot
    assert h.sh(f"stat -c %Y /boot/initrd.img-{h.kernel}").strip() != before
    assert f"etc/modprobe.d/{Path(BLACKLIST).name}" in h.sh(f"lsinitramfs /boot/initrd.img-{h.kernel}")
    # rerun, nouveau still holding the card (no reboot yet): nothing changes, the reboot is still asked for
    second = h.apply(DRIVER_ONLY)
    assert second.rc == 0 and second.changed(name) == 0, second.out
    assert second.task(name, "nvidia_driver : Say that a reboot is still required")["status"] == "ok"
    # after the reboot the facts say nouveau is gone: nothing to do, no reboot
    h.plant(None)
    cleared = h.apply(DRIVER_ONLY)
    assert cleared.rc == 0 and cleared.changed(name) == 0, cleared.out
    assert cleared.task(name, "nvidia_driver : Say that a reboot is still required")["status"] == "skipped"
    print(f"\nnouveau trap: first run {first.seconds:.0f}s, rerun {second.seconds:.1f}s, after reboot "
          f"{cleared.seconds:.1f}s")


# FAKE mokutil (this machine has no UEFI firmware, no Secure Boot, no MokManager): it answers
# --sb-state "enabled", and keeps what --import queued and what "the console" enrolled as files.
FAKE_MOKUTIL = r"""#!/bin/sh
state=/var/lib/fake-mokutil
mkdir -p $state/queued $state/enrolled
case "$1" in
  --sb-state) echo "SecureBoot enabled" ;;
  --test-key)
    name=$(basename "$2")
    if cmp -s "$2" "$state/enrolled/$name"; then echo "$2 is already enrolled"
    elif cmp -s "$2" "$state/queued/$name"; then echo "$2 is already in the enrollment request"
    else echo "$2 is not enrolled"; fi ;;
  --import)
    read -r first; read -r second
    [ -n "$first" ] && [ "$first" = "$second" ] || { echo "passwords do not match" >&2; exit 1; }
    cp "$2" "$state/queued/$(basename "$2")"
    echo "$first" | sha256sum > "$state/queued/password.sha256"
    echo import >> "$state/imports" ;;
  *) echo "fake mokutil: $*" >&2; exit 2 ;;
esac
"""
STOP_LINE = ("Secure Boot: enrol the DKMS signing key at the console on the next boot (MokManager: Enroll MOK, then "
             "the one-time password nvidia_driver_mok_password), then rerun provision")


def test_secure_boot_key_made_dkms_signs_enrolment_queued_host_stopped_then_continues(trap_host: TrapHost) -> None:
    """FAKE: an NVIDIA card planted in the host's sysfs, and mokutil's answers. Real: dkms/mokutil/openssl from Debian,
    the key made by openssl, framework.conf, the password piped to mokutil --import, never logged."""
    h = trap_host
    name = h.host.name
    h.fleet.run(h.host, "cat > /usr/local/sbin/mokutil && chmod 755 /usr/local/sbin/mokutil", stdin=FAKE_MOKUTIL)
    h.plant(None)
    sb = {**DRIVER_ONLY, "nvidia_driver_branch": "550", "nvidia_driver_mok_password": "console-once-42"}
    first = h.apply(sb)
    assert first.rc == 1, first.out
    stop = first.task(name, "nvidia_driver : Stop this host until the key is enrolled")
    assert (stop["status"], stop["msg"]) == ("failed", STOP_LINE)
    assert "console-once-42" not in first.out + json.dumps(first.report)
    for pkg in ("dkms", "mokutil", "openssl"):
        assert h.sh(f"dpkg-query -W -f '${{Status}}' {pkg}") == "install ok installed", pkg
    assert h.sh("stat -c '%U %a' /var/lib/dkms/mok.key /var/lib/dkms").split("\n")[:2] == ["root 600", "root 700"]
    assert "DKMS module signing key (provision)" in h.sh("openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout "
                                                           "-subject")
    conf = h.sh("cat /etc/dkms/framework.conf")
    assert 'mok_signing_key="/var/lib/dkms/mok.key"' in conf and 'mok_certificate="/var/lib/dkms/mok.pub"' in conf
    assert h.sh("cat /var/lib/fake-mokutil/imports") == "import\n"
    assert h.sh("cat /var/lib/fake-mokutil/queued/password.sha256").split()[0] == \
        h.sh("echo console-once-42 | sha256sum").split()[0]
    key = h.sh("sha256sum /var/lib/dkms/mok.key").split()[0]

    # rerun before anyone enrolled it: the same stop, nothing queued twice, nothing changed
    second = h.apply(sb)
    assert second.rc == 1 and second.changed(name) == 0, second.out
    assert second.task(name, "nvidia_driver : Stop this host until the key is enrolled")["msg"] == STOP_LINE
    assert h.sh("cat /var/lib/fake-mokutil/imports") == "import\n"
    assert h.sh("sha256sum /var/lib/dkms/mok.key").split()[0] == key          # made once

    # the admin enrols it at the console (what MokManager does at boot), then reruns: it goes on to the driver
    h.sh("mv /var/lib/fake-mokutil/queued/mok.pub /var/lib/fake-mokutil/enrolled/mok.pub")
    third = h.apply(sb, "--check")
    assert third.task(name, "nvidia_driver : Stop this host until the key is enrolled")["status"] == "skipped"
    assert third.task(name, "nvidia_driver : Decide the key's state")["result"]["ansible_facts"] == {
        "nvidia_driver_mok_state": "enrolled"}
    installs = [r for r in third.report["results"] if r["task"].startswith("nvidia_driver : Install the driver")]
    assert installs and installs[0]["status"] == "changed", third.out
    print(f"\nSecure Boot: first run {first.seconds:.0f}s, rerun {second.seconds:.1f}s, after enrolment "
          f"(--check) {third.seconds:.1f}s")


# FAKE nvidia source for DKMS: NVIDIA's cannot be built here in CI time, so a module NAMED nvidia,
# registered with DKMS exactly as the driver packages register theirs, stands in for it. The
# headers, the DKMS build against Debian's kernel and modinfo are real.
STAND_IN_DKMS_CONF = """PACKAGE_NAME="nvidia"
PACKAGE_VERSION="0.17"
BUILT_MODULE_NAME[0]="nvidia"
DEST_MODULE_LOCATION[0]="/updates/dkms"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build modules"
CLEAN="true"
AUTOINSTALL="yes"
"""
STAND_IN_C = """#include <linux/module.h>
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("stand-in for the NVIDIA driver (provision's fleet test)");
MODULE_VERSION("0.17");
static int __init standin_init(void) { return 0; }
static void __exit standin_exit(void) { }
module_init(standin_init);
module_exit(standin_exit);
"""


def test_a_kernel_update_without_the_module_gets_headers_and_a_dkms_build(trap_host: TrapHost) -> None:
    """The trap: a newer kernel installed (Debian's), the nvidia DKMS module not built for it, no headers.
    FAKE: an NVIDIA card planted in the host's sysfs (bound to nvidia), and the stand-in module source
    above. Real: everything else."""
    h = trap_host
    name = h.host.name
    src = "/usr/src/nvidia-0.17"
    h.sh(f"mkdir -p {src}")
    h.fleet.run(h.host, f"cat > {src}/dkms.conf", stdin=STAND_IN_DKMS_CONF)
    h.fleet.run(h.host, f"cat > {src}/nvidia.c", stdin=STAND_IN_C)
    h.fleet.run(h.host, f"cat > {src}/Makefile", stdin="obj-m := nvidia.o\n")
    h.sh("export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends dkms >/dev/null; "
         "dkms add -m nvidia -v 0.17 >/dev/null; apt-get purge -y -q 'linux-headers-*' >/dev/null")
    assert "nvidia/0.17: added" in h.sh("dkms status -m nvidia")
    card = h.real_facts_now()
    assert card["gpu_kernel"]["newest_kernel"] == h.kernel
    assert card["gpu_kernel"]["nvidia_built_for_newest"] is False
    h.plant("nvidia")

    first = h.apply(DRIVER_ONLY)
    assert first.rc == 0, first.out
    # headers of the newest kernel and the meta-package, for real; none exist for this machine's own kernel
    installed = first.task(name, "nvidia_driver : Install the headers that exist")
    assert installed["status"] == "changed"
    for pkg in (f"linux-headers-{h.kernel}", "linux-headers-amd64"):
        assert h.sh(f"dpkg-query -W -f '${{Status}}' {pkg}") == "install ok installed", pkg
    running = h.real_facts["kernel"]
    assert first.task(name, "nvidia_driver : Say which headers do not exist")["msg"].startswith(
        f"no linux-headers-{running}")
    assert first.task(name, "nvidia_driver : Build the nvidia module for the newest kernel (DKMS)")["status"] == \
        "changed"
    assert "installed" in h.sh("dkms status -m nvidia")
    assert h.sh(f"modinfo -k {h.kernel} -F version nvidia").strip() == "0.17"
    assert first.task(name, "nvidia_driver : Say that a reboot is still required")["msg"] == (
        f"REBOOT REQUIRED: the nvidia module is built for {h.kernel}, not for the running {running} (no headers "
        f"for it): boot {h.kernel} (nvidia_driver_reboot: never)")
    # the facts now say it is built for the newest kernel: the rerun changes nothing
    after = h.real_facts_now()
    assert after["gpu_kernel"]["nvidia_built_for_newest"] is True
    second = h.apply(DRIVER_ONLY)
    assert second.rc == 0 and second.changed(name) == 0, second.out
    print(f"\nkernel update: first run {first.seconds:.0f}s, rerun {second.seconds:.1f}s")


def test_a_consumer_radeon_gets_hsa_override_gfx_version_system_wide(trap_host: TrapHost) -> None:
    """FAKE hardware: an RX 6600 (PCI 0x73ff, gfx1032) planted in the host's sysfs, bound to amdgpu. Real: the files, and a login that sees it."""
    h = trap_host
    name = h.host.name
    h.plant("amdgpu", vendor="0x1002", device="0x73ff", slot="0000:03:00.0", vram_mib=8176)
    assert h.real_facts_now()["gpus"][0]["memory_mib"] == 8176
    variables = {"rocm_version": None}
    first = h.apply(variables, tags="rocm")
    assert first.rc == 0, first.out
    assert "HSA_OVERRIDE_GFX_VERSION=10.3.0\n" in h.sh("cat /etc/environment")
    conf = h.sh("cat /etc/systemd/system.conf.d/provision-rocm-gfx-override.conf")
    assert "[Manager]\nDefaultEnvironment=HSA_OVERRIDE_GFX_VERSION=10.3.0\n" in conf
    assert h.sh("echo $HSA_OVERRIDE_GFX_VERSION").strip() == "10.3.0"      # a new SSH login (PAM's pam_env)
    assert first.changed(name) == 3                 # /etc/environment, system.conf.d, its file
    second = h.apply(variables, tags="rocm")
    assert second.rc == 0 and second.changed(name) == 0, second.out
    # the admin turns it off: both settings go, and stay gone
    off = h.apply({**variables, "rocm_gfx_override": ""}, tags="rocm")
    assert off.rc == 0 and off.changed(name) == 2, off.out
    assert "HSA_OVERRIDE_GFX_VERSION" not in h.sh("cat /etc/environment")
    assert h.sh("test -e /etc/systemd/system.conf.d/provision-rocm-gfx-override.conf || echo gone").strip() == "gone"
    again = h.apply({**variables, "rocm_gfx_override": ""}, tags="rocm")
    assert again.rc == 0 and again.changed(name) == 0, again.out
