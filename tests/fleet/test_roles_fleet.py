"""Issue 4 for real: the GPU workstation roles installing on Debian 13 hosts of the test fleet.

What runs for real here (this machine reaches Debian's mirror and PyPI, not NVIDIA's, AMD's
or rustup's servers, and has no GPU):
- build_essentials + rust (distro method: trixie ships rustc 1.85), then the host compiles
  and runs the chapter's CPU matmul with cargo; a too-old rust_min_version is refused;
- cuda_toolkit (distro method, Debian's nvidia-cuda-toolkit 12.4 from non-free) on a GPU-less
  build host (gpu_stack: cuda, gpu_force: true): nvcc from a login shell compiles the chapter's
  kernel to PTX, libcudart is found by the dynamic linker; a second run changes nothing;
- cudnn (pip method): the nvidia-cudnn-cu12 wheel in a venv, headers and libraries found.
The other methods are planned in check mode in tests/unit/test_roles_plan.py.

`provision apply playbooks/lab.yml` runs as a separate process, as a lab admin would run it,
and testinfra checks the hosts over SSH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.fleet import Fleet, FleetHost
from tests.fleet.hoststate import HostState, assert_unchanged, host_state

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "playbooks" / "lab.yml"
PROVISION = [sys.executable, "-m", "provisioner.cli"]

# The chapter's GPU kernel: one thread per element of C, C[row*N+col] = sum_k A[row*K+k]*B[k*N+col].
MATMUL_CU = """\
extern "C" __global__ void matmul(const float* A, const float* B, float* C, int M, int N, int K) {
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row < M && col < N) {
        float sum = 0.0f;
        for (int k = 0; k < K; ++k) {
            sum += A[row * K + k] * B[k * N + col];
        }
        C[row * N + col] = sum;
    }
}
"""

# The chapter's CPU matmul (std only): ones times twos, so every element of C must be 2*N.
MATMUL_RS = """\
use std::time::Instant;

fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    for row in 0..m {
        for col in 0..n {
            let mut sum = 0.0f32;
            for i in 0..k {
                sum += a[row * k + i] * b[i * n + col];
            }
            c[row * n + col] = sum;
        }
    }
}

fn main() {
    let n = 512;
    let a = vec![1.0f32; n * n];
    let b = vec![2.0f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let t0 = Instant::now();
    matmul(&a, &b, &mut c, n, n, n);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let ok = c.iter().all(|&x| x == 2.0 * n as f32);
    println!("n={} ok={} c0={} ms={:.1}", n, ok, c[0], ms);
    if !ok {
        std::process::exit(1);
    }
}
"""

# A GPU-less build host on Debian 13: the toolkit from non-free, the cuDNN wheel for CUDA 12.
BUILD_HOST_VARS = {"gpu_stack": "cuda", "gpu_force": True, "cuda_method": "distro", "cuda_version": "12.4",
                   "cudnn_version": "9", "cudnn_method": "pip"}


@dataclass
class Run:
    """One finished `provision apply`: exit code, what it printed, its --report, how long it took."""
    rc: int
    out: str
    report: dict[str, Any]
    seconds: float
    host_states: tuple[HostState, HostState] | None = None   # the host before and after, when taken

    def changed(self, host: str) -> int:
        return int(self.report["recap"][host]["changed"])

    def task(self, host: str, name: str) -> dict[str, Any]:
        hits = [r for r in self.report["results"] if r["host"] == host and r["task"] == name]
        assert len(hits) == 1, f"{name}: {len(hits)} results"
        return hits[0]

    def durations(self, host: str, at_least: float = 5.0) -> dict[str, float]:
        return {r["task"]: r["duration_s"] for r in self.report["results"]
                if r["host"] == host and r["duration_s"] >= at_least}


def apply(workdir: Path, inventory: Path, *args: str, timeout: float = 1800) -> Run:
    report = workdir / f"report-{time.monotonic_ns()}.json"
    t0 = time.monotonic()
    proc = subprocess.run([*PROVISION, "apply", str(LAB), "-i", str(inventory), *args, "--report", str(report)],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    seconds = time.monotonic() - t0
    data = json.loads(report.read_text()) if report.exists() else {"recap": {}, "results": []}
    return Run(proc.returncode, proc.stdout, data, seconds)


def extra_vars(workdir: Path, variables: dict[str, Any]) -> str:
    path = workdir / f"vars-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(variables))
    return f"@{path}"


def trust_the_controllers_tls(h: FleetHost) -> None:
    """Let pip on the host reach PyPI the way this machine does.

    The fleet shares this machine's network; here HTTPS may go through an inspecting proxy
    whose CA only this machine's bundle holds (apt is unaffected: Debian's mirror is plain
    HTTP). So the host gets this machine's CA bundle, and a pip.conf naming it.
    """
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        return
    shutil.copyfile(bundle, h.path("/etc/ssl/certs/provision-controller-ca.crt"))
    h.path("/etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/provision-controller-ca.crt\n")


def login_shell(host: Any, command: str) -> Any:
    """`bash -lc COMMAND` as a user's login shell runs it (profile.d read)."""
    return host.run("bash -lc %s", command)


