"""The GPU workstation roles, planned in check mode for hosts of other OSes and GPUs.

This machine cannot be an Ubuntu H100 box, a Rocky 9 L40S server or WSL2, and cannot reach
NVIDIA's, AMD's or rustup's servers. So `playbooks/lab.yml` runs here in check mode against
`FakeOsAgent`, a FAKE host: it reports the facts of `tests/data/facts/<name>.json`, answers the
few read-only probes the roles run even in check mode (`check_mode: false` commands) from a
table, and answers every other module call "would change" while recording its arguments.
The assertions are on those recorded arguments: the exact repository URLs, package names and
commands the roles would use on that OS. The modules' own decisions are tested elsewhere
(tests/unit/test_mod_*.py) and the installs for real on Debian 13 (tests/fleet/test_roles_fleet.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioner import compat
from provisioner.actions import gpu_preflight
from provisioner.executor import run as runmod
from provisioner.executor.context import RunOptions
from provisioner.executor.run import Runner
from provisioner.load.check import check_playbook
from provisioner.load.inventory import load_inventory
from provisioner.load.playbook import Loader
from provisioner.output.events import Output

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "playbooks" / "lab.yml"
FACTS = ROOT / "tests" / "data" / "facts"
CUDA_REPOS = "https://developer.download.nvidia.com/compute/cuda/repos"

# What the probes a role runs in check mode print on a fresh host of each family.
PROBES_FRESH: list[tuple[str, dict[str, Any]]] = [
    (r"^grep -Ersq", {"rc": 1, "stdout": "", "stderr": ""}),           # apt component not enabled
    (r"^/usr/bin/rustc --version", {"rc": 2, "stdout": "", "stderr": "No such file or directory"}),
    (r"^rpm -q", {"rc": 1, "stdout": "package nvidia-driver is not installed", "stderr": ""}),
    (r"^id -nG (\S+)", {"rc": 0, "stdout": "{0}", "stderr": ""}),
    (r"/bin/python -c import nvidia.cudnn", {"rc": 1, "stdout": "", "stderr": "No such file or directory"}),
    (r"^mokutil --sb-state", {"rc": 0, "stdout": "SecureBoot disabled", "stderr": ""}),
    (r"^dkms status -m nvidia", {"rc": 0, "stdout": "", "stderr": ""}),                   # no nvidia DKMS module yet
    (r"^(apt-cache show --no-all-versions|dnf -q info) (linux-headers-|kernel-devel)", {"rc": 0, "stdout": ""}),
    (r"^modinfo -k \S+ -F version nvidia", {"rc": 1, "stdout": "", "stderr": "modinfo: ERROR: Module nvidia not found."}),
]
RUSTC_CANDIDATE = {  # the rustc each distribution's package manager offers (apt-cache show / dnf repoquery)
    "debian12": "Version: 1.63.0+dfsg1-2\n", "debian13": "Version: 1.85.0+dfsg3-1\n",
    "ubuntu2204": "Version: 1.75.0+dfsg0ubuntu1~bpo0-0ubuntu0.22.04\n", "ubuntu2404": "Version: 1.75.0+dfsg0ubuntu1-0ubuntu1\n",
    "rhel8": "Version: 1.79.0\n", "rhel9": "Version: 1.79.0\n", "wsl-ubuntu": "Version: 1.75.0+dfsg0ubuntu1~bpo0-0ubuntu0.22.04\n",
}


def load_facts(name: str) -> dict[str, Any]:
    return json.loads((FACTS / f"{name}.json").read_text())


class FakeOsAgent:
    """FAKE of another OS's host behind the agent protocol: nothing runs anywhere.

    Reports `facts`; answers read-only probes (module calls made with check=False, which the
    roles mark `check_mode: false`) from `probes` (regex on the command line -> result); answers
    every other call as check mode would on a host that needs everything ("changed"), and
    records (module, args, check) for each call.
    """

    def __init__(self, facts: dict[str, Any], probes: list[tuple[str, dict[str, Any]]],
                 respond: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None) -> None:
        self.facts = facts
        self.probes = probes
        self.respond = respond
        self.calls: list[tuple[str, dict[str, Any], bool]] = []
        self.writes_outside_check: list[tuple[str, dict[str, Any]]] = []

    # the AgentSession interface the runner uses
    def start(self, first: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"facts": self.facts}

    def close(self) -> None:
        pass

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        if op == "facts":
            return {"facts": self.facts}
        if op == "put":
            self.writes_outside_check.append(("put", fields))
            return {"changed": True}
        assert op == "run", op
        module, args, check = fields["module"], fields["args"], fields["check"]
        self.calls.append((module, args, check))
        answer = self.respond(module, args) if self.respond else None
        if answer is not None:
            return {"changed": False, "failed": False, "msg": "", **answer}
        if module in ("command", "shell"):
            line = args.get("cmd") or " ".join(args.get("argv") or [])
            if not check:
                return self._probe(line)
            return {"changed": True, "failed": False, "msg": f"would run: {line}", "cmd": line}
        if not check:
            self.writes_outside_check.append((module, args))
        if module == "stat":
            return {"changed": False, "failed": False, "stat": {"exists": False}}
        return {"changed": True, "failed": False, "msg": f"would change ({module})"}

    def _probe(self, line: str) -> dict[str, Any]:
        for pattern, answer in self.probes:
            m = re.search(pattern, line)
            if m:
                out = dict(answer)
                out["stdout"] = out.get("stdout", "").format(*m.groups())
                return {"changed": False, "failed": False, "cmd": line, **out}
        raise AssertionError(f"the fake host has no answer for the probe {line!r}")

    # what the tests ask
    def module_args(self, module: str) -> list[dict[str, Any]]:
        return [args for m, args, _ in self.calls if m == module]

    def commands(self) -> list[str]:
        return [a.get("cmd") or " ".join(a.get("argv") or []) for m, a, check in self.calls
                if m in ("command", "shell") and check]

    def installed(self) -> list[str]:
        """Every package name an apt/dnf/package task would install."""
        return [n for m, a, _ in self.calls if m in ("apt", "dnf", "package") for n in a.get("name") or []]


def plan_in_check_mode(tmp_path: Path, hosts: dict[str, dict[str, Any]], skip_tags: tuple[str, ...] = ("verify",),
                       probes: Callable[[str], list[tuple[str, dict[str, Any]]]] | None = None,
                       respond: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None,
                       playbook: Path = LAB) -> tuple[Runner, dict[str, FakeOsAgent]]:
    """Run `playbook` in check mode against fake hosts: {name: {"facts": name-of-json, **vars}}."""
    inventory: dict[str, Any] = {"all": {"hosts": {}}}
    agents: dict[str, FakeOsAgent] = {}
    for name, spec in hosts.items():
        spec = dict(spec)
        facts = load_facts(spec.pop("facts"))
        key = compat.os_key(facts) or ""
        table = (probes(key) if probes else []) + PROBES_FRESH + [
            (r"^(apt-cache show|dnf -q repoquery)", {"rc": 0, "stdout": RUSTC_CANDIDATE.get(key, ""), "stderr": ""})]
        agents[name] = FakeOsAgent(facts, table, respond)
        inventory["all"]["hosts"][name] = {"ansible_connection": "local", **spec}
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text(json.dumps(inventory))
    inv = load_inventory(str(inv_path))
    options = RunOptions(check=True, skip_tags=frozenset(skip_tags), forks=1)
    loader = Loader(playbook)
    book = loader.load()
    check_playbook(book, inv, options)
    runner = Runner(book, inv, options, Output(quiet=True), loader)
    real = runmod.AgentSession

    def fake_session(conn: Any, python: str = "python3", persist: float = 0) -> FakeOsAgent:
        return agents[conn.name]

    runmod.AgentSession = fake_session  # type: ignore[assignment,misc]
    try:
        runner.run()
    finally:
        runmod.AgentSession = real  # type: ignore[misc]
    for agent in agents.values():
        assert not agent.writes_outside_check, f"check mode changed a host: {agent.writes_outside_check}"
    return runner, agents


def results(runner: Runner, host: str) -> dict[str, Any]:
    return {r.task: r for r in runner.results if r.host == host}


def failures(runner: Runner) -> dict[str, str]:
    return {f"{r.host}: {r.task}": r.msg for r in runner.results if r.status == "failed" and not r.ignored}


def one(agent: FakeOsAgent, module: str, **match: Any) -> dict[str, Any]:
    """The single call of `module` whose arguments include `match`."""
    hits = [a for a in agent.module_args(module) if all(a.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, f"{module} {match}: {len(hits)} calls in {agent.module_args(module)}"
    return hits[0]


def written(agent: FakeOsAgent, dest: str) -> str:
    """The text a template/copy task would write to `dest`."""
    return base64.b64decode(one(agent, "copy", dest=dest)["content_b64"]).decode()


def keyring_present(module: str, args: dict[str, Any]) -> dict[str, Any] | None:
    """A host where the cuda-keyring .deb was fetched on an earlier run (get_url: ok)."""
    if module == "get_url" and str(args.get("url", "")).endswith("cuda-keyring_1.1-1_all.deb"):
        return {"changed": False, "dest": args["dest"]}
    return None


# -- NVIDIA hosts -----------------------------------------------------------------------------

def test_ubuntu2404_h100_nvidia_repo_toolkit_environment_and_cudnn(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"h100": {
        "facts": "ubuntu2404-h100", "cuda_version": "12.8", "cudnn_version": "9", "cudnn_method": "nvidia_repo"}},
        respond=keyring_present)
    assert failures(runner) == {}
    h = agents["h100"]
    keyring = f"{CUDA_REPOS}/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb"
    assert [a["url"] for a in h.module_args("get_url")] == [keyring, keyring]   # cuda_toolkit, then cudnn's include
    assert {a["deb"] for a in h.module_args("apt") if a.get("deb")} == {"/var/cache/provision/cuda-keyring_1.1-1_all.deb"}
    assert one(h, "apt", name=["cuda-toolkit-12-8"])["update_cache"] is True
    assert one(h, "file", path="/usr/local/cuda")["src"] == "/usr/local/cuda-12.8"
    profile = written(h, "/etc/profile.d/cuda.sh")
    assert "export CUDA_HOME=/usr/local/cuda\n" in profile
    assert 'export PATH="/usr/local/cuda/bin:${PATH}"' in profile
    assert 'export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"' in profile
    assert written(h, "/etc/ld.so.conf.d/cuda.conf").splitlines()[-1] == "/usr/local/cuda/lib64"
    assert "ldconfig" in h.commands()
    # cuDNN 9 for CUDA 12 from the same repository; no driver work (branch unset, 580 loaded)
    assert one(h, "package", name=["libcudnn9-cuda-12", "libcudnn9-dev-cuda-12"])
    assert not [n for n in h.installed() if n.startswith(("nvidia-driver", "linux-headers"))]
    assert results(runner, "h100")["nvidia_driver : Report the NVIDIA GPU and driver found"].msg == \
        "NVIDIA driver 580.159.04; no branch requested: keeping it"
    # Ubuntu 24.04's rustc (1.75) is new enough: the distribution's packages, no rustup
    assert one(h, "package", name=["rustc", "cargo"])
    assert one(h, "package", name=["build-essential", "pkg-config", "libssl-dev"])
    assert not h.module_args("get_url")[0]["url"].startswith("https://static.rust-lang.org")


def test_ubuntu2204_two_toolkits_side_by_side_and_a_pinned_driver(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {
        "rtx": {"facts": "ubuntu2204-rtx4090", "cuda_versions": ["12.4", "12.8"], "cuda_default_version": "12.4",
                "nvidia_driver_branch": "570", "cudnn_method": "pip"},
        "rtx-never": {"facts": "ubuntu2204-rtx4090", "cuda_versions": ["12.8", "12.6"],
                      "nvidia_driver_branch": "570", "nvidia_driver_flavor": "-open", "nvidia_driver_reboot": "never",
                      "cudnn_version": None}})
    assert failures(runner) == {}
    rtx, never = agents["rtx"], agents["rtx-never"]
    # both toolkits in one transaction; the default (12.4 here) last, and /usr/local/cuda points at it
    assert one(rtx, "apt", name=["cuda-toolkit-12-8", "cuda-toolkit-12-4"])
    assert one(rtx, "file", path="/usr/local/cuda")["src"] == "/usr/local/cuda-12.4"
    # no default named: the last of cuda_versions
    assert one(never, "apt", name=["cuda-toolkit-12-8", "cuda-toolkit-12-6"])
    assert one(never, "file", path="/usr/local/cuda")["src"] == "/usr/local/cuda-12.6"
    # Ubuntu's driver package with DKMS headers for the running kernel; the restricted component checked
    assert one(rtx, "apt", name=["nvidia-driver-570"])
    assert one(never, "apt", name=["nvidia-driver-570-open"])
    assert one(rtx, "package", name=["linux-headers-6.8.0-52-generic", "linux-headers-generic"])
    grep = [a["argv"] for m, a, check in rtx.calls if m == "command" and not check and a["argv"][0] == "grep"]
    assert grep and "[[:space:]]restricted(" in grep[0][3]
    # 550 is loaded, 570 asked: reboot (auto) or say so (never)
    assert results(runner, "rtx")["nvidia_driver : Reboot into the new driver"].msg == "would reboot"
    assert results(runner, "rtx-never")["nvidia_driver : Reboot into the new driver"].status == "skipped"
    said = results(runner, "rtx-never")["nvidia_driver : Say that a reboot is still required"].msg
    assert said.startswith("REBOOT REQUIRED: NVIDIA driver 570 is installed but 550.127.05 is loaded")
    # cuDNN by pip: the wheel for CUDA 12 into the venv
    assert one(rtx, "pip", virtualenv="/opt/provision/venv")["name"] == ["nvidia-cudnn-cu12==9.14.0.64"]
    assert not never.module_args("pip")


def test_debian12_rustup_nonfree_driver_and_debian12_repo(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"deb12": {
        "facts": "debian12-a100", "cuda_version": "12.8", "nvidia_driver_branch": "535", "cudnn_version": None,
        "rust_components": ["clippy", "rust-src"], "rust_targets": ["wasm32-unknown-unknown"], "rust_nightly": True}})
    assert failures(runner) == {}
    d = agents["deb12"]
    # Debian 12 ships rustc 1.63 (< 1.75): rustup, from the pinned installer and checksum
    rustup = one(d, "get_url", dest="/usr/local/lib/rustup-init-1.28.2")
    assert rustup["url"] == "https://static.rust-lang.org/rustup/archive/1.28.2/x86_64-unknown-linux-gnu/rustup-init"
    assert rustup["checksum"] == "sha256:20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c"
    assert rustup["mode"] == "0755"
    assert "/usr/local/lib/rustup-init-1.28.2 -y --no-modify-path --default-toolchain stable --profile default" \
        in d.commands()
    assert "/usr/local/cargo/bin/rustup toolchain install nightly --profile default" in d.commands()
    assert "/usr/local/cargo/bin/rustup component add clippy rust-src" in d.commands()
    assert "/usr/local/cargo/bin/rustup target add wasm32-unknown-unknown" in d.commands()
    rust_sh = written(d, "/etc/profile.d/rust.sh")
    assert "export RUSTUP_HOME=/usr/local/rustup\n" in rust_sh and 'PATH="/usr/local/cargo/bin:${PATH}"' in rust_sh
    assert not [n for n in d.installed() if n in ("rustc", "cargo")]
    # the driver from non-free (+ firmware), headers for the running kernel; the components added when missing
    source = one(d, "deb822_repository")
    assert (source["uris"], source["suites"], source["components"]) == (
        ["http://deb.debian.org/debian"], ["bookworm", "bookworm-updates"], ["non-free", "non-free-firmware"])
    assert source["signed_by"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert one(d, "apt", name=["nvidia-driver", "firmware-misc-nonfree"])
    assert one(d, "package", name=["linux-headers-6.1.0-26-amd64", "linux-headers-amd64"])
    assert one(d, "get_url", url=f"{CUDA_REPOS}/debian12/x86_64/cuda-keyring_1.1-1_all.deb")
    assert one(d, "apt", name=["cuda-toolkit-12-8"])


def test_debian_refuses_a_driver_branch_it_does_not_package(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"deb12": {
        "facts": "debian12-a100", "cuda_version": "12.4", "nvidia_driver_branch": "550"}})
    assert failures(runner) == {"deb12: nvidia_driver : Refuse a branch the distribution does not package":
                                "Debian 12 packages NVIDIA driver 535 only (nvidia-driver, non-free), not 550: "
                                'set nvidia_driver_branch to "535"'}
    assert not [n for n in agents["deb12"].installed() if n.startswith("nvidia")]


def test_rocky9_dnf_repo_file_module_stream_and_package_names(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"rocky": {
        "facts": "rocky9-l40s", "cuda_version": "12.8", "nvidia_driver_branch": "570", "cudnn_method": "nvidia_repo"}})
    assert failures(runner) == {}
    r = agents["rocky"]
    assert one(r, "package", name=["gcc", "gcc-c++", "make", "pkgconf-pkg-config", "openssl-devel"])
    assert one(r, "package", name=["rust", "cargo"])          # rhel9's rust 1.79 >= 1.75
    repo = f"{CUDA_REPOS}/rhel9/x86_64/cuda-rhel9.repo"
    assert {(a["url"], a["dest"]) for a in r.module_args("get_url")} == {(repo, "/etc/yum.repos.d/cuda-rhel9.repo")}
    assert one(r, "dnf", name=["kernel-headers-5.14.0-427.13.1.el9_4.x86_64", "dkms"])
    assert one(r, "package", name=["kernel-devel-5.14.0-427.13.1.el9_4.x86_64", "kernel-devel"])
    assert "dnf -y module install nvidia-driver:570-dkms" in r.commands()
    assert one(r, "dnf", name=["cuda-toolkit-12-8"])
    assert one(r, "package", name=["libcudnn9-cuda-12", "libcudnn9-devel-cuda-12"])
    assert not r.module_args("apt")


def test_wsl2_uses_the_wsl_repo_and_never_touches_the_driver(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {"wsl": {
        "facts": "wsl2-ubuntu2204-rtx3090", "cuda_version": "12.6", "nvidia_driver_force": True, "cudnn_method": "pip"}})
    assert failures(runner) == {}
    w = agents["wsl"]
    assert one(w, "get_url")["url"] == f"{CUDA_REPOS}/wsl-ubuntu/x86_64/cuda-keyring_1.1-1_all.deb"
    assert one(w, "apt", name=["cuda-toolkit-12-6"])
    assert not [n for n in w.installed() if n.startswith(("nvidia-driver", "linux-headers"))]
    assert results(runner, "wsl")["nvidia_driver : Report the NVIDIA GPU and driver found"].msg == \
        "WSL2: the Windows driver serves this host (566.36); nothing to install"


def test_cudnn_archive_into_the_cuda_tree_as_the_chapter_does(tmp_path: Path) -> None:
    sha = "0123456789abcdef" * 4
    runner, agents = plan_in_check_mode(tmp_path, {"h100": {
        "facts": "ubuntu2404-h100", "cuda_version": "12.8", "cudnn_method": "archive", "cudnn_archive_sha256": sha}})
    assert failures(runner) == {}
    h = agents["h100"]
    name = "cudnn-linux-x86_64-9.14.0.64_cuda12-archive"
    fetch = one(h, "get_url", dest=f"/var/cache/provision/{name}.tar.xz")
    assert fetch["url"] == f"https://developer.download.nvidia.com/compute/cudnn/redist/cudnn/linux-x86_64/{name}.tar.xz"
    assert fetch["checksum"] == f"sha256:{sha}"
    copy = one(h, "shell")
    assert copy["cmd"] == (f"cp -P /opt/cudnn/{name}/include/cudnn*.h /usr/local/cuda/include/ && "
                           f"cp -P /opt/cudnn/{name}/lib/libcudnn* /usr/local/cuda/lib64/ && "
                           "chmod a+r /usr/local/cuda/include/cudnn*.h /usr/local/cuda/lib64/libcudnn*")
    assert copy["creates"] == "/usr/local/cuda/lib64/libcudnn.so.9.14.0"


def test_rocm_on_ubuntu2204_installer_usecase_and_groups(tmp_path: Path) -> None:
    def probes(key: str) -> list[tuple[str, dict[str, Any]]]:
        return [(r"^id -nG bob$", {"rc": 0, "stdout": "bob render video"})]

    runner, agents = plan_in_check_mode(tmp_path, {"mi210": {
        "facts": "ubuntu2204-mi210", "rocm_version": "6.4", "rocm_users": ["alice", "bob"]}}, probes=probes)
    assert failures(runner) == {}
    m = agents["mi210"]
    url = "https://repo.radeon.com/amdgpu-install/6.4/ubuntu/jammy/amdgpu-install_6.4.60400-1_all.deb"
    assert one(m, "get_url")["url"] == url
    install = [a for mod, a, check in m.calls if mod == "command" and check and a["argv"][0] == "amdgpu-install"]
    assert install == [{**install[0], "argv": ["amdgpu-install", "-y", "--usecase=rocm", "--no-dkms"],
                        "creates": "/opt/rocm-6.4*/bin/rocminfo"}]
    assert "usermod -aG render,video alice" in m.commands()
    assert not [c for c in m.commands() if c.endswith(" bob")]    # bob is in both groups already
    assert not [n for n in m.installed() if "cuda" in n]            # an AMD host gets no CUDA


def test_gpu_less_build_host_gets_nothing_unless_forced(tmp_path: Path) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {
        "plain": {"facts": "debian13-nogpu", "cuda_version": "12.4", "cuda_method": "distro"},
        "build": {"facts": "debian13-nogpu", "cuda_version": "12.4", "cuda_method": "distro", "gpu_stack": "cuda",
                  "gpu_force": True, "cudnn_method": "pip"}})
    assert failures(runner) == {}
    plain, build = agents["plain"], agents["build"]
    assert one(plain, "package", name=["rustc", "cargo"])                 # Debian 13's rustc 1.85
    assert not [n for n in plain.installed() if "cuda" in n]
    assert one(build, "apt", name=["nvidia-cuda-toolkit"])
    assert not build.module_args("get_url")                             # no NVIDIA repository
    assert one(build, "deb822_repository")["components"] == ["non-free"]  # the fake's sources lack it
    assert not [a for a in build.module_args("file") if a.get("path") == "/usr/local/cuda"]
    profile = written(build, "/etc/profile.d/cuda.sh")
    assert "export CUDA_HOME=/usr/lib/cuda\n" in profile and "export LD_LIBRARY_PATH" not in profile
    assert results(runner, "build")["nvidia_driver : Report the NVIDIA GPU and driver found"].msg == \
        "no NVIDIA GPU on this host; nothing to do"
    assert one(build, "pip", virtualenv="/opt/provision/venv")["name"] == ["nvidia-cudnn-cu12==9.14.0.64"]


# -- the version matrix refuses, before anything is touched ----------------------------------------

REFUSALS = [
    pytest.param("debian12-k80", {"cuda_version": "12.8"},
                 "cuda: CUDA 12.8 does not support compute capability 3.7 (Tesla K80); it needs 5.0-12.0",
                 id="compute-capability"),
    pytest.param("ubuntu2404-h100", {"cuda_version": "12.8", "cudnn_version": "8.7"},
                 "cudnn: cuDNN 8.7 is not built for CUDA 12.x (CUDA 12.8); it is built for CUDA 11.x; "
                 "for CUDA 12.x use cuDNN 8.9 or 9", id="cudnn-for-another-cuda-major"),
    pytest.param("rocky9-l40s", {"cuda_version": "13.0"},
                 "driver: installed NVIDIA driver 550.90.07 is too old for CUDA 13.0: it needs >= 580.65.06",
                 id="installed-driver-too-old"),
    pytest.param("ubuntu2204-rtx4090", {"cuda_version": "13.0", "nvidia_driver_branch": "570"},
                 "driver: NVIDIA driver branch 570 is too old for CUDA 13.0: it needs >= 580.65.06",
                 id="requested-driver-too-old"),
    pytest.param("ubuntu2404-h100", {"cuda_version": "12.4"},
                 "cuda: NVIDIA's CUDA repository does not serve CUDA 12.4 for ubuntu2404 (Ubuntu 24.04)",
                 id="os-not-served-by-the-repo"),
    pytest.param("debian13-nogpu", {"cuda_method": "distro", "cuda_version": "12.8", "gpu_stack": "cuda",
                                    "gpu_force": True},
                 "cuda: cuda_method distro: Debian 13.1 ships CUDA 12.4 (nvidia-cuda-toolkit), not the requested 12.8",
                 id="distro-ships-another-cuda"),
    pytest.param("debian13-nogpu", {"gpu_stack": "cuda"},
                 "cuda: gpu_stack cuda, but this host has no NVIDIA GPU (no PCI vendor 0x10de, no driver); "
                 "set gpu_force: true to install CUDA anyway", id="no-gpu-not-forced"),
    pytest.param("wsl2-ubuntu2204-rtx3090", {"cuda_version": "12.8", "nvidia_driver_branch": "570"},
                 "driver: WSL2 uses the Windows host's NVIDIA driver (566.36); nvidia_driver_branch 570 cannot be "
                 "installed inside WSL", id="driver-inside-wsl"),
    pytest.param("debian13-nogpu", {"gpu_stack": "rocm", "gpu_force": True, "rocm_version": "6.4"},
                 "rocm: ROCm 6.4 does not support Debian 13.1 (trixie); it supports Ubuntu jammy, noble; "
                 "Debian bookworm; RHEL 8.10, 9.4, 9.5, 9.6", id="rocm-os-unsupported"),
    pytest.param("ubuntu2204-mi210", {"rocm_version": "7.0"},
                 "rocm: ROCm 7.0 is not in the version matrix", id="rocm-unknown-release"),
    pytest.param("ubuntu2404-h100", {"cuda_version": "12.8", "cudnn_method": "archive"},
                 "cudnn: cudnn_method archive needs cudnn_archive_sha256, the archive's sha256 from "
                 "https://developer.download.nvidia.com/compute/cudnn/redist/redistrib_9.14.0.json",
                 id="cudnn-archive-without-checksum"),
    pytest.param("ubuntu2404-h100", {"cuda_method": "conda"},
                 "GPU role variables: cuda_method: Input should be 'nvidia_repo' or 'distro'",
                 id="malformed-request"),
]


@pytest.mark.parametrize(("facts", "variables", "reason"), REFUSALS)
def test_a_refused_host_fails_on_one_line_before_anything_is_touched(
        tmp_path: Path, facts: str, variables: dict[str, Any], reason: str) -> None:
    runner, agents = plan_in_check_mode(tmp_path, {
        "refused": {"facts": facts, **variables},
        "fine": {"facts": "ubuntu2404-h100", "cuda_version": "12.8"}})
    failed = failures(runner)
    assert list(failed) == ["refused: Check the version matrix against each host before anything changes"]
    msg = next(iter(failed.values()))
    assert msg.startswith(reason), msg
    assert all(len(line) < 400 for line in msg.splitlines())
    assert agents["refused"].calls == []                      # no module ran on the refused host
    assert agents["fine"].installed()                         # the other host went on


def test_preflight_checks_every_side_by_side_toolkit() -> None:
    facts = load_facts("ubuntu2404-h100")
    plan = gpu_preflight.plan_for(facts, {"cuda_versions": ["12.4", "12.8"], "cudnn_version": None})
    assert plan["cuda_version"] == "12.8"
    assert [t["version"] for t in plan["cuda_toolkits"]] == ["12.4", "12.8"]
    assert [r.split(";")[0] for r in plan["refusals"]] == [
        "cuda: NVIDIA's CUDA repository does not serve CUDA 12.4 for ubuntu2404 (Ubuntu 24.04)"]


def test_preflight_reads_yaml_numbers_as_versions() -> None:
    facts = load_facts("ubuntu2204-rtx4090")
    plan = gpu_preflight.plan_for(facts, {"cuda_versions": [12.6, 12.8], "nvidia_driver_branch": 570,
                                          "cudnn_version": 9, "cudnn_method": "pip"})
    assert plan["refusals"] == []
    assert (plan["cuda_version"], plan["driver_branch"], plan["cudnn_packages"]) == (
        "12.8", "570", ["nvidia-cudnn-cu12==9.14.0.64"])


# -- provision plan, end to end ------------------------------------------------------------------

def _plan_inventory(tmp_path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    inv = {"all": {"vars": {"ansible_connection": "local"}, "hosts": {
        name: {"provision_fake_facts": str(FACTS / f"{spec.pop('facts')}.json"), **spec}
        for name, spec in ((n, dict(s)) for n, s in hosts.items())}}}
    path = tmp_path / "lab.yml"
    path.write_text(json.dumps(inv))
    return path


def _provision(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_provision_plan_prints_each_hosts_stack_and_exits_1_on_a_refusal(tmp_path: Path) -> None:
    inv = _plan_inventory(tmp_path, {
        "h100": {"facts": "ubuntu2404-h100", "cuda_versions": ["12.6", "12.8"]},
        "rocky": {"facts": "rocky9-l40s", "nvidia_driver_branch": "570"},
        "k80": {"facts": "debian12-k80", "cuda_version": "12.8"},
        "mi210": {"facts": "ubuntu2204-mi210", "rocm_version": "6.4"},
        "build": {"facts": "debian13-nogpu", "gpu_stack": "cuda", "gpu_force": True, "cuda_method": "distro",
                  "cuda_version": "12.4", "cudnn_method": "pip"}})
    out = _provision("plan", "playbooks/lab.yml", "-i", str(inv))
    assert out.returncode == 1, out.stderr
    text = out.stdout
    blocks = dict(re.findall(r"(?ms)^(\w+)\n(.*?)(?=^\w+\n|\Z)", text.split("\n", 1)[1]))
    assert set(blocks) == {"h100", "rocky", "k80", "mi210", "build"}
    h100 = " ".join(blocks["h100"].split())
    assert "os ubuntu2404: Ubuntu 24.04" in h100 and "gpu NVIDIA H100 80GB HBM3 (cc 9.0); driver 580.159.04" in h100
    assert "cuda 12.6, 12.8 (default) via nvidia_repo" in h100
    assert "packages cuda-toolkit-12-6 cuda-toolkit-12-8" in h100
    assert f"setup {CUDA_REPOS}/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb" in h100
    assert "driver keep installed" in h100 and "cudnn 9.14.0.64 (newest cuDNN built for CUDA 12.x) via nvidia_repo" in h100
    assert "packages libcudnn9-cuda-12 libcudnn9-dev-cuda-12" in h100 and "REFUSED" not in h100
    rocky = " ".join(blocks["rocky"].split())
    # cuda_version auto: the installed 12.4 runs on the requested 570 and on the L40S, so it stays
    assert "cuda keep 12.4 (installed) why installed at /usr/local/cuda-12.4" in rocky and "driver branch 570" in rocky
    assert "packages libcudnn9-cuda-12 libcudnn9-devel-cuda-12" in rocky
    k80 = " ".join(blocks["k80"].split())
    assert "REFUSED cuda: CUDA 12.8 does not support compute capability 3.7 (Tesla K80)" in k80
    mi210 = " ".join(blocks["mi210"].split())
    assert "gpu AMD Instinct MI210 (gfx90a)" in mi210 and "rocm 6.4 via amdgpu-install" in mi210
    assert "installer https://repo.radeon.com/amdgpu-install/6.4/ubuntu/jammy/amdgpu-install_6.4.60400-1_all.deb" \
        in mi210 and "cuda -" in mi210
    build = " ".join(blocks["build"].split())
    assert "cuda 12.4 via distro" in build and "packages nvidia-cuda-toolkit" in build
    assert "packages nvidia-cudnn-cu12==9.14.0.64" in build and "gpu none" in build


def test_provision_plan_exits_0_when_every_host_fits(tmp_path: Path) -> None:
    inv = _plan_inventory(tmp_path, {"h100": {"facts": "ubuntu2404-h100"},
                                     "wsl": {"facts": "wsl2-ubuntu2204-rtx3090", "cudnn_method": "pip"}})
    out = _provision("plan", "playbooks/lab.yml", "-i", str(inv))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wsl-ubuntu: Ubuntu 22.04 (WSL2)" in out.stdout


def test_the_example_inventory_and_the_lab_playbook_load_and_check() -> None:
    out = _provision("check", "playbooks/lab.yml", "-i", "inventory.example.yml")
    assert out.returncode == 0, out.stderr
