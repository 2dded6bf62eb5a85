"""The real ansible-core (2.19), for interop tests: installed once into a venv under /var/tmp.

Not a test extra: ansible-core pins its own jinja2/PyYAML/cryptography ranges, and the
product must be tested against the versions its own dependency list brings. The venv is
made on first use (pip from PyPI, ~30 s) and reused by later runs and other checkouts.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

VENV = Path("/var/tmp/provision-ansible-core-2.19")
PIN = "ansible-core==2.19.*"


def ansible_bin(name: str) -> Path:
    """Path of an ansible-core command (ansible-vault, ansible), installing the venv if needed."""
    exe = VENV / "bin" / name
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other test runs may be installing it right now
        if not (VENV / ".complete").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
            proc = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", PIN], capture_output=True,
                                  text=True, timeout=900, check=False)
            if proc.returncode != 0:
                pytest.fail(f"could not install {PIN} into {VENV}: {proc.stderr.strip()[-600:]}")
            (VENV / ".complete").write_text(PIN + "\n")
    assert exe.exists(), exe
    return exe
