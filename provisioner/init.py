"""`provision init DIR`: a starter lab a new user can apply at once and then grow.

It writes an inventory (this machine, and a commented remote group), `lab.yml` (the shipped
lab playbook, whose roles are found by name wherever provision is installed),
`group_vars/all.yml` (the main variables, commented) and a README. It never overwrites:
if any of these files exists, nothing is written.
"""

from __future__ import annotations

from pathlib import Path

from provisioner.errors import Position, UserError
from provisioner.shipped import shipped_dir

INVENTORY = """\
---
# The hosts of this lab (Ansible's YAML inventory format).
#   provision apply lab.yml -i inventory.yml --check     # decide and report, change nothing
all:
  hosts:
    localhost:
      ansible_connection: local       # this machine, no SSH
  # Machines reached over SSH: uncomment, then `provision apply lab.yml -i inventory.yml`.
  # children:
  #   workstations:
  #     hosts:
  #       gpu01:
  #         ansible_host: 10.0.0.11     # the address to connect to (default: the name)
  #         ansible_user: admin         # who logs in; tasks run as root through sudo (become)
  #       gpu02:
  #         ansible_host: 10.0.1.12
  #         ansible_user: admin
  #         # a host reached through a jump host (OpenSSH's ProxyJump)
  #         ansible_ssh_common_args: "-o ProxyJump=admin@bastion.example.org"
  #     vars:
  #       ansible_ssh_private_key_file: ~/.ssh/id_ed25519
  #       # sudo's password, if it asks for one (or pass -K, or set PROVISION_BECOME_PASSWORD)
  #       # ansible_become_password: ...
"""

GROUP_VARS = """\
---
# Variables for every host of the lab; a group's file (group_vars/GROUP.yml) or a host's
# (host_vars/HOST.yml) overrides them, and -e overrides everything. Quote versions: YAML
# reads 12.10 as 12.1. Each role's README lists the rest (`roles/<role>/README.md`).

# Which GPU stack: auto (CUDA on NVIDIA hosts, ROCm on AMD hosts, nothing otherwise), cuda, rocm, none.
# gpu_stack: auto

# NVIDIA driver: "570" installs that branch (DKMS); null keeps the installed driver.
# nvidia_driver_branch: null
# nvidia_driver_reboot: auto         # auto: reboot and wait after a new driver; never: say so instead

# CUDA toolkit: nvidia_repo (NVIDIA's repository) or distro (the distribution's package).
# auto keeps an installed toolkit the driver runs, else installs the newest it supports; "12.8" pins.
# cuda_version: auto
# cuda_versions: []                  # several side by side, e.g. ["12.6", "12.8"]
# cuda_method: nvidia_repo

# cuDNN: nvidia_repo, archive (needs cudnn_archive_sha256) or pip.
# auto keeps an installed cuDNN built for the toolkit's CUDA major; "9" pins the major.
# cudnn_version: auto
# cudnn_method: nvidia_repo

# ROCm (AMD hosts)
# rocm_version: "6.4"
# rocm_users: []                     # added to the render and video groups

# Rust: auto takes the distribution's rustc when it is recent enough, else rustup.
# rust_method: auto
# rust_min_version: "1.75"

# Build tools beyond the compiler, make, pkg-config and OpenSSL headers.
# build_essentials_extra_packages: []

# The GPU proof: true runs only the quick n=1024 pass.
# gpu_verify_quick: false
"""

README = """\
# {name}: a GPU lab for provision

- `inventory.yml`: the hosts (this machine; uncomment the SSH group for others)
- `lab.yml`: build tools, Rust, the NVIDIA driver, CUDA and cuDNN (or ROCm), then the GPU proof,
  from the roles that come with provision (a `roles/` directory here takes precedence)
- `group_vars/all.yml`: the variables that choose versions and methods

```sh
provision apply lab.yml -i inventory.yml --check    # what would change, nothing touched
provision plan  lab.yml -i inventory.yml            # per host: driver/CUDA/cuDNN/ROCm versions and methods
provision apply lab.yml -i inventory.yml            # do it
provision apply lab.yml -i inventory.yml --list-tasks   # the tasks and their tags
```

On a machine without a GPU the run plans the build tools and Rust, skips the GPU stack and
ends with the GPU proof reporting "no GPU" for that host (exit code 1).
"""

LAB_HEADER = """\
---
# A GPU workstation from a fresh box: build tools, Rust, the NVIDIA driver, CUDA, cuDNN
# (NVIDIA hosts) or ROCm (AMD hosts), then the GPU proof. The roles come with provision.
#
#   provision apply lab.yml -i inventory.yml --check
#   provision apply lab.yml -i inventory.yml
#
# Variables: group_vars/all.yml.
"""


def starter_files(name: str) -> dict[str, str]:
    """Relative path -> content of the starter lab."""
    return {
        "inventory.yml": INVENTORY,
        "lab.yml": LAB_HEADER + _shipped_plays(),
        "group_vars/all.yml": GROUP_VARS,
        "README.md": README.format(name=name),
    }


def init_lab(directory: Path) -> list[Path]:
    """Write the starter lab into `directory` (created if missing); the paths written.

    Refuses, writing nothing, when any of the files is already there.
    """
    if directory.exists() and not directory.is_dir():
        raise UserError("exists and is not a directory: provision init writes a lab into a directory",
                        Position(str(directory)))
    files = starter_files(directory.resolve().name or "lab")
    targets = {directory / rel: text for rel, text in files.items()}
    existing = [p for p in targets if p.exists() or p.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"already exists{more}: provision init never overwrites a file, nothing was written",
                        Position(str(existing[0])))
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:  # "x": never replace a file made meanwhile
            f.write(text)
    return list(targets)


def _shipped_plays() -> str:
    """The shipped playbooks/lab.yml without its leading comment block (our header replaces it)."""
    lines = (shipped_dir() / "playbooks" / "lab.yml").read_text(encoding="utf-8").splitlines(keepends=True)
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or lines[i].strip() in ("", "---")):
        i += 1
    return "".join(lines[i:])
