"""gpu_verify: prove a GPU host works by running provisioner/gpu/verify.py there with a Python that has CuPy.

The program (shipped inside the agent's bundle) is installed as <program_dir>/gpu_verify.py, with the
expected-performance table as gpu_perf.json beside it, each rewritten only when its content changed, so
an admin can rerun it by hand. Its JSON answer is the task's result under `gpu_verify`. Only the GPU
checks decide the verdict (`required_checks`); the rest of the chapter's checklist (rustc, cargo, nvcc,
cuDNN...) is reported line by line. Verification changes nothing, so the task never reports `changed`.

Check mode runs the verification too (it is read-only): from the installed program when it is current,
else from a temporary copy that is removed afterwards, and says what a real run would write. A host
without CuPy yet fails in check mode only when it has no GPU at all: a real run would install CuPy first.
`probe: true` only looks for an installed CuPy (found, not imported: the program imports it once and
diagnoses a broken one) and a GPU on the PCI bus; the role decides from it whether to pip-install
CuPy. The Python found is remembered by the agent for the run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHECK_MODE = True
PROGRAM = "gpu_verify.py"
TABLE = "gpu_perf.json"
# The GPU stack: a failure here fails the host. verify.py's other checks are lines of the result.
GPU_CHECKS = ("gpu_present", "driver", "cupy", "cupy_cuda", "gpu_device", "kernel_compile", "gpu_run",
              "matmul_exact_2048", "matmul_vs_cublas")
# Finding CuPy must not import it (0.5-1.5 s): the program imports it once, and diagnoses a broken one.
CUPY_PROBE = (
    "import importlib.util as u, os, re, sys\n"
    "s = u.find_spec('cupy')\n"
    "if s is None or not s.submodule_search_locations: sys.exit('No module named cupy')\n"
    "p = os.path.join(list(s.submodule_search_locations)[0], '_version.py')\n"
    "m = re.search(r'__version__\\s*=\\s*.([^\\'\"]+)', open(p).read()) if os.path.exists(p) else None\n"
    "sys.stdout.write(m.group(1) if m else 'unknown')\n"
)
GPU_VENDORS = {"0x10de": "nvidia", "0x1002": "amd"}
_USABLE: dict[str, str] = {}  # python -> CuPy version, for the life of the agent (positives only)


class Args(ModuleArgs):
    python: str | None = None                       # tried first; then the venv's, python3, the agent's
    venv: str = "/opt/provision/venv"
    sizes: list[int] = [1024, 4096]
    perf_table: dict[str, Any] | None = None        # provisioner/data/gpu_perf.yml, loaded on the controller
    quick: bool = False
    devices: list[int] = []                         # CUDA device numbers (after CUDA_VISIBLE_DEVICES); [] = all
    burn_seconds: float = 0                         # keep cuBLAS busy on every GPU this long, sampling clocks
    timeout: int = 300                              # the burn-in's seconds come on top
    program_dir: str = "/var/lib/provision"
    required_checks: list[str] = list(GPU_CHECKS)
    probe: bool = False
    rust_results: str | None = None                 # the rust_project role's timing lines (a directory)


def candidate_pythons(args: Args, host: Host) -> list[str]:
    found = [args.python, os.path.join(args.venv, "bin", "python"), host.which("python3"), sys.executable]
    out: list[str] = []
    for path in found:
        if path and path not in out:
            out.append(path)
    return out


def find_cupy(candidates: list[str], host: Host) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """The first candidate where `import cupy` works, one subprocess each: (python, version, tried)."""
    tried: list[dict[str, Any]] = []
    for python in candidates:
        if python in _USABLE:
            return python, _USABLE[python], tried
        if not os.access(python, os.X_OK):
            tried.append({"python": python, "error": "not found"})
            continue
        res = host.run([python, "-c", CUPY_PROBE], timeout=120)
        if res.rc == 0:
            _USABLE[python] = res.stdout.strip()
            return python, _USABLE[python], tried
        lines = (res.stderr or res.stdout).strip().splitlines()
        tried.append({"python": python, "error": lines[-1] if lines else f"rc={res.rc}"})
    return None, None, tried


def gpu_vendor(root: str = "/sys/bus/pci/devices") -> str | None:
    """'nvidia' or 'amd' when such a display controller or accelerator is on the PCI bus, else None."""
    try:
        slots = sorted(os.listdir(root))
    except OSError:
        return None
    for slot in slots:
        try:
            with open(os.path.join(root, slot, "vendor")) as f:
                vendor = f.read().strip().lower()
            with open(os.path.join(root, slot, "class")) as f:
                pci_class = f.read().strip().lower()
        except OSError:
            continue
        if vendor in GPU_VENDORS and pci_class.startswith(("0x03", "0x12")):
            return GPU_VENDORS[vendor]
    return None


def program_source() -> bytes:
    """verify.py as shipped in the agent's bundle (bytes in __main__._SOURCES), or from disk in-process."""
    main = sys.modules.get("__main__")
    sources = getattr(main, "_SOURCES", None)
    if isinstance(sources, dict) and isinstance(sources.get("provisioner.gpu.verify"), bytes):
        return sources["provisioner.gpu.verify"]
    import importlib.util
    spec = importlib.util.find_spec("provisioner.gpu.verify")
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise ModuleError("provisioner/gpu/verify.py is not available to this agent")
    with open(spec.origin, "rb") as f:
        return f.read()


