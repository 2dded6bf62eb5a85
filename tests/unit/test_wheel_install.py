"""Installable anywhere: a wheel built from this checkout, installed into a fresh venv outside it,
carries the lab (roles/, playbooks/, inventory.example.yml), so that in an empty directory
`provision init` + `provision apply mylab/lab.yml --check` plans the shipped roles and a playbook
with `roles: [rust]` runs. An editable install (`pip install -e .`) keeps using the checkout's roles/.

The venv sees this interpreter's packages (`--system-site-packages`: no dependency downloaded) and is
kept under /var/tmp, keyed by the wheel's content, so a second run only builds the wheel. The build
backend (setuptools, wheel) is fetched from PyPI once, into a builder venv kept there too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("roles", "playbooks", "inventory.example.yml")
CACHE = Path("/var/tmp/provision-wheel-test")
LAB_ROLES = ["build_essentials", "rust", "nvidia_driver", "cuda_toolkit", "cudnn", "rocm", "gpu_verify"]


def _sh(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _copy_checkout(dest: Path) -> Path:
    """The checkout as a clone has it (no build/, egg-info or caches), so the build sees only sources."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache",
        ".ruff_cache", ".venv", ".whl", ".out"))
    return dest


@contextlib.contextmanager
def _builder() -> Iterator[Path]:
    """A venv with the build backend (setuptools, wheel), made once from PyPI and kept: builds and
    editable installs then run offline in a few seconds (pip's isolated builds take 10-50 s here)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / "builder"
    with open(CACHE / "builder.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test run at a time uses it
        if not (venv / ".ready").exists():
            shutil.rmtree(venv, ignore_errors=True)
            assert _sh(sys.executable, "-m", "venv", venv).returncode == 0
            done = _sh(venv / "bin" / "python", "-m", "pip", "install", "-q", "setuptools>=64", "wheel")
            assert done.returncode == 0, done.stdout + done.stderr
            (venv / ".ready").touch()
        yield venv


def _build_wheel(src: Path, out: Path) -> Path:
    with _builder() as builder:
        done = _sh(builder / "bin" / "python", "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                   "--no-index", src, "-w", out)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("provision-*.whl")
    return wheel


def _venv_with(wheel: Path) -> Path:
    """A venv with this wheel installed, reused while the wheel's content is the same."""
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        key = hashlib.sha256(z.read(record)).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    venv, ready = CACHE / key, CACHE / key / ".ready"
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be making the same venv
        if not ready.exists():
            shutil.rmtree(venv, ignore_errors=True)
            made = _sh(sys.executable, "-m", "venv", "--system-site-packages", venv)
            assert made.returncode == 0, made.stderr
            done = _sh(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                       "--ignore-installed", wheel)  # not the checkout installed in the base site
            assert done.returncode == 0, done.stdout + done.stderr
            ready.touch()
        os.utime(ready)
    _prune(keep=venv)
    return venv


def _prune(keep: Path) -> None:
    """Venvs of wheels not used for a day go."""
    for d in CACHE.iterdir():
        ready = d / ".ready"
        if d.is_dir() and d not in (keep, CACHE / "builder") and ready.exists() \
                and time.time() - ready.stat().st_mtime > 86400:
            shutil.rmtree(d, ignore_errors=True)
            (CACHE / f"{d.name}.lock").unlink(missing_ok=True)


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PROVISION_ROLES_PATH", "ANSIBLE_ROLES_PATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the checkout's copy, the wheel built from it)."""
    base = tmp_path_factory.mktemp("wheel")
    src = _copy_checkout(base / "src")
    yield src, _build_wheel(src, base / "dist")


@pytest.fixture(scope="module")
def venv(built: tuple[Path, Path]) -> Path:
    return _venv_with(built[1])


