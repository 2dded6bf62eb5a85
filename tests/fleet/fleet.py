"""A fleet of real SSH hosts on this machine, for end-to-end tests and benchmarks.

Each host is a Debian 13 (trixie) root made once with debootstrap and cached under
/var/tmp/provision-fleet/, seen through its own overlayfs (so hosts never see each
other's changes), with its own mount/UTS/PID namespaces, hostname, SSH host key and an
``sshd`` listening on 127.0.0.1:PORT.  The hosts share this machine's network namespace,
so apt inside reaches Debian's mirror exactly as this machine does.

Library::

    from tests.fleet.fleet import Fleet
    with Fleet(n=5, name="t1") as fleet:
        h = fleet.hosts[0]                      # FleetHost(name='host01', port=..., root=Path)
        fleet.inventory_path                    # Ansible YAML inventory (user root)
        fleet.count_exec_sessions(h)

CLI (for humans)::

    python -m tests.fleet.fleet build           # build/cache the image only
    python -m tests.fleet.fleet up 5            # start 5 hosts, print paths, wait for Ctrl-C
    python -m tests.fleet.fleet up 5 --detach   # start, record state, return
    python -m tests.fleet.fleet down            # stop detached fleets and fleets whose owner died
    python -m tests.fleet.fleet status

See tests/fleet/README.md for how it works and the pitfalls.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import stat as stat_mod
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

# --------------------------------------------------------------------------- constants

BASE_DIR = Path(os.environ.get("PROVISION_FLEET_DIR", "/var/tmp/provision-fleet"))
SUITE = "trixie"
IMAGE_VERSION = "trixie-v1"          # bump when the image recipe changes
MIRROR = os.environ.get("PROVISION_FLEET_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("PROVISION_FLEET_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
COMPONENTS = "main contrib non-free non-free-firmware"
PACKAGES = [
    "openssh-server", "python3", "sudo", "ca-certificates", "procps", "iproute2",
    "less", "curl", "gpg", "passwd",
]
DEFAULT_ADMIN_USER = "admin"
DEFAULT_ADMIN_PASSWORD = "admin-pass"
LOOPBACK = "127.0.0.1"
# Listening ports are picked outside the kernel's ephemeral range (32768-60999 here), so a
# restarted host never finds its port taken by an outgoing connection's source port.
PORT_RANGE = (20000, 32000)
# apt.conf.d files of this machine that are copied into the image when present (never
# docker-clean: it disables the binary caches; nothing here deletes downloaded debs).
COPY_APT_CONF = ["99artifact-registry", "99farm-no-dep11", "docker-no-languages"]
SNAPSHOT_PATHS = ("/etc", "/usr", "/var/lib/dpkg", "/root", "/home", "/opt", "/tmp")
SSHD_CONFIG = (
    "# provision test fleet (first match wins: this file is included before the rest)\n"
    "ListenAddress %s\n"
    "HostKey /etc/ssh/ssh_host_ed25519_key\n"
    "PermitRootLogin prohibit-password\n"
    "PasswordAuthentication no\n"
    "KbdInteractiveAuthentication no\n"
    "PubkeyAuthentication yes\n"
    "UseDNS no\n"
    "LogLevel DEBUG1\n" % LOOPBACK)
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# sshd log lines (LogLevel DEBUG1, OpenSSH 10.0p1 of trixie), one per event:
#   "debug1: server_input_channel_req: channel 0 request exec reply 1"   (exec request)
#   "debug1: server_input_channel_req: channel 0 request subsystem reply 1" (sftp...)
#   "debug1: server_input_channel_open: ctype session rchan 0 win 2097152 max 32768"
#   "Accepted publickey for root from 127.0.0.1 port 43210 ssh2: ED25519 SHA256:..."
_RE_CHAN_REQ = re.compile(r"server_input_channel_req: channel \d+ request (\S+) reply")
_RE_CHAN_OPEN = re.compile(r"server_input_channel_open: ctype (\S+) rchan")
_RE_ACCEPTED = re.compile(r"Accepted \S+ for \S+ from ")
_RE_CONNECTION = re.compile(r"Connection from \S+ port \d+ on ")

# --------------------------------------------------------------------------- low level

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2


class FleetError(RuntimeError):
    pass


def _mount(source: str, target: str | Path, fstype: str | None, flags: int = 0,
           data: str | None = None) -> None:
    rc = _libc.mount(source.encode(), str(target).encode(), fstype.encode() if fstype else None,
                     flags, data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, "mount %s (%s) on %s: %s" % (source, fstype, target, os.strerror(err)))


def _umount(target: str | Path, flags: int = 0) -> None:
    if _libc.umount2(str(target).encode(), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "umount %s: %s" % (target, os.strerror(err)))


def _unescape_mountinfo(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts_under(path: str | Path) -> list[str]:
    """Mount points (in this process's mount namespace) at or below `path`, deepest first."""
    prefix = os.path.realpath(str(path))
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape_mountinfo(line.split()[4])
            if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda p: -p.count("/"))


def _umount_all_under(path: str | Path) -> list[str]:
    """Unmount everything at/below path (deepest first); lazy-detach what stays busy."""
    done = []
    for _ in range(3):
        mps = mounts_under(path)
        if not mps:
            break
        for mp in mps:
            try:
                _umount(mp)
            except OSError as exc:
                if exc.errno == errno.EINVAL:     # already gone / not a mount point any more
                    continue
                if exc.errno == errno.EBUSY:
                    _umount(mp, MNT_DETACH)
                else:
                    raise
            done.append(mp)
    return done


def _proc_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): PID + starttime names a process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[19])


def _proc_state(pid: int) -> str | None:
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()[0]


def _pid_alive(pid: int, starttime: int | None = None) -> bool:
    st = _proc_state(pid)
    if st is None or st in ("Z", "X"):
        return False
    return starttime is None or _proc_starttime(pid) == starttime


