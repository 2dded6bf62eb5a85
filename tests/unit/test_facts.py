"""The facts probe: its parsers against real outputs of an H100 host, and a real run on this machine."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from provisioner.host import facts
from provisioner.host.runtime import Host

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "h100-ubuntu2404"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- parsers against the H100 / Ubuntu 24.04 fixtures ------------------------------------------

def test_os_release_fixture_is_ubuntu_noble() -> None:
    dist = facts.distribution_facts(facts.parse_os_release(fixture("os-release.txt")))
    assert dist == {
        "os_id": "ubuntu", "os_version_id": "24.04", "distribution": "Ubuntu",
        "distribution_version": "24.04", "distribution_major_version": "24",
        "distribution_release": "noble", "os_family": "Debian",
    }


def test_nvidia_smi_header_gives_driver_and_cuda_version() -> None:
    assert facts.parse_nvidia_smi_header(fixture("nvidia-smi.txt")) == ("580.159.04", "13.0")
    assert facts.parse_nvidia_smi_header(fixture("nvidia-smi-q.txt")) == ("580.159.04", "13.0")


def test_nvidia_smi_query_with_header_and_units() -> None:
    [gpu] = facts.parse_nvidia_smi_query(fixture("nvidia-smi-query.csv"))
    assert gpu == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "memory_used_mib": 0,
        "compute_cap": "9.0", "uuid": "GPU-00000000-0000-0000-0000-000000000000", "utilization_pct": 0,
        "temperature_c": 50, "pci_bus_id": "00000000:00:06.0", "driver_version": "580.159.04",
    }


def test_nvidia_smi_query_noheader_nounits_in_probe_order() -> None:
    text = ("0, NVIDIA H100 80GB HBM3, 81559, 3, 9.0, GPU-e33c39df, 7, 34, 00000000:00:06.0, 580.159.04\n"
            "1, Tesla K80, 11441, [N/A], 3.7, GPU-aaaa, [N/A], 41, 00000000:85:00.0, 470.256.02\n")
    gpus = facts.parse_nvidia_smi_query(text)
    assert [g["name"] for g in gpus] == ["NVIDIA H100 80GB HBM3", "Tesla K80"]
    assert gpus[0]["memory_used_mib"] == 3 and gpus[0]["utilization_pct"] == 7
    assert gpus[1]["memory_used_mib"] is None and gpus[1]["utilization_pct"] is None
    assert gpus[1]["compute_cap"] == "3.7" and gpus[1]["index"] == 1


def test_proc_driver_version_open_and_proprietary_modules() -> None:
    assert facts.parse_proc_driver_nvidia_version(fixture("proc-driver-nvidia-version.txt")) == "580.159.04"
    legacy = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 14:50:40 UTC 2024\n"
    assert facts.parse_proc_driver_nvidia_version(legacy) == "470.256.02"


def test_nvcc_version() -> None:
    assert facts.parse_nvcc_version(fixture("nvcc-version.txt")) == "13.0"
    assert facts.parse_nvcc_version("Cuda compilation tools, release 12.4, V12.4.131") == "12.4"


def test_cudnn_version_header() -> None:
    assert facts.parse_cudnn_version_h(fixture("cudnn-version-h.txt")) == "9.14.0"
    assert facts.parse_cudnn_version_h("#define CUDNN_MAJOR 8\n") is None


def test_sysfs_pci_finds_only_the_display_controller() -> None:
    assert facts.parse_sysfs_pci(fixture("sysfs-pci.txt")) == [{
        "vendor": "nvidia", "vendor_id": "0x10de", "device_id": "0x2330", "pci_slot": "0000:00:06.0",
        "class": "0x030200", "model": None, "memory_mib": None,
    }]


def test_sysfs_pci_accelerator_class_and_vendors() -> None:
    text = ("0000:c1:00.0 0x1002 0x740f 0x038000\n"    # MI210: display controller, "other" subclass
            "0000:0a:00.0 0x1002 0x74a1 0x120000\n"    # MI300X: processing accelerator
            "0000:00:02.0 0x8086 0x46a6 0x030000\n"    # Intel iGPU
            "0000:00:1f.3 0x8086 0x51c8 0x040300\n")   # audio: not a GPU
    gpus = facts.parse_sysfs_pci(text)
    assert [(g["vendor"], g["class"]) for g in gpus] == [("amd", "0x038000"), ("amd", "0x120000"),
                                                          ("intel", "0x030000")]


def test_dpkg_versions_from_the_fixture_map_to_cuda_versions() -> None:
    versions = dict(line.split() for line in fixture("dpkg-nvidia.txt").splitlines() if line.strip())
    assert facts.cuda_version_from_deb(versions["cuda-toolkit-13-0-config-common"]) == "13.0"
    assert facts.cuda_version_from_deb(versions["libnccl2"]) == "2.28"
    assert facts.cuda_version_from_deb("12.4.131~12.4.1-1") == "12.4"   # Debian trixie's nvidia-cuda-toolkit
    assert facts.cuda_version_from_deb("11.8.89~11.8.0-5~deb12u1") == "11.8"


def test_dpkg_status_stanza() -> None:
    status = ("Package: nvidia-cuda-toolkit\nStatus: install ok installed\nVersion: 12.4.131~12.4.1-1\n\n"
              "Package: nvidia-cuda-toolkit-doc\nStatus: deinstall ok config-files\n"
              "Version: 12.4.131~12.4.1-1\n")
    assert facts.parse_dpkg_status_version(status, "nvidia-cuda-toolkit") == "12.4.131~12.4.1-1"
    assert facts.parse_dpkg_status_version(status, "nvidia-cuda-toolkit-doc") is None


def test_usr_local_cuda_symlinks_resolve_to_one_toolkit(tmp_path: Path) -> None:
    """/usr/local/cuda -> /etc/alternatives/cuda -> /usr/local/cuda-13.0, as on the H100 host."""
    text = fixture("usr-local-cuda.txt")
    assert "cuda -> /etc/alternatives/cuda" in text
    local = tmp_path / "usr/local"
    (local / "cuda-13.0/bin").mkdir(parents=True)
    (local / "cuda-13.0/bin/nvcc").write_text("#!/bin/sh\n")
    (tmp_path / "etc/alternatives").mkdir(parents=True)
    (tmp_path / "etc/alternatives/cuda").symlink_to(local / "cuda-13.0")
    (tmp_path / "etc/alternatives/cuda-13").symlink_to(local / "cuda-13.0")
    (local / "cuda").symlink_to(tmp_path / "etc/alternatives/cuda")
    (local / "cuda-13").symlink_to(tmp_path / "etc/alternatives/cuda-13")
    (local / "cuda-keyring.txt").write_text("not a toolkit")
    assert facts.cuda_dirs(str(tmp_path)) == [str(local / "cuda-13.0")]


def test_nvidia_facts_from_a_stand_in_nvidia_smi(tmp_path: Path) -> None:
    """The GPU branch of the probe, run on this GPU-less box against a script that prints the fixtures."""
    query = "0, NVIDIA H100 80GB HBM3, 81559, 0, 9.0, GPU-0000, 0, 50, 00000000:00:06.0, 580.159.04\n"
    (tmp_path / "query.csv").write_text(query)
    (tmp_path / "header.txt").write_text(fixture("nvidia-smi.txt"))
    smi = tmp_path / "nvidia-smi"
    query_file, header_file = tmp_path / "query.csv", tmp_path / "header.txt"
    smi.write_text(f'#!/bin/sh\ncase "$1" in\n  --query-gpu=*) cat "{query_file}" ;;\n'
                   f'  *) cat "{header_file}" ;;\nesac\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    pci = facts.parse_sysfs_pci(fixture("sysfs-pci.txt"))
    cmds = facts.Commands(Host())
    facts.start_nvidia_smi(cmds, str(smi))
    info = facts.nvidia_facts(cmds, str(smi), fixture("proc-driver-nvidia-version.txt"), pci)
    assert info["smi_ok"] and info["error"] is None
    assert (info["driver_version"], info["cuda_version"]) == ("580.159.04", "13.0")
    assert info["gpus"][0]["compute_cap"] == "9.0" and "driver_version" not in info["gpus"][0]
    assert pci[0]["model"] == "NVIDIA H100 80GB HBM3" and pci[0]["memory_mib"] == 81559


def test_nvidia_facts_when_nvidia_smi_fails_keep_the_proc_driver_version(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the "
                   "NVIDIA driver.' >&2\nexit 9\n")
    smi.chmod(0o755)
    cmds = facts.Commands(Host())
    facts.start_nvidia_smi(cmds, str(smi))
    info = facts.nvidia_facts(cmds, str(smi), fixture("proc-driver-nvidia-version.txt"), [])
    assert info["smi_ok"] is False and "could not communicate" in info["error"]
    assert info["driver_version"] == "580.159.04" and info["gpus"] == []


def test_pci_slot_normalisation() -> None:
    assert facts.normalize_pci_slot("00000000:00:06.0") == "0000:00:06.0"
    assert facts.normalize_pci_slot("0000:C1:00.0") == "0000:c1:00.0"
    assert facts.normalize_pci_slot("19:00.0") == "0000:19:00.0"


# -- os-release of the families we plan for (well-known contents, written inline) --------------

UBUNTU_2204 = """PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
"""
UBUNTU_2404 = """PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"""
DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
DEBIAN_13 = """PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.1
ID=debian
"""
ROCKY_94 = """NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
"""
RHEL_810 = """NAME="Red Hat Enterprise Linux"
VERSION="8.10 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.10"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Red Hat Enterprise Linux 8.10 (Ootpa)"
"""
ALMA_9 = """NAME="AlmaLinux"
VERSION="9.4 (Seafoam Ocelot)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"
"""
WSL2_PROC_VERSION = ("Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) "
                     "(gcc (GCC) 11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP Fri Mar 29 23:14:13 UTC 2024\n")


@pytest.mark.parametrize("text, debian_version, expected", [
    (UBUNTU_2204, None, ("ubuntu", "Ubuntu", "22.04", "22", "jammy", "Debian")),
    (UBUNTU_2404, None, ("ubuntu", "Ubuntu", "24.04", "24", "noble", "Debian")),
    (DEBIAN_12, "12.7", ("debian", "Debian", "12.7", "12", "bookworm", "Debian")),
    (DEBIAN_13, None, ("debian", "Debian", "13", "13", "trixie", "Debian")),
    (DEBIAN_13, "13.1", ("debian", "Debian", "13.1", "13", "trixie", "Debian")),
    (ROCKY_94, None, ("rocky", "Rocky", "9.4", "9", "", "RedHat")),
    (RHEL_810, None, ("rhel", "RedHat", "8.10", "8", "", "RedHat")),
    (ALMA_9, None, ("almalinux", "AlmaLinux", "9.4", "9", "", "RedHat")),
])
def test_distribution_facts(text: str, debian_version: str | None, expected: tuple) -> None:
    dist = facts.distribution_facts(facts.parse_os_release(text), debian_version)
    keys = ("os_id", "distribution", "distribution_version", "distribution_major_version",
            "distribution_release", "os_family")
    assert tuple(dist[k] for k in keys) == expected


def test_debian_version_file() -> None:
    assert facts.parse_debian_version("12.7\n") == "12.7"
    assert facts.parse_debian_version("trixie/sid\n") is None
    # A stale /etc/debian_version from another major is not trusted over os-release.
    dist = facts.distribution_facts(facts.parse_os_release(DEBIAN_13), "12.9")
    assert dist["distribution_version"] == "13"


def test_wsl_detection() -> None:
    assert facts.parse_is_wsl(WSL2_PROC_VERSION, None, {}) is True
    assert facts.parse_is_wsl(None, "5.15.153.1-microsoft-standard-WSL2", {}) is True
    debian_kernel = "Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org)"
    assert facts.parse_is_wsl(debian_kernel, "6.1.0-28-amd64", {}) is False
    assert facts.parse_is_wsl(None, None, {"WSL_DISTRO_NAME": "Ubuntu-22.04"}) is True


def test_small_parsers() -> None:
    assert facts.parse_meminfo_mb("MemTotal:       24683520 kB\nMemFree: 1 kB\n") == 24105
    assert facts.parse_cuda_version_json('{"cuda": {"name": "CUDA SDK", "version": "12.4.1"}}') == "12.4"
    assert facts.parse_cuda_version_json("{not json") is None
    assert facts.parse_rocm_version("6.2.0-66\n") == "6.2.0"
    assert facts.parse_rocm_version("rocm-5.7.1") == "5.7.1"
    assert facts.parse_rust_version("rustc 1.85.0 (4d91de4e4 2025-02-17)\n") == "1.85.0"
    assert facts.parse_rust_version("cargo 1.85.0 (d73d2caf9 2024-12-31)") == "1.85.0"
    assert facts.parse_rust_version("rustc 1.87.0-nightly (f8c27dfe1 2025-03-24)") == "1.87.0-nightly"
    assert facts.parse_rust_version("error: no default toolchain configured") is None


def test_rustup_files() -> None:
    settings = 'version = "12"\ndefault_toolchain = "stable-x86_64-unknown-linux-gnu"\nprofile = "default"\n'
    assert facts.parse_rustup_default_toolchain(settings) == "stable-x86_64-unknown-linux-gnu"
    assert facts.parse_rustup_default_toolchain('version = "12"\n') is None
    manifest = ('manifest-version = "2"\n[pkg.cargo]\nversion = "0.86.0 (adf9b6ad1 2025-02-28)"\n\n'
                '[pkg.rustc]\nversion = "1.85.0 (4d91de4e4 2025-02-17)"\n\n[pkg.rustc.target.x86_64]\n')
    assert facts.parse_rust_channel_manifest(manifest) == "1.85.0"
    assert facts.parse_rust_channel_manifest("[pkg.cargo]\n") is None


def test_rustup_proxy_version_is_read_from_the_toolchain_not_run(tmp_path: Path) -> None:
    bin_dir, home = tmp_path / "cargo/bin", tmp_path / "rustup"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rustup").write_text("#!/bin/sh\nexit 99\n")   # would fail if anything ran it
    (bin_dir / "rustup").chmod(0o755)
    (bin_dir / "rustc").symlink_to("rustup")
    rustlib = home / "toolchains/stable-x86_64-unknown-linux-gnu/lib/rustlib"
    rustlib.mkdir(parents=True)
    (home / "settings.toml").write_text('default_toolchain = "stable-x86_64-unknown-linux-gnu"\n')
    (rustlib / "multirust-channel-manifest.toml").write_text('[pkg.rustc]\nversion = "1.85.0 (4d91de4e4)"\n')
    rustc, rustup = str(bin_dir / "rustc"), str(bin_dir / "rustup")
    env = {"RUSTUP_HOME": str(home)}
    assert facts.rustup_version(rustc, rustup, env) == "1.85.0"
    # RUSTUP_TOOLCHAIN wins over the default; a short channel name finds the host's toolchain.
    assert facts.rustup_version(rustc, rustup, {**env, "RUSTUP_TOOLCHAIN": "stable"}) == "1.85.0"
    assert facts.rustup_version(rustc, rustup, {**env, "RUSTUP_TOOLCHAIN": "nightly"}) is None
    # A distribution's rustc is no proxy: the caller runs it instead.
    (tmp_path / "usr-rustc").write_text("#!/bin/sh\n")
    assert facts.rustup_version(str(tmp_path / "usr-rustc"), rustup, env) is None


# -- the real probe on this machine -----------------------------------------------------------

def test_gather_on_this_machine() -> None:
    started = time.perf_counter()
    first = facts.gather(Host())
    cold = time.perf_counter() - started
    started = time.perf_counter()
    result = facts.gather(Host())
    warm = time.perf_counter() - started
    print(f"\ngather(): first call {cold * 1000:.1f} ms, second call {warm * 1000:.1f} ms")

    assert tuple(result) == facts.FACT_KEYS
    assert json.loads(json.dumps(result)) == result
    assert result["system"] == "Linux" and result["architecture"] == os.uname().machine
    assert result["user_uid"] == os.geteuid() and result["processor_vcpus"] == os.cpu_count()
    assert result["memtotal_mb"] > 0 and result["disk_free_mb"]["/"] > 0
    assert set(result["disk_free_mb"]) == {"/", "/usr/local", "/opt"}
    assert result["python"]["executable"]
    assert first["os_id"] == result["os_id"]

    os_release = facts.parse_os_release(Path("/etc/os-release").read_text())
    assert result["os_id"] == os_release["ID"]
    if os_release["ID"] in ("debian", "ubuntu"):
        assert result["os_family"] == "Debian" and result["pkg_mgr"] == "apt"

    has_nvidia = os.path.exists("/proc/driver/nvidia/version") or any(
        g["vendor"] == "nvidia" for g in result["gpus"])
    if has_nvidia:
        assert result["nvidia"]["driver_version"]
    else:
        assert result["nvidia"] is None
    for gpu in result["gpus"]:
        assert set(gpu) == {"vendor", "vendor_id", "device_id", "pci_slot", "class", "model", "memory_mib"}
        assert gpu["class"].startswith(("0x03", "0x12"))

    cuda = result["cuda"]
    if os.path.exists("/usr/local/cuda"):
        assert cuda["default_path"] == os.path.realpath("/usr/local/cuda")
        assert any(tk["path"] == cuda["default_path"] and tk["version"] for tk in cuda["toolkits"])
    if cuda["nvcc_on_path"]:
        assert cuda["nvcc_version"]
    assert set(result["rust"]) == {"rustc", "cargo", "rustup", "path_rustc"}
    if result["rust"]["path_rustc"]:
        ran = subprocess.run([result["rust"]["path_rustc"], "--version"], capture_output=True, text=True,
                             check=True)
        assert result["rust"]["rustc"] == facts.parse_rust_version(ran.stdout)

    # Target: well under 0.2 s (about 20 ms here with a CUDA toolkit and rustup); the bound is loose
    # because other jobs share this machine.
    assert warm < 1.0, f"gather() took {warm:.3f} s"
    assert cold < 3.0, f"gather() took {cold:.3f} s on its first (cold-cache) call"
