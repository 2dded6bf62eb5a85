"""Facts: what a managed host is, gathered on the host itself in one quick pass.

Runs on the managed host under its own python3 (>= 3.7, standard library only), once
per run, so it must stay fast (tens of milliseconds on a plain box). Files are read
directly wherever they say enough (even rustup's toolchain manifests); the few commands
that must run (nvidia-smi, nvcc, a distribution's rustc/cargo) run only when present and
found, all at the same time. Every piece of text parsing is a pure `parse_*` function so
it can be tested against real outputs.
"""

from __future__ import annotations

import _thread  # the C module: `threading` costs every host ~1 ms to import
import os
import pwd
import re
import sys
from collections.abc import Mapping, Sequence

from provisioner.host import proc, wire
from provisioner.host.kernel_facts import bound_driver, gpu_kernel_facts
from provisioner.host.runtime import CommandResult, Host, glob_paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FACT_KEYS = (
    "hostname", "fqdn", "system", "os_id", "os_version_id", "distribution", "distribution_version",
    "distribution_major_version", "distribution_release", "os_family", "architecture", "kernel",
    "is_wsl", "processor_vcpus", "memtotal_mb", "pkg_mgr", "service_mgr", "python", "user_id",
    "user_uid", "env_path", "gpus", "nvidia", "cuda", "cudnn", "rocm", "rust", "disk_free_mb", "gpu_kernel",
)

# os-release ID -> Ansible's `distribution` name.
DISTRIBUTION_NAMES = {
    "ubuntu": "Ubuntu", "debian": "Debian", "rocky": "Rocky", "rhel": "RedHat",
    "almalinux": "AlmaLinux", "centos": "CentOS", "fedora": "Fedora", "ol": "OracleLinux",
    "amzn": "Amazon", "linuxmint": "Linux Mint", "pop": "Pop!_OS",
}
DEBIAN_IDS = {"ubuntu", "debian", "linuxmint", "pop", "raspbian"}
REDHAT_IDS = {"rhel", "rocky", "almalinux", "centos", "fedora", "ol", "amzn"}

PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}
# PCI base classes that are GPUs or compute accelerators: 0x03 display, 0x12 processing accelerator.
GPU_CLASS_PREFIXES = ("0x03", "0x12")

# One nvidia-smi call gives everything per GPU; the CUDA version the driver supports is
# not a --query-gpu field ("not a valid field to query"), so a second call, run at the same
# time, prints the header: `-q -d COMPUTE` took 0.02 s on an H100 host where plain
# `nvidia-smi` (which also lists processes) took 0.10 s.
NVIDIA_QUERY_FIELDS = ("index", "name", "memory.total", "memory.used", "compute_cap", "uuid",
                       "utilization.gpu", "temperature.gpu", "pci.bus_id", "driver_version")
NVIDIA_HEADER_ARGS = ("-q", "-d", "COMPUTE")
SMI_NO_VALUE = ("N/A", "Not Supported", "Unknown Error", "Insufficient Permissions")
COMMAND_TIMEOUT_S = 20.0
DISK_PATHS = ("/", "/usr/local", "/opt")


# -- pure parsers ---------------------------------------------------------------------------

def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of /etc/os-release, quotes removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value.replace('\\"', '"').replace("\\$", "$").replace("\\\\", "\\")
    return out


def parse_debian_version(text: str | None) -> str | None:
    """/etc/debian_version holds "12.7" on a point release, "trixie/sid" on testing."""
    value = (text or "").strip()
    return value if re.match(r"^\d+(\.\d+)*$", value) else None


def distribution_facts(os_release: Mapping[str, str], debian_version: str | None = None) -> dict[str, Any]:
    """The OS facts Ansible users expect, derived from os-release (and /etc/debian_version)."""
    os_id = (os_release.get("ID") or "").lower() or None
    version_id = os_release.get("VERSION_ID") or None
    like = (os_release.get("ID_LIKE") or "").lower().split()
    if os_id in DEBIAN_IDS or "debian" in like or "ubuntu" in like:
        family: str | None = "Debian"
    elif os_id in REDHAT_IDS or any(x in like for x in ("rhel", "fedora", "centos")):
        family = "RedHat"
    else:
        family = None
    version = version_id
    if os_id == "debian" and debian_version and version_id and debian_version.split(".")[0] == version_id:
        version = debian_version
    codename = os_release.get("VERSION_CODENAME") or os_release.get("UBUNTU_CODENAME") or ""
    if not codename and os_id == "debian":
        # Debian testing/sid leave VERSION_CODENAME out; PRETTY_NAME still says e.g. "trixie/sid".
        match = re.search(r"\b([a-z]+)/sid\b", os_release.get("PRETTY_NAME", ""))
        codename = match.group(1) if match else ""
    return {
        "os_id": os_id,
        "os_version_id": version_id,
        "distribution": DISTRIBUTION_NAMES.get(os_id or "", (os_release.get("NAME") or os_id or "") or None),
        "distribution_version": version,
        "distribution_major_version": version.split(".")[0] if version else None,
        "distribution_release": codename,
        "os_family": family,
    }