# --------------------------------------------------------------------------- build tools and Rust

def test_build_essentials_and_distro_rust_compile_and_run_the_chapters_matmul(fleet_factory: Any,
                                                                            tmp_path: Path) -> None:
    fleet = fleet_factory(1, name="roles-rust")
    h = fleet.hosts[0]
    inventory = fleet.write_inventory()
    first = apply(tmp_path, inventory, "--tags", "build,rust")
    assert first.rc == 0, first.out
    assert first.task(h.name, "rust : Choose the installation method")["result"]["ansible_facts"] == {
        "rust_method_chosen": "distro"}                       # trixie's rustc 1.85 >= 1.75: no rustup
    assert first.task(h.name, "rust : Refuse a distribution rustc older than rust_min_version")["msg"].startswith(
        "rustc 1.85")

    t = fleet.testinfra(h)
    for pkg in ("build-essential", "pkg-config", "libssl-dev", "rustc", "cargo"):
        assert t.package(pkg).is_installed, pkg
    assert t.run("pkg-config --modversion openssl").rc == 0   # openssl-sys finds its headers
    t.run_expect([0], "rm -rf /root/matmul && cd /root && cargo new --quiet --vcs none matmul")
    fleet.run(h, "cat > /root/matmul/src/main.rs", stdin=MATMUL_RS)
    run = login_shell(t, "cd /root/matmul && cargo run --release --quiet --offline")
    assert run.rc == 0, run.stderr
    assert run.stdout.startswith("n=512 ok=true c0=1024 ms="), run.stdout
    version = t.check_output("rustc --version")
    assert version.startswith("rustc 1.85"), version

    before = host_state(fleet, h)
    second = apply(tmp_path, inventory, "--tags", "build,rust")
    assert second.rc == 0, second.out
    assert_unchanged(before, host_state(fleet, h), h.name)
    assert second.changed(h.name) == 0, second.out
    print(f"\nbuild_essentials+rust on Debian 13: first run {first.seconds:.0f}s "
          f"({first.durations(h.name)}), second run {second.seconds:.2f}s")

    # a distribution rustc older than rust_min_version is refused, with the way out
    refused = apply(tmp_path, inventory, "--tags", "rust",
                    "-e", extra_vars(tmp_path, {"rust_method": "distro", "rust_min_version": "1.99"}))
    assert refused.rc == 1
    failed = refused.task(h.name, "rust : Refuse a distribution rustc older than rust_min_version")
    assert failed["status"] == "failed"
    assert failed["msg"].startswith("Debian 13.") and "ships rustc 1.85" in failed["msg"]
    assert failed["msg"].endswith("older than rust_min_version 1.99: set rust_method to rustup (or auto)")


# --------------------------------------------------------------------------- CUDA and cuDNN

@pytest.fixture(scope="module")
def cuda_build_host(fleet_image: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Run, Run]]:
    """ONE Debian 13 host given build tools, Debian's CUDA 12.4 and the cuDNN wheel, applied twice
    (the second Run carries the host's state before and after it)."""
    workdir = tmp_path_factory.mktemp("cuda")
    fleet = Fleet(1, name="roles-cuda")
    fleet.up()
    try:
        trust_the_controllers_tls(fleet.hosts[0])
        inventory = fleet.write_inventory(extra_vars=BUILD_HOST_VARS)
        first = apply(workdir, inventory, "--tags", "build,driver,cuda,cudnn")
        if first.rc == 0:
            before = host_state(fleet, 0)
            second = apply(workdir, inventory, "--tags", "build,driver,cuda,cudnn")
            second.host_states = (before, host_state(fleet, 0))
        else:
            second = first
        h = fleet.hosts[0].name
        print(f"\nCUDA 12.4 (distro) + cuDNN (pip) on Debian 13: first run {first.seconds:.0f}s "
              f"({first.durations(h)}), second run {second.seconds:.2f}s")
        yield fleet, first, second
    finally:
        fleet.close()


