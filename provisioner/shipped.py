"""Where the roles, playbooks and example inventory that come with provision are.

A checkout keeps them at the repository's top level (`roles/`, `playbooks/`,
`inventory.example.yml`); a wheel carries the same files in `provisioner/share/` (setup.py's
build step copies them there), so `pip install .` or `pipx install .` gives the whole lab.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# provision's own data (version matrix, expected GPU performance), for roles: `provision_data_dir`
DATA_DIR = PACKAGE_DIR / "data"


def shipped_dir() -> Path:
    """The directory holding `roles/`, `playbooks/` and `inventory.example.yml`."""
    packaged = PACKAGE_DIR / "share"
    if (packaged / "roles").is_dir():
        return packaged
    return PACKAGE_DIR.parent  # a checkout (also `pip install -e .`)


def shipped_roles() -> Path:
    return shipped_dir() / "roles"