def parse_is_wsl(proc_version: str | None, osrelease: str | None, env: Mapping[str, str]) -> bool:
    """WSL kernels say "microsoft" in their version string; WSL also sets WSL_DISTRO_NAME."""
    text = ((proc_version or "") + " " + (osrelease or "")).lower()
    return "microsoft" in text or bool(env.get("WSL_DISTRO_NAME"))


def parse_meminfo_mb(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) // 1024 if match else None


def parse_sysfs_pci_line(line: str) -> tuple[str, str, str, str] | None:
    """One "slot vendor device class" line (the fixture's format) -> the four fields."""
    parts = line.split()
    if len(parts) != 4:
        return None
    return parts[0], parts[1].lower(), parts[2].lower(), parts[3].lower()


def pci_gpu_entry(slot: str, vendor_id: str, device_id: str, pci_class: str) -> dict[str, Any] | None:
    """A `gpus` entry when the PCI function is a display controller or an accelerator, else None."""
    if not pci_class.startswith(GPU_CLASS_PREFIXES):
        return None
    return {"vendor": PCI_VENDORS.get(vendor_id, "other"), "vendor_id": vendor_id, "device_id": device_id,
            "pci_slot": slot, "class": pci_class, "model": None, "memory_mib": None}


def parse_sysfs_pci(text: str) -> list[dict[str, Any]]:
    """GPU entries from lines of "slot vendor device class" (as listed from /sys/bus/pci/devices)."""
    gpus = []
    for line in text.splitlines():
        fields = parse_sysfs_pci_line(line)
        entry = pci_gpu_entry(*fields) if fields else None
        if entry:
            gpus.append(entry)
    return gpus


def parse_proc_driver_nvidia_version(text: str) -> str | None:
    """Driver version from /proc/driver/nvidia/version (proprietary or open kernel module)."""
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def parse_nvidia_smi_header(text: str) -> tuple[str | None, str | None]:
    """(driver_version, cuda_version) from plain `nvidia-smi` or `nvidia-smi -q` output."""
    driver = re.search(r"Driver Version\s*:?\s*(\d+\.\d+(?:\.\d+)?)", text)
    cuda = re.search(r"CUDA Version\s*:?\s*(\d+\.\d+)", text)
    return (driver.group(1) if driver else None), (cuda.group(1) if cuda else None)


def _smi_value(raw: str) -> str | None:
    value = raw.strip()
    if not value or value.strip("[]") in SMI_NO_VALUE:
        return None
    return value


def _smi_number(raw: str | None) -> int | None:
    """"81559", "81559 MiB", "0 %" -> int; None when absent."""
    match = re.match(r"^\s*(-?\d+)(?:\.\d+)?", raw or "")
    return int(match.group(1)) if match else None


def _smi_field(header_cell: str) -> str:
    """"memory.total [MiB]" -> "memory.total"."""
    return header_cell.split("[")[0].strip()