def provision(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _sh(venv / "bin" / "provision", *args, cwd=cwd, env=_env(venv), timeout=300)


def test_the_wheel_carries_every_file_of_the_lab(built: tuple[Path, Path]) -> None:
    src, wheel = built
    with zipfile.ZipFile(wheel) as z:
        shipped = {n.removeprefix("provisioner/share/") for n in z.namelist() if n.startswith("provisioner/share/")}
    in_checkout = {str(p.relative_to(src)) for name in SHIPPED for p in [src / name, *(src / name).rglob("*")]
                   if p.is_file()}
    assert shipped == in_checkout
    assert {f"roles/{r}/tasks/main.yml" for r in LAB_ROLES} <= shipped


def test_the_installed_package_finds_its_own_lab(venv: Path, tmp_path: Path) -> None:
    code = "import provisioner, provisioner.shipped as s; print(provisioner.__file__); print(s.shipped_roles())"
    done = _sh(venv / "bin" / "python", "-c", code, cwd=tmp_path, env=_env(venv))
    assert done.returncode == 0, done.stderr
    module, roles = done.stdout.split()
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert Path(module).is_relative_to(site)  # the wheel's code, not this checkout's
    assert Path(roles) == site / "provisioner" / "share" / "roles"


def test_init_then_check_in_an_empty_directory_plans_the_shipped_roles(venv: Path, tmp_path: Path) -> None:
    done = provision(venv, "init", "mylab", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mylab" / "lab.yml").is_file() and not (tmp_path / "mylab" / "roles").exists()
    run = provision(venv, "apply", "mylab/lab.yml", "--check", cwd=tmp_path)
    out = run.stdout + run.stderr
    # on a machine without a GPU the GPU proof fails that host (exit 1), as from a checkout
    assert run.returncode == 0 or (run.returncode == 1 and "failed: [localhost] => No NVIDIA GPU on this host" in out
                                   and "failed=1 " in out), out
    assert "cannot read" not in out  # gpu_verify read its performance table from the installed package
    for role in ("build_essentials", "rust", "gpu_verify"):
        assert f"TASK [{role} : " in out, out
    assert "PLAY RECAP" in out and "Traceback" not in out
    listed = provision(venv, "apply", "mylab/lab.yml", "-i", "mylab/inventory.yml", "--list-tasks", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for role in LAB_ROLES:
        assert f"      {role} : " in listed.stdout


def test_a_playbook_naming_a_shipped_role_runs_from_an_empty_directory(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n  roles: [rust]\n")
    run = provision(venv, "apply", "site.yml", "--check", cwd=tmp_path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "TASK [rust : " in out and "failed=0" in out


def test_the_playbook_s_own_roles_come_before_the_shipped_ones(venv: Path, tmp_path: Path) -> None:
    own = tmp_path / "roles" / "rust" / "tasks"
    own.mkdir(parents=True)
    (own / "main.yml").write_text("- name: my own rust role\n  debug: msg=mine\n")
    (tmp_path / "site.yml").write_text("- hosts: all\n  gather_facts: false\n  roles: [rust]\n")
    run = provision(venv, "apply", "site.yml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    tasks = [line for line in run.stdout.splitlines() if line.startswith("TASK [") and "Gathering" not in line]
    assert tasks == ["TASK [rust : my own rust role]"]
    assert "mine" in run.stdout


def test_an_editable_install_uses_the_checkout_s_roles(built: tuple[Path, Path], tmp_path: Path) -> None:
    src = built[0]
    code = "import provisioner, provisioner.shipped as s; print(provisioner.__file__); print(s.shipped_roles())"
    with _builder() as venv:
        python = venv / "bin" / "python"
        done = _sh(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", src)
        try:
            assert done.returncode == 0, done.stdout + done.stderr
            shown = _sh(python, "-c", code, cwd=tmp_path, env=_env(venv))
        finally:
            _sh(python, "-m", "pip", "uninstall", "-q", "-y", "provision")
    assert shown.returncode == 0, shown.stderr
    module, roles = shown.stdout.split()
    assert Path(module) == src / "provisioner" / "__init__.py"
    assert Path(roles) == src / "roles"
    assert not (src / "provisioner" / "share").exists()
