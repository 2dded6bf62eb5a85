"""ansible-playbook for the compat harness: a pinned ansible-core in a cached venv, plus the two
collections labs use (ansible.posix, community.general) taken from the `ansible` PyPI wheel,
since Galaxy is not reachable from here.  Everything lives under /var/tmp/provision-compat."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

BASE = Path(os.environ.get("PROVISION_COMPAT_DIR", "/var/tmp/provision-compat"))
ANSIBLE_CORE = "ansible-core==2.19.14"
# The community bundle that ships with ansible-core 2.19; only two of its collections are used.
ANSIBLE_BUNDLE = "ansible==12.3.0"
COLLECTIONS = ("ansible/posix", "community/general")
# password_hash needs passlib in Ansible 2.19 (labs that hash passwords install it beside ansible-core)
EXTRAS = ("passlib==1.7.4",)
VERSION_KEY = f"{ANSIBLE_CORE} {ANSIBLE_BUNDLE} {' '.join(EXTRAS)}"


def _home() -> Path:
    # one directory per version set, so that branches pinning different sets never rebuild each
    # other's venv under a running test
    key = hashlib.sha256(VERSION_KEY.encode()).hexdigest()[:8]
    return BASE / f"ansible-{ANSIBLE_CORE.split('==')[1]}-{key}"


def venv() -> Path:
    return _home() / "venv"


def collections_path() -> Path:
    return _home() / "collections"


def ansible_playbook() -> Path:
    return venv() / "bin" / "ansible-playbook"


def ensure_ansible(log=lambda msg: None) -> Path:
    """The venv's ansible-playbook, installed once (under a lock, STAMP written last)."""
    home = _home()
    stamp = home / "STAMP"
    if stamp.exists() and stamp.read_text().strip() == VERSION_KEY:
        return ansible_playbook()
    BASE.mkdir(parents=True, exist_ok=True)
    with open(BASE / "setup.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text().strip() == VERSION_KEY:
            return ansible_playbook()
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        log(f"installing {ANSIBLE_CORE} into {venv()}")
        subprocess.run([sys.executable, "-m", "venv", str(venv())], check=True)
        pip = [str(venv() / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + [ANSIBLE_CORE, *EXTRAS], check=True)
        wheels = home / "wheels"
        log(f"downloading {ANSIBLE_BUNDLE} (its wheel only, for {', '.join(COLLECTIONS)})")
        subprocess.run([str(venv() / "bin" / "python"), "-m", "pip", "download", "-q", "--no-deps",
                        "--disable-pip-version-check", "-d", str(wheels), ANSIBLE_BUNDLE], check=True)
        (wheel,) = wheels.glob("ansible-*.whl")
        dest = collections_path()
        prefixes = tuple(f"ansible_collections/{c}/" for c in COLLECTIONS)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith(prefixes) and not name.endswith("/"):
                    z.extract(name, dest)
        wheel.unlink()  # 40+ MB, and everything needed is extracted
        stamp.write_text(VERSION_KEY + "\n")
    return ansible_playbook()