@pytest.mark.slow
def test_cuda_toolkit_distro_gives_nvcc_in_a_login_shell_that_compiles_ptx(
        cuda_build_host: tuple[Fleet, Run, Run]) -> None:
    fleet, first, _ = cuda_build_host
    h = fleet.hosts[0]
    assert first.rc == 0, first.out
    assert first.task(h.name, "Check the version matrix against each host before anything changes")["msg"] == \
        "debian13, CUDA 12.4 (distro), cuDNN 9.14.0.64 (pip)"
    assert first.task(h.name, "nvidia_driver : Report the NVIDIA GPU and driver found")["msg"] == \
        "no NVIDIA GPU on this host; nothing to do"
    t = fleet.testinfra(h)
    assert t.package("nvidia-cuda-toolkit").is_installed
    assert t.package("nvidia-cuda-toolkit").version.startswith("12.4")
    nvcc = login_shell(t, "nvcc --version")
    assert nvcc.rc == 0 and "release 12.4" in nvcc.stdout, nvcc.stdout + nvcc.stderr
    assert login_shell(t, "echo $CUDA_HOME").stdout.strip() == "/usr/lib/cuda"
    fleet.run(h, "mkdir -p /root/kernels && cat > /root/kernels/matmul.cu", stdin=MATMUL_CU)
    ptx = login_shell(t, "cd /root/kernels && nvcc -ptx matmul.cu -o matmul.ptx")
    assert ptx.rc == 0, ptx.stderr
    text = t.file("/root/kernels/matmul.ptx").content_string
    assert ".visible .entry matmul(" in text and ".target sm_" in text
    # "libcudart.so: cannot open shared object file" cannot happen: the dynamic linker knows it
    assert "libcudart.so.12 " in t.check_output("ldconfig -p")
    assert t.run("python3 -c \"import ctypes; ctypes.CDLL('libcudart.so.12')\"").rc == 0


@pytest.mark.slow
def test_cudnn_pip_wheel_headers_and_libraries_are_found(cuda_build_host: tuple[Fleet, Run, Run]) -> None:
    fleet, first, _ = cuda_build_host
    h = fleet.hosts[0]
    assert first.rc == 0, first.out
    checked = first.task(h.name, "cudnn : Refuse a wheel without headers or libraries")
    assert checked["status"] == "ok" and checked["msg"].startswith("cuDNN headers and libraries in /opt/provision/venv/")
    t = fleet.testinfra(h)
    where = t.check_output("/opt/provision/venv/bin/python -c "
                           "'import nvidia.cudnn as m; print(list(m.__path__)[0])'")
    assert where.startswith("/opt/provision/venv/lib/python3") and where.endswith("/site-packages/nvidia/cudnn")
    assert t.file(f"{where}/include/cudnn.h").is_file
    assert t.file(f"{where}/include/cudnn_version.h").contains("#define CUDNN_MAJOR 9")
    assert t.file(f"{where}/lib/libcudnn.so.9").exists
    assert t.file("/etc/ld.so.conf.d/cudnn-pip.conf").contains(f"^{where}/lib$")
    assert f"libcudnn.so.9 (libc6,x86-64) => {where}/lib/libcudnn.so.9" in t.check_output("ldconfig -p")
    assert t.run("python3 -c \"import ctypes; ctypes.CDLL('libcudnn.so.9')\"").rc == 0
    assert t.check_output("/opt/provision/venv/bin/pip show nvidia-cudnn-cu12").splitlines()[1] == \
        "Version: 9.14.0.64"


@pytest.mark.slow
def test_cuda_and_cudnn_second_run_changes_nothing(cuda_build_host: tuple[Fleet, Run, Run]) -> None:
    fleet, first, second = cuda_build_host
    h = fleet.hosts[0]
    assert first.rc == 0, first.out
    assert first.changed(h.name) > 0
    assert second.rc == 0, second.out
    assert second.host_states is not None
    assert_unchanged(*second.host_states, h.name)   # judged on the host, CUDA's thousands of files included
    assert second.changed(h.name) == 0, [r["task"] for r in second.report["results"] if r["status"] == "changed"]
    for task in ("cuda_toolkit : Install the distribution's CUDA toolkit", "cudnn : Install the cuDNN wheel into the venv",
                 "build_essentials : Install the compiler, make, pkg-config and OpenSSL headers (one transaction)"):
        assert second.task(h.name, task)["status"] == "ok", task