def program_dir(wanted: str) -> str:
    """`wanted` when it is (or can be made) writable; else ~/.cache/provision (no root, no become)."""
    path = os.path.abspath(wanted)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return wanted if os.access(path, os.W_OK) else os.path.expanduser("~/.cache/provision")


def files_wanted(args: Args, host: Host, directory: str) -> list[tuple[str, bytes, bool]]:
    """[(path, content, needs_writing)]: the program and, when given, the performance table."""
    files = [(os.path.join(directory, PROGRAM), program_source())]
    if args.perf_table is not None:
        table = json.dumps(args.perf_table, indent=1, sort_keys=True, default=str) + "\n"
        files.append((os.path.join(directory, TABLE), table.encode("utf-8")))
    return [(path, content, host.read_bytes(path) != content) for path, content in files]


def plan(args: Args, host: Host) -> Change:
    python, version, tried = find_cupy(candidate_pythons(args, host), host)
    if args.probe:
        vendor = gpu_vendor()
        msg = f"CuPy {version} in {python}" if python else "no Python with a usable CuPy"
        msg += f"; GPU on the PCI bus: {vendor or 'none'}"
        return Change(False, msg, data={"cupy_python": python, "cupy_version": version, "tried": tried,
                                        "gpu_vendor": vendor})
    directory = program_dir(args.program_dir)
    files = files_wanted(args, host, directory)
    todo = {"python": python, "cupy_version": version, "tried": tried, "dir": directory, "files": files}
    if any(write for _path, _content, write in files) and not host.check_mode:
        return Change(True, todo=todo)
    data = verify(args, host, todo)
    return Change(False, data["msg"], data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    os.makedirs(todo["dir"], mode=0o755, exist_ok=True)
    for path, content, write in todo["files"]:
        if write:
            host.write_atomic(path, content, mode=0o644)
    todo["written"] = [path for path, _content, write in todo["files"] if write]
    return verify(args, host, todo)


def verify(args: Args, host: Host, todo: dict[str, Any]) -> dict[str, Any]:
    """Run the program (a temporary copy in check mode when the installed one is not current)."""
    files, tmp = todo["files"], None
    if host.check_mode and any(write for _path, _content, write in files):
        tmp = tempfile.mkdtemp(prefix="provision-gpu-verify-")
        for path, content, _write in files:
            with open(os.path.join(tmp, os.path.basename(path)), "wb") as f:
                f.write(content)
    where = tmp or todo["dir"]
    python = todo["python"] or next((p for p in candidate_pythons(args, host) if os.access(p, os.X_OK)),
                                    "python3")
    argv = [python, os.path.join(where, PROGRAM), "--json", "--sizes", ",".join(str(n) for n in args.sizes)]
    if args.perf_table is not None:
        argv += ["--perf-table", os.path.join(where, TABLE)]
    if args.quick:
        argv.append("--quick")
    if args.devices:
        argv += ["--devices", ",".join(str(d) for d in args.devices)]
    if args.burn_seconds:
        argv += ["--burn-seconds", str(args.burn_seconds)]
    if args.rust_results and os.path.isdir(args.rust_results):
        argv += ["--rust-results", args.rust_results]
    try:
        res = host.run(argv, timeout=args.timeout + int(args.burn_seconds))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    data: dict[str, Any] = {"changed": False, "rc": res.rc, "cmd": argv, "cupy_python": todo["python"],
                            "tried": todo["tried"], "program": os.path.join(todo["dir"], PROGRAM),
                            "program_written": bool(todo.get("written"))}
    try:
        result = json.loads(res.stdout)
    except ValueError:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        shown = " | ".join(tail) or "no output"
        raise ModuleError(f"{PROGRAM} printed no JSON (rc={res.rc}): {shown}", **data)
    data["gpu_verify"] = result
    data.update(verdict(result, args.required_checks))
    if host.check_mode:
        would = [path for path, _content, write in files if write]
        if data["failed"] and todo["python"] is None and (result.get("diagnosis") or {}).get("code") != "no_gpu":
            data["failed"] = False
            data["msg"] = "check mode, no CuPy yet (a real run installs it first): " + data["msg"]
        if would:
            data["msg"] += f" (check mode: would write {', '.join(would)})"
    if data["failed"] and gpu_vendor() == "amd" and (result.get("diagnosis") or {}).get("code") == "no_gpu":
        data["msg"] = "AMD GPU found, but the verification program tests NVIDIA GPUs (CUDA) only"
    return data


def _tflops(result: dict[str, Any], kernel: str, n: int | None) -> str:
    rows = [p for p in result.get("perf") or [] if p.get("kernel") == kernel and p.get("n") == n]
    return f"{rows[0]['gflops'] / 1000.0:.1f}" if rows and rows[0].get("gflops") is not None else "-"


def verdict(result: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """failed, msg (one line) and the checklist's failures, split into required (GPU) and the others."""
    checks = [c for c in result.get("checks") or [] if isinstance(c, dict)]
    failing = [c for c in checks if c.get("ok") is False]
    required_failed = [c for c in failing if c.get("name") in required]
    other_failed = [c["name"] for c in failing if c.get("name") not in required]
    cannot_run = result.get("exit_code") == 2 or not result.get("device")
    out: dict[str, Any] = {"gpu_ok": not cannot_run and not required_failed,
                           "failed_checks": [c["name"] for c in failing],
                           "failed_required_checks": [c["name"] for c in required_failed]}
    out["failed"] = not out["gpu_ok"]
    if cannot_run or required_failed:
        diag = result.get("diagnosis") or {}
        if required_failed and not cannot_run:
            first = required_failed[0]
            reason, fix = f"{first.get('name')}: {first.get('detail')}", first.get("fix")
        else:
            reason, fix = diag.get("reason") or result.get("error") or "verification could not run", diag.get("fix")
        msg = str(reason) + (f" -- fix: {fix}" if fix else "")
        out["msg"] = " ".join(msg.split())
        return out
    counted = [c for c in checks if c.get("ok") is not None]
    name = str((result.get("device") or {}).get("name") or "GPU")
    name = name[len("NVIDIA "):] if name.startswith("NVIDIA ") else name
    if len(result.get("devices") or []) > 1:
        name = f"{len(result['devices'])}x {name}"
    n = max((p["n"] for p in result.get("perf") or [] if p.get("kernel") == "cublas"), default=None)
    msg = (f"{name}: {len(counted) - len(failing)}/{len(counted)} checks, naive {_tflops(result, 'naive', n)}"
           f" / tiled {_tflops(result, 'tiled', n)} / cuBLAS {_tflops(result, 'cublas', n)} TFLOP/s")
    if n is not None:
        msg += f" at n={n}"
    if other_failed:
        msg += "; not required, failing: " + ", ".join(other_failed)
    if result.get("warnings"):
        msg += f"; {len(result['warnings'])} warning(s)"
    out["msg"] = msg
    return out