def parse_nvidia_smi_query(text: str, fields: Sequence[str] = NVIDIA_QUERY_FIELDS) -> list[dict[str, Any]]:
    """Rows of `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`.

    With a header line the columns are taken from it; without one, `fields` gives the order.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    columns = list(fields)
    first = [cell.strip() for cell in lines[0].split(",")]
    if "name" in [_smi_field(c) for c in first]:
        columns = [_smi_field(c) for c in first]
        lines = lines[1:]
    gpus = []
    for position, line in enumerate(lines):
        cells = line.split(",")
        row = {col: _smi_value(cells[i]) if i < len(cells) else None for i, col in enumerate(columns)}
        index = _smi_number(row.get("index"))
        gpus.append({
            "index": index if index is not None else position,
            "name": row.get("name"),
            "memory_total_mib": _smi_number(row.get("memory.total")),
            "memory_used_mib": _smi_number(row.get("memory.used")),
            "compute_cap": row.get("compute_cap"),
            "uuid": row.get("uuid"),
            "utilization_pct": _smi_number(row.get("utilization.gpu")),
            "temperature_c": _smi_number(row.get("temperature.gpu")),
            "pci_bus_id": row.get("pci.bus_id"),
            "driver_version": row.get("driver_version"),
        })
    return gpus


def normalize_pci_slot(bus_id: str | None) -> str | None:
    """nvidia-smi's "00000000:00:06.0" and sysfs's "0000:00:06.0" -> "0000:00:06.0"."""
    if not bus_id:
        return None
    match = re.match(r"^(?:([0-9a-fA-F]+):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$", bus_id.strip())
    if not match:
        return bus_id.strip().lower()
    domain = int(match.group(1) or "0", 16)
    return f"{domain:04x}:{match.group(2).lower()}:{match.group(3).lower()}.{match.group(4)}"


def parse_nvcc_version(text: str) -> str | None:
    """"Cuda compilation tools, release 13.0, V13.0.88" -> "13.0"."""
    match = re.search(r"release (\d+\.\d+)", text)
    return match.group(1) if match else None


def parse_cuda_version_json(text: str) -> str | None:
    """CUDA's version.json ({"cuda": {"version": "12.4.1"}}) -> "12.4"."""
    try:
        data = wire.loads(text)
        full = str(data["cuda"]["version"])
    except (ValueError, KeyError, TypeError):
        return None
    return major_minor(full)


def major_minor(version: str | None) -> str | None:
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def parse_dpkg_status_version(text: str, package: str) -> str | None:
    """Installed version of `package` from /var/lib/dpkg/status (read directly: no dpkg-query run)."""
    for stanza in text.split("\n\n"):
        if (f"Package: {package}\n") not in stanza + "\n" or "Status: install ok installed" not in stanza:
            continue
        match = re.search(r"^Version:\s*(\S+)", stanza, re.MULTILINE)
        if match:
            return match.group(1)
    return None


def cuda_version_from_deb(version: str) -> str | None:
    """Debian's "12.4.131~12.4.1-1" and NVIDIA's "13.0.96-1" -> "12.4" / "13.0"."""
    upstream = version.split(":")[-1]
    if "~" in upstream:
        upstream = upstream.split("~")[1]
    return major_minor(upstream)


def parse_cudnn_version_h(text: str) -> str | None:
    """CUDNN_MAJOR/MINOR/PATCHLEVEL from cudnn_version.h -> "9.14.0"."""
    parts = []
    for name in ("CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL"):
        match = re.search(rf"#define\s+{name}\s+(\d+)", text)
        if not match:
            return None
        parts.append(match.group(1))
    return ".".join(parts)


def parse_rocm_version(text: str) -> str | None:
    """/opt/rocm/.info/version ("6.2.0-66") or a directory name ("rocm-6.2.0") -> "6.2.0"."""
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def parse_rust_version(text: str) -> str | None:
    """"rustc 1.85.0 (4d91de4e4 2025-02-17)" / "cargo 1.85.0 (...)" -> "1.85.0" (keeps "-nightly")."""
    match = re.search(r"^\S+\s+(\d+\.\d+\.\d+(?:-[\w.]+)?)", text.strip())
    return match.group(1) if match else None


def parse_rustup_default_toolchain(settings_toml: str) -> str | None:
    """`default_toolchain = "stable-x86_64-unknown-linux-gnu"` from rustup's settings.toml."""
    match = re.search(r'^default_toolchain\s*=\s*"([^"]+)"', settings_toml, re.MULTILINE)
    return match.group(1) if match else None


def parse_rust_channel_manifest(text: str) -> str | None:
    """rustc's version from a toolchain's lib/rustlib/multirust-channel-manifest.toml ([pkg.rustc])."""
    start = text.find("[pkg.rustc]\n")
    if start < 0:
        return None
    match = re.match(r'\[pkg\.rustc\]\s*version\s*=\s*"(\d+\.\d+\.\d+(?:-[\w.]+)?)', text[start:start + 200])
    return match.group(1) if match else None


# -- host readers -----------------------------------------------------------------------------

def _read(host: Host, path: str) -> str | None:
    """File text, or None when missing or unreadable (permissions, a directory, a vanished device)."""
    try:
        return host.read_text(path)
    except OSError:
        return None


def _is_exe(path: str | None) -> bool:
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)  # type: ignore[arg-type]


def _which(host: Host, name: str, extra_dirs: Sequence[str] = ()) -> str | None:
    found = host.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = os.path.join(directory, name)
        if _is_exe(candidate):
            return candidate
    return None