def _children(pid: int) -> list[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _wait_gone(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if _pid_alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


def _write(path: Path, data: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(".%s.fleet-tmp" % path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _ensure_dir(path: Path, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
    if not path.is_dir():
        path.mkdir(mode=mode, parents=False)
        os.chown(path, uid, gid)
        os.chmod(path, mode)


def _gen_ed25519(comment: str) -> tuple[bytes, str]:
    """(OpenSSH private key PEM, 'ssh-ed25519 AAAA... comment') without spawning ssh-keygen."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    return priv, "%s %s" % (pub, comment)


def _hash_password(password: str) -> str:
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return out.stdout.decode().strip()


def _port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _pick_port(taken: set) -> int:
    for _ in range(1000):
        port = random.randint(*PORT_RANGE)
        if port not in taken and _port_free(port):
            taken.add(port)
            return port
    raise FleetError("no free TCP port on %s in %s" % (LOOPBACK, PORT_RANGE))


def check_requirements() -> str | None:
    """None when this machine can run a fleet, else the reason it cannot."""
    if os.geteuid() != 0:
        return "the fleet needs root (mount, unshare, chroot)"
    for tool in ("debootstrap", "unshare", "chroot", "mount", "setpriv", "openssl", "nsenter"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return "the kernel has no overlay filesystem"
    except OSError:
        return "no /proc/filesystems"
    if not image_ready():
        # debootstrap needs the mirror: fail fast (and skip) instead of hanging for minutes.
        try:
            host = MIRROR.split("/")[2]
            socket.create_connection((host.split(":")[0], int(host.split(":")[1]) if ":" in host else 80),
                                     timeout=10).close()
        except OSError as exc:
            return "the image is not built and the mirror %s is unreachable: %s" % (MIRROR, exc)
    return None

# --------------------------------------------------------------------------- the image


def image_dir(base: Path = BASE_DIR) -> Path:
    return base / IMAGE_VERSION


def image_root(base: Path = BASE_DIR) -> Path:
    return image_dir(base) / "root"


def image_ready(base: Path = BASE_DIR) -> bool:
    return (image_dir(base) / "STAMP").is_file()


def _log_default(msg: str) -> None:
    print("[fleet] %s" % msg, file=sys.stderr, flush=True)


def ensure_image(base: Path = BASE_DIR, log: Callable[[str], None] = _log_default) -> Path:
    """Build the trixie image once (under a lock, so concurrent processes wait); return its root."""
    if image_ready(base):
        return image_root(base)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / (IMAGE_VERSION + ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if image_ready(base):
            return image_root(base)
        final = image_dir(base)
        for stale in [final] + list(base.glob(".%s.build-*" % IMAGE_VERSION)):
            if stale.exists():
                log("removing unfinished image %s" % stale)
                _rmtree_no_mounts(stale)
        tmp = base / (".%s.build-%d" % (IMAGE_VERSION, os.getpid()))
        tmp.mkdir()
        t0 = time.monotonic()
        _build_image(tmp, log)
        _write(tmp / "STAMP", json.dumps({
            "version": IMAGE_VERSION, "suite": SUITE, "mirror": MIRROR, "packages": PACKAGES,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.monotonic() - t0, 1),
        }, indent=1) + "\n")
        os.rename(tmp, final)
        log("image ready in %.0fs: %s" % (time.monotonic() - t0, final / "root"))
    return image_root(base)


def _rmtree_no_mounts(path: Path) -> None:
    if mounts_under(path):
        _umount_all_under(path)
    if mounts_under(path):
        raise FleetError("refusing to remove %s: mounts remain below it" % path)
    shutil.rmtree(path)


def _chroot_sh(root: Path, script: str, log: Callable[[str], None]) -> None:
    """Run a shell script chrooted in `root` with /proc mounted, in throwaway namespaces."""
    outer = ('set -e; mount -t proc proc "$R/proc"; exec chroot "$R" /bin/sh -ec "$S"')
    env = {"PATH": HOST_PATH, "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
           "R": str(root), "S": script, "HOME": "/root"}
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--", "/bin/sh", "-ec", outer]
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise FleetError("image step failed (rc %d): %s\n%s" % (proc.returncode, script,
                                                                 proc.stdout.decode(errors="replace")[-4000:]))


def _build_image(tmp: Path, log: Callable[[str], None]) -> None:
    root = tmp / "root"
    cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, str(root), MIRROR]
    for attempt in (1, 2):
        log("debootstrap %s into %s (about a minute)..." % (SUITE, root))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={"PATH": HOST_PATH, "LANG": "C.UTF-8"})
        if proc.returncode == 0:
            break
        out = proc.stdout.decode(errors="replace")
        if attempt == 2:
            raise FleetError("debootstrap failed:\n" + out[-4000:])
        log("debootstrap failed, retrying once:\n" + out[-1500:])
        _rmtree_no_mounts(root)
    # apt: sources with contrib/non-free, this machine's apt settings, keep downloaded debs.
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    _write(root / "etc/apt/sources.list.d/debian.sources",
           "Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: %s\n"
           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
           "Types: deb\nURIs: %s\nSuites: %s-security\nComponents: %s\n"
           "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
           % (MIRROR, SUITE, SUITE, COMPONENTS, SECURITY_MIRROR, SUITE, COMPONENTS))
    for name in COPY_APT_CONF:
        src = Path("/etc/apt/apt.conf.d") / name
        if src.is_file():
            shutil.copyfile(src, root / "etc/apt/apt.conf.d" / name)
    # any proxy setting of this machine's apt must hold inside too
    for src in Path("/etc/apt/apt.conf.d").glob("*"):
        if src.is_file() and src.name not in COPY_APT_CONF:
            text = src.read_text(errors="replace")
            if re.search(r"Acquire::(https?|ftp)::Proxy", text, re.IGNORECASE):
                shutil.copyfile(src, root / "etc/apt/apt.conf.d" / src.name)
    _write(root / "etc/apt/apt.conf.d/99provision-fleet",
           "// provision test fleet: keep every downloaded .deb (the archive dir is shared by hosts)\n"
           'APT::Keep-Downloaded-Packages "true";\n'
           'Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
    # ssh: no host keys in the image (each host gets its own), fleet defaults first in sshd_config.d
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root / "etc/ssh/sshd_config.d/00-provision-fleet.conf", SSHD_CONFIG)
    _write(root / "etc/hostname", "fleet\n")
    _write(root / "etc/sudoers.d/provision-fleet",
           "# provision test fleet: %s is in group sudo, which needs its password\n" % DEFAULT_ADMIN_USER,
           mode=0o440)
    _chroot_sh(root, (
        f"useradd --create-home --shell /bin/bash --groups sudo {DEFAULT_ADMIN_USER}\n"
        f"echo '{DEFAULT_ADMIN_USER}:{DEFAULT_ADMIN_PASSWORD}' | chpasswd\n"
        "apt-get update\n"
        "apt-get clean\n"
        "apt-cache gencaches\n"
        "mkdir -p /var/cache/apt/archives/partial /root/.ssh\n"
        "chmod 700 /root/.ssh\n"), log)
    n_lists = len(list((root / "var/lib/apt/lists").glob("*Packages*")))
    if n_lists == 0:
        raise FleetError("apt-get update left no package lists in the image")
    log("apt lists in image: %d Packages files" % n_lists)

# --------------------------------------------------------------------------- hosts


class Entry(NamedTuple):
    """One file in a snapshot. digest: sha256 hex (regular file), link target (symlink), else None."""
    mode: int
    size: int
    digest: str | None
    uid: int
    gid: int
    mtime_ns: int | None = None


@dataclass
class FleetHost:
    name: str
    port: int
    dir: Path                       # per-host dir (upper, work, merged, sshd.log)
    host_key_pub: str = ""          # 'ssh-ed25519 AAAA...'
    pid: int | None = None       # PID of `unshare` (what stop() kills); None when stopped
    init_pid: int | None = None  # PID (in our namespace) of the host's PID 1 = its sshd
    address: str = LOOPBACK
    netns: str | None = None     # a network namespace of this fleet (add_netns) that the sshd runs in
    proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    log_offset: int = field(default=0, repr=False)     # counting starts here (reset_log)
    spawn_offset: int = field(default=0, repr=False)   # log size at the last start
    starts: int = field(default=0, repr=False)

    @property
    def root(self) -> Path:
        """The host's merged root as seen from the controller (overlay mounted here)."""
        return self.dir / "merged"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def path(self, p: str) -> Path:
        """A path inside the host, as a controller path under its merged root."""
        return self.root / p.lstrip("/")

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names it: `[127.0.0.1]:PORT`, or the bare address on port 22."""
        return self.address if self.port == 22 else "[%s]:%d" % (self.address, self.port)


_START_SCRIPT = r'''
set -e
R="$FLEET_ROOT"
hostname "$FLEET_HOSTNAME"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t tmpfs -o mode=755,nosuid,nodev,size=64m tmpfs "$R/run"
mkdir -m 755 "$R/run/sshd" "$R/run/lock" "$R/run/fleet"
mount -t tmpfs -o mode=755,nosuid,size=1m tmpfs "$R/dev"
cd "$R/dev"
touch null zero full random urandom tty
for d in null zero full random urandom tty; do mount --bind "/dev/$d" "$d"; done
mkdir pts shm mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts pts
mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m tmpfs shm
ln -s pts/ptmx ptmx; ln -s /proc/self/fd fd
ln -s /proc/self/fd/0 stdin; ln -s /proc/self/fd/1 stdout; ln -s /proc/self/fd/2 stderr
cd /
if [ -n "$FLEET_ARCHIVES" ]; then
  mount --bind "$FLEET_ARCHIVES" "$R/var/cache/apt/archives"
  mount --bind "$FLEET_ARCHIVES_LOCK" "$R/var/cache/apt/archives/lock"
  ln -s "/var/cache/apt/archives/auxfiles/$FLEET_PARTIAL" "$R/run/fleet/apt-partial"
fi
touch "$R/run/fleet/sshd.log"
mount --bind "$FLEET_LOG" "$R/run/fleet/sshd.log"
echo "fleet: $FLEET_HOSTNAME starting sshd on $FLEET_LISTEN port $FLEET_PORT" >&2
exec chroot "$R" /usr/sbin/sshd -D -E /run/fleet/sshd.log "$@"
'''


_live_fleets: weakref.WeakSet[Fleet] = weakref.WeakSet()


def _close_live_fleets() -> None:
    for fl in list(_live_fleets):
        try:
            fl.close()
        except Exception as exc:
            print("fleet: teardown at exit failed: %s" % exc, file=sys.stderr)


atexit.register(_close_live_fleets)


class Fleet:
    """N real SSH hosts.  Use as a context manager (or call up()/close())."""

    def __init__(self, n: int = 1, name: str | None = None, *, base_dir: str | Path | None = None,
                 admin_user: str = DEFAULT_ADMIN_USER, admin_password: str = DEFAULT_ADMIN_PASSWORD,
                 sshd_options: dict[str, str] | None = None, log_level: str = "DEBUG1",
                 share_apt_archives: bool = True, die_with_parent: bool = True,
                 start_timeout: float = 60.0, log: Callable[[str], None] = _log_default):
        if n < 0:
            raise ValueError("n must be >= 0")
        self.n = n
        self.base = Path(base_dir) if base_dir else BASE_DIR
        self.name = name or "fleet"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError("fleet name may hold only letters, digits, '_', '.', '-'")
        self.id = "%s-%s" % (self.name, uuid.uuid4().hex[:8])
        self.dir = self.base / "hosts" / self.id
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.sshd_options = dict(sshd_options or {})
        self.sshd_options.setdefault("LogLevel", log_level)
        self.share_apt_archives = share_apt_archives
        self.die_with_parent = die_with_parent
        self.start_timeout = start_timeout
        self.log = log
        self.hosts: list[FleetHost] = []
        self.detached = False
        self._lock = threading.RLock()
        self._closed = False
        self._up = False
        self._ports: set = set()
        self.netns_names: list[str] = []    # network namespaces this fleet made (deleted by close())
        self._links = 0
        self._image: Path | None = None
        self.timings: dict[str, float] = {}

    # ----- paths
    @property
    def key_path(self) -> Path:
        """Client private key (ed25519, no passphrase) accepted for root and admin on every host."""
        return self.dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def admin_inventory_path(self) -> Path:
        return self.dir / "inventory-admin.yml"

    @property
    def ssh_config_path(self) -> Path:
        """OpenSSH client config: `ssh -F <this> host01`."""
        return self.dir / "ssh_config"

    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    @property
    def archives_dir(self) -> Path:
        return self.base / "apt-archives"

    def host(self, name_or_index: str | int | FleetHost) -> FleetHost:
        if isinstance(name_or_index, FleetHost):
            return name_or_index
        if isinstance(name_or_index, int):
            return self.hosts[name_or_index]
        for h in self.hosts:
            if h.name == name_or_index:
                return h
        raise KeyError(name_or_index)

    # ----- lifecycle
    def __enter__(self) -> Fleet:
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def up(self) -> Fleet:
        """Build the image if needed, create n hosts and start them all."""
        with self._lock:
            if self._up:
                return self
            reason = check_requirements()
            if reason:
                raise FleetError(reason)
            t0 = time.monotonic()
            self._image = ensure_image(self.base, self.log)
            self.timings["image"] = time.monotonic() - t0
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            self.dir.mkdir(mode=0o700)
            _live_fleets.add(self)
            self._up = True
            self._write_state()
            t1 = time.monotonic()
            try:
                self._prepare_common()
                self.add_hosts(self.n, start=True)
            except BaseException:
                self.close()
                raise
            self.timings["start"] = time.monotonic() - t1
            return self

    def add_hosts(self, count: int, start: bool = True, netns: str | None = None,
                  addresses: Sequence[str] = ()) -> list[FleetHost]:
        """Create `count` more hosts (hostNN numbering continues) and start them.

        netns: a network namespace of this fleet (add_netns): each host's sshd runs in it and listens
        on its address from `addresses` (port 22), which is added to the namespace's `lo` if no
        interface there has it. Only what is inside the fleet's namespaces can reach those hosts."""
        if netns is not None and len(addresses) != count:
            raise ValueError("a host in a network namespace needs an address")
        if netns is not None and netns not in self.netns_names:
            raise ValueError("%s is not a network namespace of this fleet" % netns)
        with self._lock:
            new = []
            for k in range(count):
                i = len(self.hosts) + 1
                name = "host%02d" % i
                if netns is None:
                    h = FleetHost(name=name, port=_pick_port(self._ports), dir=self.dir / name)
                else:
                    h = FleetHost(name=name, port=22, dir=self.dir / name, address=addresses[k], netns=netns)
                    self._ensure_address(netns, addresses[k])
                self.hosts.append(h)
                self._prepare_host(h)
                new.append(h)
            self._write_host_files()
            if start:
                self._start_many(new)
            self._write_state()
            return new

    def close(self) -> None:
        """Stop every host (SIGKILL by PID), unmount everything, remove the fleet's dirs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _live_fleets.discard(self)
            if not self._up:
                return
            t0 = time.monotonic()
            errors = []
            self._stop_many([h for h in self.hosts if h.pid])
            try:
                _umount_all_under(self.dir)
            except OSError as exc:
                errors.append(str(exc))
            for h in self.hosts:
                shutil.rmtree(self.archives_dir / "auxfiles" / self._partial_name(h), ignore_errors=True)
            errors += _delete_netns(self.netns_names)
            try:
                _rmtree_no_mounts(self.dir)
            except (OSError, FleetError) as exc:
                errors.append(str(exc))
            self.timings["teardown"] = time.monotonic() - t0
            if errors:
                raise FleetError("fleet teardown: " + "; ".join(errors))

    # ----- one-time setup
    def _prepare_common(self) -> None:
        priv, pub = _gen_ed25519("provision-fleet@%s" % self.id)
        _write(self.key_path, priv, mode=0o600)
        _write(Path(str(self.key_path) + ".pub"), pub + "\n")
        self._client_pub = pub
        self._admin_hash = None if self.admin_password == DEFAULT_ADMIN_PASSWORD else _hash_password(
            self.admin_password)
        passwd = (self._image / "etc/passwd").read_text()
        ids = {ln.split(":")[0]: ln.split(":") for ln in passwd.splitlines() if ln.count(":") >= 6}
        if self.admin_user not in ids:
            raise FleetError("user %s not in image" % self.admin_user)
        self._admin_uid, self._admin_gid = int(ids[self.admin_user][2]), int(ids[self.admin_user][3])
        self._admin_home = ids[self.admin_user][5]
        self._apt_uid = int(ids["_apt"][2]) if "_apt" in ids else 0
        try:
            self._resolv = Path("/etc/resolv.conf").read_bytes()
        except OSError:
            self._resolv = None
        if self.share_apt_archives:
            arch = self.archives_dir
            arch.mkdir(parents=True, exist_ok=True)
            (arch / "auxfiles").mkdir(exist_ok=True)
            (arch / "lock").touch()
            link = arch / "partial"
            if not link.is_symlink():
                if link.is_dir():
                    shutil.rmtree(link)
                tmp = arch / (".partial-link.%d" % os.getpid())
                os.symlink("/run/fleet/apt-partial", tmp)
                os.replace(tmp, link)

    def _partial_name(self, h: FleetHost) -> str:
        return "%s-%s" % (self.id, h.name)

    def _prepare_host(self, h: FleetHost) -> None:
        """mkdir + overlay mount + per-host files (hostname, hosts, host key, authorized keys)."""
        h.dir.mkdir(mode=0o700)
        for d in (h.upper, h.work, h.root):
            d.mkdir(mode=0o755)
        _mount("overlay", h.root, "overlay", 0,
               "lowerdir=%s,upperdir=%s,workdir=%s" % (self._image, h.upper, h.work))
        r = h.root
        _write(r / "etc/hostname", h.name + "\n")
        _write(r / "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n"
               "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
               "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n" % h.name)
        if self._resolv is not None:
            _write(r / "etc/resolv.conf", self._resolv)
        priv, pub = _gen_ed25519("root@%s" % h.name)
        _write(r / "etc/ssh/ssh_host_ed25519_key", priv, mode=0o600)
        _write(r / "etc/ssh/ssh_host_ed25519_key.pub", pub + "\n")
        self._write_sshd_config(h)
        h.host_key_pub = " ".join(pub.split()[:2])
        _ensure_dir(r / "root/.ssh", 0o700)
        _write(r / "root/.ssh/authorized_keys", self._client_pub + "\n", mode=0o600)
        home = r / self._admin_home.lstrip("/")
        _ensure_dir(home / ".ssh", 0o700, self._admin_uid, self._admin_gid)
        _write(home / ".ssh/authorized_keys", self._client_pub + "\n", mode=0o600,
               uid=self._admin_uid, gid=self._admin_gid)
        if self._admin_hash:
            shadow = (r / "etc/shadow").read_text().splitlines()
            out = []
            for ln in shadow:
                parts = ln.split(":")
                if parts[0] == self.admin_user:
                    parts[1] = self._admin_hash
                out.append(":".join(parts))
            _write(r / "etc/shadow", "\n".join(out) + "\n", mode=0o640, gid=self._shadow_gid(r))
        (h.dir / "apt-archives.lock").touch()
        if self.share_apt_archives:
            _ensure_dir(self.archives_dir / "auxfiles" / self._partial_name(h), 0o700, self._apt_uid, 0)
        h.log_path.touch()

    @staticmethod
    def _shadow_gid(root: Path) -> int:
        for ln in (root / "etc/group").read_text().splitlines():
            if ln.startswith("shadow:"):
                return int(ln.split(":")[2])
        return 0

    def _write_host_files(self) -> None:
        """known_hosts, inventories, ssh_config (rewritten whenever hosts change)."""
        _write(self.known_hosts_path, "".join("%s %s\n" % (h.known_hosts_name, h.host_key_pub)
                                              for h in self.hosts))
        self.write_inventory(self.inventory_path, user="root")
        self.write_inventory(self.admin_inventory_path, user="admin")
        cfg = []
        for h in self.hosts:
            cfg.append("Host %s\n  HostName %s\n  Port %d\n  User root\n  IdentityFile %s\n"
                       "  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n"
                       % (h.name, h.address, h.port, self.key_path, self.known_hosts_path))
        _write(self.ssh_config_path, "\n".join(cfg))

    def write_inventory(self, path: str | Path | None = None, user: str = "root",
                        extra_vars: dict[str, Any] | None = None,
                        hosts: Sequence[str | int | FleetHost] | None = None,
                        host_vars: dict[str, dict[str, Any]] | None = None) -> Path:
        """Write an Ansible YAML inventory of (some of) the hosts.

        user='root' logs in as root; user='admin' logs in as the sudo user and sets
        ansible_become_password (its sudo needs the password).  extra_vars go to all.vars,
        host_vars[name] to that host."""
        import yaml

        if user == "admin":
            user = self.admin_user
        sel = [self.host(x) for x in hosts] if hosts is not None else list(self.hosts)
        hv: dict[str, Any] = {}
        for h in sel:
            d = {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": user,
                 "ansible_ssh_private_key_file": str(self.key_path)}
            d.update((host_vars or {}).get(h.name, {}))
            hv[h.name] = d
        vars_: dict[str, Any] = {
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes "
                                       "-o IdentitiesOnly=yes" % self.known_hosts_path,
            "ansible_ssh_known_hosts_file": str(self.known_hosts_path),
        }
        if user == self.admin_user:
            vars_["ansible_become_password"] = self.admin_password
        vars_.update(extra_vars or {})
        path = Path(path) if path is not None else self.dir / ("inventory-%s.yml" % uuid.uuid4().hex[:6])
        _write(path, yaml.safe_dump({"all": {"hosts": hv, "vars": vars_}}, sort_keys=False))
        return path

    # ----- start / stop
    def _spawn(self, h: FleetHost) -> None:
        env = {"PATH": HOST_PATH, "LANG": "C.UTF-8", "FLEET_ROOT": str(h.root), "FLEET_HOSTNAME": h.name,
               "FLEET_PORT": str(h.port), "FLEET_LISTEN": h.address,
               "FLEET_ARCHIVES": str(self.archives_dir) if self.share_apt_archives else "",
               "FLEET_ARCHIVES_LOCK": str(h.dir / "apt-archives.lock"),
               "FLEET_PARTIAL": self._partial_name(h), "FLEET_LOG": str(h.log_path)}
        sshd_args = []
        for k, v in self.sshd_options.items():
            sshd_args += ["-o", "%s=%s" % (k, v)]
        argv = ["unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private",
                "--", "/bin/sh", "-c", _START_SCRIPT, "fleet-host"] + sshd_args
        if h.netns:
            # nsenter without a PID namespace execs: the PID stays unshare's
            argv = ["nsenter", "--net=" + _netns_path(h.netns), "--"] + argv
        if self.die_with_parent:
            # setpriv execs unshare: the PID we get is still unshare's.
            argv = ["setpriv", "--pdeathsig", "KILL", "--"] + argv
        with open(h.log_path, "ab") as logf:
            h.spawn_offset = logf.tell()
            # start_new_session: Ctrl-C in a terminal reaches the controller only; it tears down.
            h.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                      start_new_session=True, close_fds=True)
        h.pid = h.proc.pid
        h.init_pid = None
        h.starts += 1

    def _wait_ready(self, hosts: list[FleetHost], timeout: float) -> list[FleetHost]:
        """Wait for 'Server listening' in each log; return the hosts whose sshd exited."""
        pending = list(hosts)
        failed = []
        deadline = time.monotonic() + timeout
        while pending:
            for h in list(pending):
                with open(h.log_path, "rb") as f:
                    f.seek(h.spawn_offset)
                    text = f.read().decode(errors="replace")
                if "Server listening on %s port %d." % (h.address, h.port) in text:
                    kids = _children(h.pid)
                    h.init_pid = kids[0] if kids else None
                    pending.remove(h)
                elif h.proc.poll() is not None:
                    pending.remove(h)
                    failed.append(h)
            if pending:
                if time.monotonic() > deadline:
                    first = pending[0]
                    raise FleetError("hosts did not start within %.0fs: %s; log of %s:\n%s" % (
                        timeout, [h.name for h in pending], first.name, self.log_text(first)[-3000:]))
                time.sleep(0.005)
        return failed

    def _start_many(self, hosts: list[FleetHost], new_port_on_conflict: bool = True) -> None:
        todo = list(hosts)
        for _attempt in range(5):
            for h in todo:
                self._spawn(h)
            failed = self._wait_ready(todo, self.start_timeout)
            if not failed:
                break
            for h in failed:
                h.proc.wait()
                h.pid = h.proc = None
                text = self.log_text(h)
                if "Address already in use" in text and new_port_on_conflict:
                    self._ports.discard(h.port)
                    h.port = _pick_port(self._ports)
                    self._rewrite_host_key_port(h)
                elif "Address already in use" in text:
                    time.sleep(0.2)
                else:
                    raise FleetError("sshd of %s exited:\n%s" % (h.name, text[-3000:]))
            todo = failed
        else:
            raise FleetError("could not start %s" % [h.name for h in todo])

    def _rewrite_host_key_port(self, h: FleetHost) -> None:
        self._write_sshd_config(h)
        self._write_host_files()

    def _write_sshd_config(self, h: FleetHost) -> None:
        # Port and address live in the host's own config (not only on sshd's command line), so
        # an sshd restarted from inside the host still listens on 127.0.0.1:PORT only.
        _write(h.root / "etc/ssh/sshd_config.d/00-provision-fleet.conf",
               SSHD_CONFIG.replace("ListenAddress %s" % LOOPBACK, "ListenAddress %s" % h.address)
               + "Port %d\n" % h.port)

    def start(self, host: str | int | FleetHost) -> FleetHost:
        """(Re)start a stopped host: same overlay, port, host key and state."""
        h = self.host(host)
        with self._lock:
            if h.running:
                return h
            if h.pid is not None:
                self._stop_many([h])
            if h.netns is None and not _port_free(h.port):
                deadline = time.monotonic() + 5
                while not _port_free(h.port) and time.monotonic() < deadline:
                    time.sleep(0.05)
            self._start_many([h], new_port_on_conflict=False)
            self._write_state()
            return h

    def stop(self, host: str | int | FleetHost) -> FleetHost:
        """SIGKILL the host (its unshare; --kill-child takes its whole PID namespace down).
        The overlay stays mounted: snapshot() works and start() resumes the same state."""
        h = self.host(host)
        with self._lock:
            self._stop_many([h])
            self._write_state()
            return h

    def kill_sshd(self, host: str | int | FleetHost, restart: bool = False) -> FleetHost:
        """Kill the host's listening sshd and every per-connection sshd (all its processes):
        clients see their connections drop.  restart=True starts it again (same port/keys)."""
        h = self.stop(host)
        if restart:
            self.start(h)
        return h

    def _stop_many(self, hosts: list[FleetHost]) -> None:
        procs = [(h, h.proc, h.init_pid or (_children(h.pid)[0] if h.pid and _children(h.pid) else None))
                 for h in hosts if h.proc is not None]
        for _h, proc, _ in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)   # our child, not yet reaped: the PID is ours
        for h, proc, init_pid in procs:
            proc.wait()
            left = _wait_gone([init_pid] if init_pid else [], timeout=10)
            if left:
                raise FleetError("PID 1 of %s (pid %s) did not exit" % (h.name, left))
            h.pid = h.proc = h.init_pid = None

    # ----- state (for `down` from another process, and for reaping after a crash)
    def _write_state(self) -> None:
        if not self.dir.is_dir():
            return
        me = os.getpid()
        state = {
            "id": self.id, "dir": str(self.dir), "owner_pid": me, "owner_start": _proc_starttime(me),
            "detached": self.detached, "archives": str(self.archives_dir), "netns": self.netns_names,
            "hosts": [{"name": h.name, "port": h.port, "pid": h.pid,
                       "pid_start": _proc_starttime(h.pid) if h.pid else None,
                       "init_pid": h.init_pid, "root": str(h.root),
                       "partial": self._partial_name(h)} for h in self.hosts],
        }
        _write(self.state_path, json.dumps(state, indent=1) + "\n")

    # ----- inspection
    def log_text(self, host: str | int | FleetHost, since_reset: bool = False) -> str:
        h = self.host(host)
        with open(h.log_path, "rb") as f:
            if since_reset:
                f.seek(h.log_offset)
            return f.read().decode(errors="replace")

    def reset_log(self, host: str | int | FleetHost | None = None) -> None:
        """Counters restart at zero (the log file is kept; counting starts at its current end)."""
        for h in ([self.host(host)] if host is not None else self.hosts):
            h.log_offset = h.log_path.stat().st_size

    def session_counts(self, host: str | int | FleetHost) -> dict[str, int]:
        """Counts since the last reset_log()/start: connections, auths, channel opens, requests."""
        text = self.log_text(host, since_reset=True)
        counts = {"connections": 0, "accepted": 0, "channels": 0, "exec": 0, "subsystem": 0, "shell": 0,
                  "pty-req": 0, "env": 0}
        for line in text.splitlines():
            m = _RE_CHAN_REQ.search(line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
                continue
            m = _RE_CHAN_OPEN.search(line)
            if m:
                counts["channels"] += 1
                continue
            if _RE_ACCEPTED.search(line):
                counts["accepted"] += 1
            elif _RE_CONNECTION.search(line):
                counts["connections"] += 1
        return counts

    def count_exec_sessions(self, host: str | int | FleetHost) -> int:
        """Exec requests ("channel N request exec") since the last reset_log()."""
        return self.session_counts(host)["exec"]

    def count_subsystem_sessions(self, host: str | int | FleetHost) -> int:
        return self.session_counts(host)["subsystem"]

    def count_connections(self, host: str | int | FleetHost) -> int:
        return self.session_counts(host)["connections"]

    def snapshot(self, host: str | int | FleetHost, paths: Sequence[str] = SNAPSHOT_PATHS,
                 mtimes: bool = False, exclude: Sequence[str] = ()) -> dict[str, Entry]:
        """{path inside host: Entry(mode, size, digest, uid, gid[, mtime_ns])} of the files below
        `paths`, read from the merged root (the overlay is mounted in the controller's namespace,
        so this works whether the host runs or not).  Directory sizes are reported as 0."""
        h = self.host(host)
        root = str(h.root)
        out: dict[str, Entry] = {}
        excl = tuple(e.rstrip("/") for e in exclude)

        def add(real: str, st: os.stat_result) -> None:
            rel = "/" + os.path.relpath(real, root) if real != root else "/"
            if excl and any(rel == e or rel.startswith(e + "/") for e in excl):
                return
            mode = st.st_mode
            if stat_mod.S_ISREG(mode):
                digest: str | None = _sha256_cached(real, st)
                size = st.st_size
            elif stat_mod.S_ISLNK(mode):
                digest = os.readlink(real)
                size = st.st_size
            else:
                digest, size = None, 0
            out[rel] = Entry(mode, size, digest, st.st_uid, st.st_gid, st.st_mtime_ns if mtimes else None)

        for p in paths:
            top = os.path.join(root, p.lstrip("/"))
            try:
                st = os.lstat(top)
            except FileNotFoundError:
                continue
            add(top, st)
            if not stat_mod.S_ISDIR(st.st_mode):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    full = os.path.join(dirpath, name)
                    try:
                        add(full, os.lstat(full))
                    except FileNotFoundError:
                        pass
        return out

    # ----- access
    def ssh(self, host: str | int | FleetHost, user: str = "root", timeout: float = 10.0):
        """A connected paramiko.SSHClient that checks the host key against the fleet's known_hosts."""
        import paramiko

        h = self.host(host)
        if h.netns is not None:
            # from here its address would leave by this machine's default route: never try it
            raise FleetError("%s is inside network namespace %s: use host_exec(), or ssh from a namespace "
                             "that reaches it" % (h.name, h.netns))
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(LOOPBACK, port=h.port, username=self.admin_user if user == "admin" else user,
                       key_filename=str(self.key_path), allow_agent=False, look_for_keys=False,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
        return client

    def run(self, host: str | int | FleetHost, command: str, user: str = "root",
            stdin: str | bytes | None = None, timeout: float = 600.0) -> tuple[int, str, str]:
        """Run one command over a fresh SSH connection: (rc, stdout, stderr)."""
        client = self.ssh(host, user=user)
        try:
            chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
            if stdin is not None:
                chan_in.write(stdin)
                chan_in.flush()
            chan_in.channel.shutdown_write()
            out = chan_out.read().decode(errors="replace")
            err = chan_err.read().decode(errors="replace")
            return chan_out.channel.recv_exit_status(), out, err
        finally:
            client.close()

    def host_exec(self, host: str | int | FleetHost, argv: Sequence[str], input: bytes | None = None,
                  timeout: float = 600.0) -> subprocess.CompletedProcess:
        """Run argv inside a running host WITHOUT ssh (nsenter into its namespaces + root):
        does not show in the sshd log counts."""
        h = self.host(host)
        if not h.running or not h.init_pid:
            raise FleetError("%s is not running" % h.name)
        enter = ["nsenter", "-t", str(h.init_pid), "--mount", "--uts", "--pid", "--root", "--wd=/"]
        enter += ["--net"] if h.netns else []
        enter += ["--",
                 "/usr/bin/env", "-i", "PATH=" + HOST_PATH, "LANG=C.UTF-8", "HOME=/root"]
        return subprocess.run(enter + list(argv), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)

    def testinfra(self, host: str | int | FleetHost, user: str = "root"):
        """A testinfra Host over its paramiko backend, host key checked against known_hosts.
        Not cached by hostspec (testinfra.get_host caches; a restarted fleet may reuse ports)."""
        import testinfra.host
        from testinfra.backend.paramiko import ParamikoBackend

        fleet = self
        h = self.host(host)
        login = self.admin_user if user == "admin" else user

        class _FleetParamikoBackend(ParamikoBackend):
            @property  # type: ignore[override]
            def client(self):
                c = self.__dict__.get("_fleet_client")
                if c is None or c.get_transport() is None or not c.get_transport().is_active():
                    c = fleet.ssh(h, user=login, timeout=self.timeout)
                    self.__dict__["_fleet_client"] = c
                return c

            @client.deleter
            def client(self):
                c = self.__dict__.pop("_fleet_client", None)
                if c is not None:
                    c.close()

        backend = _FleetParamikoBackend("%s@%s:%d" % (login, LOOPBACK, h.port),
                                        ssh_identity_file=str(self.key_path))
        th = testinfra.host.Host(backend)
        backend.set_host(th)
        return th

    # ----- network namespaces (hosts only other namespaces of this fleet can reach: a bastion lab)
    def add_netns(self, role: str) -> str:
        """A new network namespace of this fleet (`ip netns add`), loopback up, IP forwarding off, no
        route out: only namespaces linked to it (add_link) reach its addresses. close() deletes it."""
        if not re.fullmatch(r"[a-z0-9]{1,8}", role):
            raise ValueError("role: 1-8 lowercase letters or digits")
        name = "%s%s-%s" % (NETNS_PREFIX, self.id[-8:], role)
        with self._lock:
            _ip("netns", "add", name)
            self.netns_names.append(name)
            self._write_state()
            _ip("-n", name, "link", "set", "lo", "up")
            # a new namespace may inherit forwarding from this machine's: nothing is routed through ours
            self.netns_exec(name, ["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
        return name

    def add_link(self, netns_a: str, cidr_a: str, netns_b: str, cidr_b: str) -> tuple[str, str]:
        """A veth pair between two namespaces of this fleet, with an address (a.b.c.d/nn) at each end."""
        for ns in (netns_a, netns_b):
            if ns not in self.netns_names:
                raise ValueError("%s is not a network namespace of this fleet" % ns)
        with self._lock:
            self._links += 1
            a = "pv%s%02da" % (self.id[-6:], self._links)
            b = a[:-1] + "b"
            _ip("link", "add", a, "netns", netns_a, "type", "veth", "peer", "name", b, "netns", netns_b)
        for ns, dev, cidr in ((netns_a, a, cidr_a), (netns_b, b, cidr_b)):
            _ip("-n", ns, "addr", "add", cidr, "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        return a, b

    def _ensure_address(self, netns: str, address: str) -> None:
        out = _ip("-n", netns, "-o", "addr", "show")
        if (" %s/" % address) not in out:
            _ip("-n", netns, "addr", "add", address + "/32", "dev", "lo")

    def netns_argv(self, netns: str) -> list[str]:
        """Prefix that runs a command inside one of this fleet's network namespaces (nothing else changes)."""
        if netns not in self.netns_names:
            raise ValueError("%s is not a network namespace of this fleet" % netns)
        return ["nsenter", "--net=" + _netns_path(netns), "--"]

    def netns_exec(self, netns: str, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(self.netns_argv(netns) + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, check=False)

    def leftover_processes(self) -> list[int]:
        """PIDs of processes whose root directory lies inside this fleet's dir (none after close())."""
        prefix = str(self.dir)
        found = []
        for ent in os.listdir("/proc"):
            if not ent.isdigit():
                continue
            try:
                r = os.readlink("/proc/%s/root" % ent)
            except OSError:
                continue
            if r == prefix or r.startswith(prefix + "/"):
                found.append(int(ent))
        return found


NETNS_PREFIX = "pvf-"     # every network namespace a fleet makes is named pvf-<fleet id tail>-<role>


def _netns_path(name: str) -> str:
    return "/var/run/netns/%s" % name


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise FleetError("ip %s: %s" % (" ".join(args), proc.stderr.decode(errors="replace").strip()))
    return proc.stdout.decode(errors="replace")


def _delete_netns(names: Iterable[str]) -> list[str]:
    """Delete these namespaces of ours (their veth ends go with them); the errors, as lines."""
    errors = []
    for name in names:
        if not os.path.exists(_netns_path(name)):
            continue
        try:
            _ip("netns", "del", name)
        except FleetError as exc:
            errors.append(str(exc))
    return errors


_hash_cache: dict[tuple, str] = {}


def _sha256_cached(path: str, st: os.stat_result) -> str:
    # Files of the read-only lower layer keep (ino, size, mtime, ctime) across hosts and runs
    # (overlay on one filesystem reports the real inode; copy-up keeps st_ino but gets a new
    # ctime), so unchanged image files are hashed once per process.
    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    d = _hash_cache.get(key)
    if d is None:
        hsh = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                hsh.update(chunk)
        d = hsh.hexdigest()
        _hash_cache[key] = d
    return d

# --------------------------------------------------------------------------- reaping / CLI


def list_fleets(base: Path = BASE_DIR) -> list[dict[str, Any]]:
    out = []
    for st in sorted((base / "hosts").glob("*/state.json")):
        try:
            state = json.loads(st.read_text())
        except (OSError, ValueError):
            continue
        state["owner_alive"] = _pid_alive(state["owner_pid"], state.get("owner_start"))
        out.append(state)
    return out


def teardown_state(state: dict[str, Any], log: Callable[[str], None] = _log_default) -> None:
    """Stop a fleet from its state file (another process started it): SIGKILL each recorded
    unshare PID whose start time and command line still match, unmount, remove the dirs."""
    fdir = Path(state["dir"])
    inits = []
    for h in state["hosts"]:
        pid, start = h.get("pid"), h.get("pid_start")
        if not pid or not _pid_alive(pid, start):
            continue
        try:
            cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(cmdline[0]) != b"unshare":
            log("pid %d is not an unshare any more; left alone" % pid)
            continue
        init = h.get("init_pid")
        if init and _pid_alive(init):
            try:
                if os.readlink("/proc/%d/root" % init) != h["root"]:
                    log("pid %d does not run in %s; left alone" % (pid, h["root"]))
                    continue
            except OSError:
                pass
            inits.append(init)
        os.kill(pid, signal.SIGKILL)
        log("killed %s (pid %d)" % (h["name"], pid))
    _wait_gone(inits, timeout=10)
    for err in _delete_netns([n for n in state.get("netns", []) if n.startswith(NETNS_PREFIX)]):
        log(err)
    _umount_all_under(fdir)
    arch = Path(state.get("archives", BASE_DIR / "apt-archives"))
    for h in state["hosts"]:
        if h.get("partial"):
            shutil.rmtree(arch / "auxfiles" / h["partial"], ignore_errors=True)
    _rmtree_no_mounts(fdir)
    log("removed %s" % fdir)


def reap_stale(base: Path = BASE_DIR, log: Callable[[str], None] = _log_default) -> int:
    """Tear down fleets whose owner process died without cleaning up (never detached ones)."""
    n = 0
    for state in list_fleets(base):
        if not state["owner_alive"] and not state.get("detached"):
            log("reaping stale fleet %s (owner pid %s is gone)" % (state["id"], state["owner_pid"]))
            teardown_state(state, log)
            n += 1
    return n


def _cli(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fleet.fleet", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build and cache the trixie image")
    up = sub.add_parser("up", help="start N hosts")
    up.add_argument("n", type=int)
    up.add_argument("--name", default="cli")
    up.add_argument("--detach", action="store_true", help="leave them running; stop with `down`")
    up.add_argument("--admin-password", default=DEFAULT_ADMIN_PASSWORD)
    down = sub.add_parser("down", help="stop detached fleets and fleets whose owner died")
    down.add_argument("--id", help="only this fleet id (a foreground `up` is asked to stop with SIGTERM)")
    sub.add_parser("status", help="list fleets")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        reason = check_requirements()
        if reason:
            print("cannot build: " + reason, file=sys.stderr)
            return 1
        print(ensure_image())
        return 0
    if args.cmd == "status":
        for st in list_fleets():
            print("%s owner=%s%s%s hosts=%s" % (
                st["id"], st["owner_pid"], "" if st["owner_alive"] else "(dead)",
                " detached" if st.get("detached") else "",
                ",".join("%s:%d%s" % (h["name"], h["port"], "" if h.get("pid") else "(stopped)")
                         for h in st["hosts"])))
        return 0
    if args.cmd == "down":
        for st in list_fleets():
            if args.id and st["id"] != args.id:
                continue
            if st["owner_alive"] and not st.get("detached"):
                if args.id:
                    os.kill(st["owner_pid"], signal.SIGTERM)
                    print("asked %s (pid %d) to stop" % (st["id"], st["owner_pid"]))
                else:
                    print("%s belongs to running pid %d; left alone (use --id)" % (st["id"], st["owner_pid"]))
                continue
            teardown_state(st)
        return 0
    # up
    t0 = time.monotonic()
    fleet = Fleet(args.n, name=args.name, admin_password=args.admin_password, die_with_parent=not args.detach)
    stop_evt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop_evt.set())
    signal.signal(signal.SIGINT, lambda *a: stop_evt.set())
    fleet.up()
    if args.detach:
        fleet.detached = True
        fleet._write_state()
        _live_fleets.discard(fleet)
    print("fleet %s: %d hosts up in %.2fs (image %.1fs)" % (fleet.id, len(fleet.hosts), time.monotonic() - t0,
                                                            fleet.timings.get("image", 0)))
    for h in fleet.hosts:
        print("  %s  127.0.0.1:%d  pid %s  root %s" % (h.name, h.port, h.pid, h.root))
    print("inventory:        %s" % fleet.inventory_path)
    print("inventory(admin): %s" % fleet.admin_inventory_path)
    print("key:              %s" % fleet.key_path)
    print("known_hosts:      %s" % fleet.known_hosts_path)
    print("try:              ssh -F %s host01" % fleet.ssh_config_path)
    if args.detach:
        print("stop with:        python -m tests.fleet.fleet down --id %s" % fleet.id)
        return 0
    print("Ctrl-C to stop.", flush=True)
    while not stop_evt.wait(1.0):
        pass
    t1 = time.monotonic()
    fleet.close()
    print("stopped in %.2fs" % (time.monotonic() - t1))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