class Commands:
    """Starts every needed command at once and collects them later: total time is the slowest one."""

    def __init__(self, host: Host) -> None:
        self.env = dict(os.environ)
        self.env.setdefault("LANG", "C.UTF-8")
        self.env.update(host.env)
        self.procs: dict[str, Any] = {}

    def start(self, key: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        if key in self.procs:
            return
        full_env = dict(self.env, **dict(env or {}))
        try:
            self.procs[key] = proc.Proc(list(argv), full_env)
        except OSError as exc:
            self.procs[key] = CommandResult(127, "", f"{argv[0]}: {exc}")

    def result(self, key: str, timeout: float = COMMAND_TIMEOUT_S) -> CommandResult | None:
        started = self.procs.get(key)
        if started is None or isinstance(started, CommandResult):
            return started
        try:
            rc, out, err = started.communicate(timeout=timeout)
            res = CommandResult(rc, proc.text(out), proc.text(err))
        except proc.Timeout:
            res = CommandResult(124, "", f"timed out after {timeout}s")
        self.procs[key] = res
        return res


def _fqdn_in_background() -> tuple[Any, dict[str, str]]:
    """socket.getfqdn() may wait on DNS for seconds; run it aside and give up if it is slow.
    Returns (a lock held until the lookup is done, the box its answer lands in)."""
    box: dict[str, str] = {}
    done = _thread.allocate_lock()
    done.acquire()

    def lookup() -> None:
        try:
            box["fqdn"] = _getfqdn()
        except (OSError, UnicodeError):
            box["fqdn"] = ""
        finally:
            done.release()

    _thread.start_new_thread(lookup, ())
    return done, box


def _getfqdn() -> str:
    """socket.getfqdn(), asking with the name as bytes: a str makes socket load the idna
    codec (with stringprep), ~2 ms of every host's CPU."""
    try:  # only here, in the background lookup's thread; the C module: socket.py imports selectors
        import _socket as socket
    except ImportError:  # pragma: no cover - another Python
        import socket  # type: ignore[no-redef]
    name = socket.gethostname()
    try:
        hostname, aliases, _ = socket.gethostbyaddr(name.encode())  # type: ignore[arg-type]  # bytes: accepted, no idna
    except OSError:
        return name
    return next((n for n in [hostname, *aliases] if "." in n), hostname)


def _multiarch(machine: str) -> str:
    return {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(machine, machine + "-linux-gnu")


def _scan_pci(host: Host, root: str = "/sys/bus/pci/devices") -> list[dict[str, Any]]:
    gpus = []
    try:
        slots = sorted(os.listdir(root))
    except OSError:
        return []
    for slot in slots:
        base = os.path.join(root, slot)
        pci_class = (_read(host, base + "/class") or "").strip().lower()
        if not pci_class.startswith(GPU_CLASS_PREFIXES):
            continue
        vendor = (_read(host, base + "/vendor") or "").strip().lower()
        device = (_read(host, base + "/device") or "").strip().lower()
        entry = pci_gpu_entry(slot, vendor, device, pci_class)
        if entry is None:
            continue
        entry["driver"] = bound_driver(base)     # nvidia, nouveau, nova_core, amdgpu, vfio-pci... or None
        if entry["vendor"] == "amd":
            vram = _read(host, base + "/mem_info_vram_total")  # amdgpu exposes VRAM size in bytes
            if vram and vram.strip().isdigit():
                entry["memory_mib"] = int(vram.strip()) // (1024 * 1024)
        gpus.append(entry)
    return gpus


def _service_mgr(host: Host) -> str:
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    comm = (_read(host, "/proc/1/comm") or "").strip()
    return comm or "unknown"


def _pkg_mgr(host: Host, family: str | None) -> str | None:
    order = ("dnf", "yum", "apt-get") if family == "RedHat" else ("apt-get", "dnf", "yum")
    for tool in order:
        if _which(host, tool, ("/usr/bin", "/bin", "/usr/sbin")):
            return "apt" if tool == "apt-get" else tool
    return None


def _disk_free_mb(paths: Sequence[str] = DISK_PATHS) -> dict[str, int | None]:
    """Free space (for unprivileged users too) where each path is, or would be created."""
    out: dict[str, int | None] = {}
    for path in paths:
        probe = path
        while probe != "/" and not os.path.exists(probe):
            probe = os.path.dirname(probe) or "/"
        try:
            st = os.statvfs(probe)
            out[path] = st.f_bavail * st.f_frsize // (1024 * 1024)
        except OSError:
            out[path] = None
    return out


def cuda_dirs(root: str = "") -> list[str]:
    """Real toolkit directories: /usr/local/cuda* (symlinks resolved, deduplicated) and /usr/lib/cuda.

    `root` prefixes the searched paths (tests build a fake tree; the host uses "").
    """
    seen: list[str] = []
    for path in sorted(glob_paths(root + "/usr/local/cuda*")) + [root + "/usr/lib/cuda"]:
        real = os.path.realpath(path)
        if real in seen or not os.path.isdir(real):
            continue
        if not any(os.path.exists(os.path.join(real, p)) for p in ("bin/nvcc", "version.json", "include",
                                                                      "lib64", "nvvm")):
            continue
        seen.append(real)
    return seen


def _site_dirs() -> list[str]:
    """Where pip puts packages for this python (site.getsitepackages() and the user's), found
    without importing `site`: the agent runs with -S, which spares every host ~3 ms."""
    version = "python%d.%d" % sys.version_info[:2]
    dirs: list[str] = []
    for prefix in (sys.prefix, sys.exec_prefix, "/usr/local", "/usr"):
        for lib in ("lib", "lib64"):
            dirs += [f"{prefix}/{lib}/{version}/site-packages", f"{prefix}/{lib}/{version}/dist-packages"]
    dirs += [f"{sys.prefix}/lib/python3/dist-packages", "/usr/lib/python3/dist-packages",
             os.path.expanduser(f"~/.local/lib/{version}/site-packages")]
    dirs += glob_paths("/usr/local/lib/python3*/dist-packages")
    out: list[str] = []
    for d in dirs:
        if d not in out and os.path.isdir(d):
            out.append(d)
    return out


def parse_cudnn_packages(dpkg_status: str) -> dict[str, list[int]]:
    """NVIDIA's installed cuDNN packages (`libcudnn9-cuda-13`) from /var/lib/dpkg/status -> {"9": [13]}."""
    majors: dict[str, list[int]] = {}
    if "Package: libcudnn" not in dpkg_status:  # most hosts: one scan of the file, not a regex per package
        return majors
    for match in re.finditer(r"^Package: libcudnn(\d+)-cuda-(\d+)$", dpkg_status, re.MULTILINE):
        start = dpkg_status.rfind("\n\n", 0, match.start()) + 1
        end = dpkg_status.find("\n\n", match.end())
        if "Status: install ok installed" in dpkg_status[start:end if end >= 0 else len(dpkg_status)]:
            majors.setdefault(match.group(1), []).append(int(match.group(2)))
    return {k: sorted(set(v)) for k, v in majors.items()}


def parse_cudnn_wheel_major(dist_info: str) -> int | None:
    """"nvidia_cudnn_cu13-9.14.0.64.dist-info" -> 13 (the CUDA major a cuDNN wheel is built for)."""
    match = re.match(r"nvidia_cudnn_cu(\d+)-", os.path.basename(dist_info))
    return int(match.group(1)) if match else None


def _cudnn_packages(host: Host) -> dict[str, list[int]]:
    """cuDNN series -> CUDA majors, from NVIDIA's packages: dpkg's database, else their doc/licence dirs (rpm)."""
    found = parse_cudnn_packages(_read(host, "/var/lib/dpkg/status") or "")
    if found:
        return found
    for path in glob_paths("/usr/share/doc/libcudnn*-cuda-*") + glob_paths("/usr/share/licenses/libcudnn*-cuda-*"):
        match = re.match(r"libcudnn(\d+)-cuda-(\d+)", os.path.basename(path))
        if match:
            found.setdefault(match.group(1), [])
            if int(match.group(2)) not in found[match.group(1)]:
                found[match.group(1)].append(int(match.group(2)))
    return found


def _cudnn(host: Host, toolkits: Sequence[Mapping[str, Any]], machine: str) -> dict[str, Any] | None:
    """Every cuDNN found (system headers, each CUDA toolkit, pip wheels), each with the CUDA majors it
    is built for; the fact is the first, with all of them under `installs`."""
    arch_inc = "/usr/include/" + _multiarch(machine)
    lib_dirs = ["/usr/lib/" + _multiarch(machine), "/usr/lib64", "/usr/lib"]
    packages = _cudnn_packages(host)
    # (include dir, source, library dirs, CUDA majors, where it came from)
    candidates: list[tuple[str, str, list[str], list[int], str | None]] = []
    for inc in ["/usr/include", arch_inc]:
        candidates.append((inc, "header", lib_dirs, [], None))
    for tk in toolkits:
        cuda, version = str(tk["path"]), tk.get("version") or ""
        major = [int(version.split(".")[0])] if version[:1].isdigit() else []
        candidates.append((cuda + "/include", "header", [cuda + "/lib64", cuda + "/lib"] + lib_dirs, major,
                           "in the CUDA tree " + cuda))
    venvs = glob_paths("/opt/provision/venv/lib/python3*/site-packages")   # the cudnn role's pip venv
    for sp in _site_dirs() + [d for d in venvs if os.path.isdir(d)]:
        wheels = glob_paths(sp + "/nvidia_cudnn_cu*.dist-info")
        majors = sorted({m for m in (parse_cudnn_wheel_major(w) for w in wheels) if m})
        names = ", ".join(os.path.basename(w).split("-")[0] for w in wheels)
        candidates.append((sp + "/nvidia/cudnn/include", "pip", [sp + "/nvidia/cudnn/lib"], majors,
                           f"pip wheel {names} in {sp}" if names else f"pip, in {sp}"))
    installs: list[dict[str, Any]] = []
    for inc, source, libs, majors, origin in candidates:
        headers = [inc + "/cudnn_version.h"] + sorted(glob_paths(inc + "/cudnn_version_v*.h"), reverse=True)
        for header in headers:
            text = _read(host, header) if os.path.isfile(header) else None
            version = parse_cudnn_version_h(text or "")
            if not version or any(os.path.realpath(header) == os.path.realpath(i["header"]) for i in installs):
                continue
            libraries: list[str] = []
            for lib_dir in libs:
                found = sorted(glob_paths(lib_dir + "/libcudnn*.so*"))
                libraries.extend(p for p in found if p not in libraries)
                if libraries:
                    break
            if origin is None and packages.get(version.split(".")[0]):
                series = version.split(".")[0]
                majors = packages[series]
                origin = "NVIDIA packages " + ", ".join(f"libcudnn{series}-cuda-{m}" for m in majors)
            installs.append({"version": version, "header": header, "libraries": libraries, "source": source,
                             "cuda_majors": majors, "origin": origin})
            break
    if not installs:
        return None
    return {**installs[0], "installs": installs}


def _rocm(host: Host) -> dict[str, Any] | None:
    versioned = sorted(glob_paths("/opt/rocm-*"), reverse=True)
    if os.path.isdir("/opt/rocm"):
        path = os.path.realpath("/opt/rocm")
    elif versioned:
        path = versioned[0]
    else:
        return None
    version = parse_rocm_version(_read(host, path + "/.info/version") or "") or parse_rocm_version(
        os.path.basename(path))
    rocminfo = path + "/bin/rocminfo"
    if not _is_exe(rocminfo):
        rocminfo = host.which("rocminfo") or ""
    return {"version": version, "path": path, "rocminfo": rocminfo or None}


def _rust_tools(host: Host) -> dict[str, str | None]:
    home = os.path.expanduser("~")
    cargo_home = os.environ.get("CARGO_HOME", home + "/.cargo")
    dirs = [cargo_home + "/bin", home + "/.cargo/bin", "/usr/local/cargo/bin"]
    return {name: _which(host, name, dirs) for name in ("rustc", "cargo", "rustup")}


def rustup_version(rustc: str, rustup: str | None, env: Mapping[str, str]) -> str | None:
    """The Rust version a rustup proxy would run, read from the toolchain's files: no process.

    Running the proxy costs 10-100 ms (it resolves the toolchain first); rustup-managed cargo
    has the same version as rustc. Returns None when `rustc` is not a rustup proxy or the
    toolchain's manifest is missing (then the caller runs `rustc --version`).
    """
    if not rustup:
        return None
    try:
        if os.path.basename(os.path.realpath(rustc)) != "rustup" and not os.path.samefile(rustc, rustup):
            return None
    except OSError:
        return None
    home = env.get("RUSTUP_HOME") or _rust_env(rustc).get("RUSTUP_HOME") or os.path.expanduser("~/.rustup")
    try:
        with open(home + "/settings.toml", encoding="utf-8", errors="replace") as f:
            settings = f.read()
    except OSError:
        settings = ""
    name = env.get("RUSTUP_TOOLCHAIN") or parse_rustup_default_toolchain(settings)
    if not name or "/" in name:
        return None
    for toolchain in [home + "/toolchains/" + name] + sorted(glob_paths(home + "/toolchains/" + name + "-*")):
        try:
            with open(toolchain + "/lib/rustlib/multirust-channel-manifest.toml", encoding="utf-8") as f:
                version = parse_rust_channel_manifest(f.read())
        except (OSError, UnicodeError):
            continue
        if version:
            return version
    return None


def _rust_env(path: str) -> dict[str, str]:
    """Docker's rust images keep toolchains in /usr/local/rustup; their proxies need RUSTUP_HOME set."""
    if path.startswith("/usr/local/cargo/") and "RUSTUP_HOME" not in os.environ and os.path.isdir(
            "/usr/local/rustup"):
        return {"RUSTUP_HOME": "/usr/local/rustup", "CARGO_HOME": "/usr/local/cargo"}
    return {}


# -- the probe --------------------------------------------------------------------------------

def gather(host: Host) -> dict[str, Any]:
    """Everything the planner needs to know about this host, as a JSON-serialisable dict (FACT_KEYS)."""
    fqdn_done, fqdn_box = _fqdn_in_background()
    uname = os.uname()
    env = dict(os.environ)
    env.update(host.env)
    cmds = Commands(host)

    os_release = parse_os_release(_read(host, "/etc/os-release") or _read(host, "/usr/lib/os-release") or "")
    debian_version = parse_debian_version(_read(host, "/etc/debian_version")) if os_release.get(
        "ID") == "debian" else None
    dist = distribution_facts(os_release, debian_version)
    is_wsl = parse_is_wsl(_read(host, "/proc/version"), _read(host, "/proc/sys/kernel/osrelease"), env)

    # Start every command first, then read files while they run.
    gpus = _scan_pci(host)
    proc_nvidia = _read(host, "/proc/driver/nvidia/version")
    wsl_smi = "/usr/lib/wsl/lib/nvidia-smi"
    nvidia_present = (any(g["vendor"] == "nvidia" for g in gpus) or proc_nvidia is not None
                      or (is_wsl and os.path.exists(wsl_smi)))
    smi = (_which(host, "nvidia-smi", ("/usr/bin", "/usr/lib/wsl/lib")) if nvidia_present else None)
    if smi:
        start_nvidia_smi(cmds, smi)

    toolkit_dirs = cuda_dirs()
    toolkits: list[dict[str, Any]] = []
    for path in toolkit_dirs:
        nvcc = path + "/bin/nvcc"
        if not _is_exe(nvcc):
            nvcc = "/usr/bin/nvcc" if path == "/usr/lib/cuda" and _is_exe("/usr/bin/nvcc") else ""
        version = parse_cuda_version_json(_read(host, path + "/version.json") or "")
        toolkits.append({"version": version, "path": path, "nvcc": nvcc or None,
                         "source": "version.json" if version else None})
        if not version and nvcc:
            cmds.start(os.path.realpath(nvcc), [nvcc, "--version"])
    nvcc_on_path = host.which("nvcc")
    if nvcc_on_path:
        cmds.start(os.path.realpath(nvcc_on_path), [nvcc_on_path, "--version"])

    rust_tools = _rust_tools(host)
    rustc = rust_tools["rustc"]
    rust_version = rustup_version(rustc, rust_tools["rustup"], env) if rustc else None
    for name in ("rustc", "cargo") if rust_version is None else ():
        tool = rust_tools[name]
        if tool:
            cmds.start(name, [tool, "--version"], env=_rust_env(tool))

    # File-only facts while the commands run.
    passwd = pwd.getpwuid(os.geteuid())
    facts: dict[str, Any] = {
        "hostname": uname.nodename,  # gethostname(), without importing socket
        "fqdn": None,
        "system": uname.sysname,
        **dist,
        "architecture": uname.machine,
        "kernel": uname.release,
        "is_wsl": is_wsl,
        "processor_vcpus": os.cpu_count(),
        "memtotal_mb": parse_meminfo_mb(_read(host, "/proc/meminfo") or ""),
        "pkg_mgr": _pkg_mgr(host, dist["os_family"]),
        "service_mgr": _service_mgr(host),
        "python": {"version": sys.version.split()[0], "executable": sys.executable},
        "user_id": passwd.pw_name,
        "user_uid": passwd.pw_uid,
        "env_path": env.get("PATH", ""),
        "gpus": gpus,
        "nvidia": None,
        "cudnn": None,
        "rocm": _rocm(host),
        "disk_free_mb": _disk_free_mb(),
        "gpu_kernel": gpu_kernel_facts(uname.release, gpus),
    }

    # Collect the commands.
    if nvidia_present:
        facts["nvidia"] = nvidia_facts(cmds, smi, proc_nvidia, gpus)
    for tk in toolkits:
        if tk["version"] is None and tk["nvcc"]:
            res = cmds.result(os.path.realpath(tk["nvcc"]))
            tk["version"] = parse_nvcc_version(res.stdout) if res and res.ok else None
            tk["source"] = "nvcc" if tk["version"] else None
    nvcc_version = None
    if nvcc_on_path:
        res = cmds.result(os.path.realpath(nvcc_on_path))
        nvcc_version = parse_nvcc_version(res.stdout) if res and res.ok else None
    for tk in toolkits:
        if tk["version"] is None:
            _version_without_nvcc(host, tk)
    facts["cudnn"] = _cudnn(host, toolkits, uname.machine)
    facts["cuda"] = {
        "toolkits": toolkits,
        "default_path": os.path.realpath("/usr/local/cuda") if os.path.exists("/usr/local/cuda") else None,
        "nvcc_on_path": nvcc_on_path,
        "nvcc_version": nvcc_version,
    }
    rust: dict[str, Any] = {"rustc": rust_version, "cargo": rust_version if rust_tools["cargo"] else None,
                            "rustup": bool(rust_tools["rustup"]), "path_rustc": rustc}
    for name in ("rustc", "cargo") if rust_version is None else ():
        res = cmds.result(name)
        if res is not None and res.ok:
            rust[name] = parse_rust_version(res.stdout)
    facts["rust"] = rust

    if fqdn_done.acquire(timeout=0.05):
        fqdn_done.release()
    facts["fqdn"] = fqdn_box.get("fqdn") or facts["hostname"]
    return {key: facts[key] for key in FACT_KEYS}


def _version_without_nvcc(host: Host, toolkit: dict[str, Any]) -> None:
    """A toolkit directory with neither version.json nor nvcc: ask dpkg's database, then the name."""
    from_name = re.search(r"cuda-(\d+)\.(\d+)$", toolkit["path"])
    if toolkit["path"] == "/usr/lib/cuda":
        packages = ["nvidia-cuda-toolkit", "nvidia-cuda-dev"]
    elif from_name:
        packages = [f"cuda-cudart-{from_name.group(1)}-{from_name.group(2)}"]
    else:
        packages = []
    status = _read(host, "/var/lib/dpkg/status") if packages else None
    for package in packages:
        deb = parse_dpkg_status_version(status or "", package)
        if deb and cuda_version_from_deb(deb):
            toolkit["version"], toolkit["source"] = cuda_version_from_deb(deb), "dpkg"
            return
    if from_name:
        toolkit["version"], toolkit["source"] = f"{from_name.group(1)}.{from_name.group(2)}", "path"


def start_nvidia_smi(cmds: Commands, smi: str) -> None:
    """The two nvidia-smi calls: per-GPU fields, and the header that names the CUDA version."""
    fields = ",".join(NVIDIA_QUERY_FIELDS)
    cmds.start("smi_query", [smi, "--query-gpu=" + fields, "--format=csv,noheader,nounits"])
    cmds.start("smi_header", [smi, *NVIDIA_HEADER_ARGS])


def nvidia_facts(cmds: Commands, smi: str | None, proc_nvidia: str | None,
                 pci_gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """The `nvidia` fact from the started nvidia-smi calls; names and memory go into `pci_gpus` too."""
    info: dict[str, Any] = {
        "driver_version": parse_proc_driver_nvidia_version(proc_nvidia or ""),
        "cuda_version": None, "smi_ok": False, "error": None, "gpus": [],
    }
    if not smi:
        info["error"] = "nvidia-smi not found (driver userspace not installed?)"
        return info
    query = cmds.result("smi_query")
    header = cmds.result("smi_header")
    if query is None or not query.ok:
        out = (query.stderr or query.stdout).strip() if query else ""
        info["error"] = out.splitlines()[-1] if out else "nvidia-smi failed"
        return info
    info["smi_ok"] = True
    gpus = parse_nvidia_smi_query(query.stdout)
    if header is not None and header.ok:
        driver, cuda = parse_nvidia_smi_header(header.stdout)
        info["cuda_version"] = cuda
        info["driver_version"] = driver or info["driver_version"]
    if gpus and gpus[0].get("driver_version"):
        info["driver_version"] = gpus[0]["driver_version"]
    by_slot = {normalize_pci_slot(g["pci_slot"]): g for g in pci_gpus}
    for gpu in gpus:
        gpu.pop("driver_version", None)
        pci = by_slot.get(normalize_pci_slot(gpu.get("pci_bus_id")))
        if pci is not None:
            pci["model"] = gpu["name"]
            pci["memory_mib"] = gpu["memory_total_mib"]
    info["gpus"] = gpus
    return info
