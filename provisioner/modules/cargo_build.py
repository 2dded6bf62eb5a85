"""cargo_build: `cargo build --release` a project as its user, then run the binary and keep its timing line.

Cargo decides freshness, not this module: a real run always asks cargo, and reports `changed` only when
cargo compiled something (a `compiler-artifact` message with `fresh: false`), so a rerun on unchanged
sources is ok. Check mode cannot ask cargo without building: it compares the binary's mtime with the
sources'. With `run`, the binary runs as the user (a measurement, never a change) and must print one JSON
line starting with {"gpu_ml": every form's check value must be 2n; the line is returned as `run` and,
with `results_file`, recorded there for gpu_verify's table (written only when its content changes, and not
counted as a change of the host: it is a measurement).
"""

from __future__ import annotations

import json
import os
import pwd
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

INPUTS = ("Cargo.toml", "Cargo.lock", ".cargo/config.toml", "src", "build.rs")


class Args(ModuleArgs):
    path: str
    name: str                               # the binary (the package's name)
    user: Optional[str] = None              # run cargo and the binary as this user (needs root)
    cargo: str = "cargo"
    extra_path: List[str] = []              # prepended to PATH (rustup's cargo_home/bin)
    env: Dict[str, str] = {}
    offline: bool = True
    features: Optional[List[str]] = None    # None: the project's default features
    timeout: int = 3600
    run: bool = True
    run_args: List[str] = []
    run_timeout: int = 900
    results_file: Optional[str] = None


def newest_input(path: str) -> float:
    newest = 0.0
    for rel in INPUTS:
        top = os.path.join(path, rel)
        if os.path.isdir(top):
            for root, _dirs, names in os.walk(top):
                newest = max([newest] + [os.stat(os.path.join(root, n)).st_mtime for n in names])
        elif os.path.exists(top):
            newest = max(newest, os.stat(top).st_mtime)
    return newest


def as_user(args: Args, host: Host, argv: List[str], timeout: int) -> Any:
    """Run argv in the project as args.user (runuser when root), with cargo's PATH additions."""
    env = dict(args.env)
    env["PATH"] = os.pathsep.join(args.extra_path + [os.environ.get("PATH") or os.defpath])
    if args.user and pwd.getpwuid(os.geteuid()).pw_name != args.user:
        if os.geteuid() != 0:
            raise ModuleError("cargo_build: running as %s needs root (become: true)" % args.user)
        entry = pwd.getpwnam(args.user)
        env.update({"HOME": entry.pw_dir, "USER": args.user, "LOGNAME": args.user})
        argv = ["runuser", "-u", args.user, "--"] + argv
    return host.run(argv, cwd=args.path, env=env, timeout=timeout)


def find_cargo(args: Args, host: Host) -> Optional[str]:
    if os.sep in args.cargo:
        return host.which(args.cargo)
    for directory in args.extra_path:
        found = host.which(os.path.join(directory, args.cargo))
        if found:
            return found
    return host.which(args.cargo)


def plan(args: Args, host: Host) -> Change:
    if not os.path.isfile(os.path.join(args.path, "Cargo.toml")):
        if host.check_mode:
            return Change(True, "would build %s (the project is not written yet)" % args.path)
        raise ModuleError("cargo_build: no Cargo.toml in %s" % args.path)
    cargo = find_cargo(args, host)
    if cargo is None:
        if host.check_mode:
            return Change(True, "would build %s (cargo is not installed yet)" % args.path)
        raise ModuleError("cargo_build: %s not found (run the rust role first)" % args.cargo)
    if host.check_mode:
        binary = os.path.join(args.path, "target", "release", args.name)
        if os.path.exists(binary) and os.stat(binary).st_mtime >= newest_input(args.path):
            return Change(False, "%s is newer than its sources (by mtimes: cargo would compile nothing)" % binary)
        return Change(True, "would run cargo build --release in %s" % args.path)
    return Change(True, todo={"cargo": cargo})


def build(args: Args, host: Host, cargo: str) -> Dict[str, Any]:
    argv = [cargo, "build", "--release", "--message-format=json-render-diagnostics"]
    if args.offline:
        argv.append("--offline")
    if args.features is not None:
        argv += ["--no-default-features", "--features", ",".join(args.features)]
    t0 = time.monotonic()
    res = as_user(args, host, argv, args.timeout)
    compiled: List[str] = []
    executable = None
    for line in res.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact":
            if not msg.get("fresh", True):
                compiled.append(msg.get("target", {}).get("name", "?"))
            executable = msg.get("executable") or executable
    if res.rc != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-8:])
        raise ModuleError("cargo build --release failed in %s (rc=%d): %s" % (args.path, res.rc, tail),
                          rc=res.rc, stderr=res.stderr[-4000:], cmd=argv)
    return {"cmd": argv, "compiled": compiled, "build_s": round(time.monotonic() - t0, 2),
            "executable": executable or os.path.join(args.path, "target", "release", args.name)}


def run_binary(args: Args, host: Host, executable: str) -> Dict[str, Any]:
    res = as_user(args, host, [executable] + args.run_args, args.run_timeout)
    lines = [line for line in res.stdout.splitlines() if line.startswith('{"gpu_ml"')]
    if res.rc != 0 or not lines:
        shown = " | ".join((res.stderr or res.stdout).strip().splitlines()[-5:])
        raise ModuleError("%s printed no timing line (rc=%d): %s" % (executable, res.rc, shown),
                          stdout=res.stdout[-4000:])
    result: Dict[str, Any] = json.loads(lines[-1])
    wrong = ["%s: every element should be %s, got %s" % (form, result.get("expected"), r.get("check"))
             for form, r in (result.get("forms") or {}).items() if not r.get("ok")]
    if wrong:
        raise ModuleError("%s computed a wrong product: %s" % (executable, "; ".join(wrong)), run=result)
    return result


def record(path: str, content: Dict[str, Any], host: Host) -> None:
    """The timing line for gpu_verify, rewritten only when it differs (root-owned, readable by all)."""
    data = (json.dumps(content, indent=1, sort_keys=True) + "\n").encode("utf-8")
    if host.read_bytes(path) == data:
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    host.write_atomic(path, data, mode=0o644)


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    built = build(args, host, change.todo["cargo"])
    out: Dict[str, Any] = dict(built, changed=bool(built["compiled"]))
    what = ("compiled %s in %.0f s" % (", ".join(built["compiled"]), built["build_s"]) if built["compiled"]
            else "up to date: cargo compiled nothing")
    if args.run:
        result = run_binary(args, host, built["executable"])
        out["run"] = result
        timings = ", ".join("%s %.1f ms" % (form, r["ms"]) for form, r in result["forms"].items())
        what += "; %s (n=%s, every element %g)" % (timings, result["n"], result["expected"])
        if result.get("left_out"):
            what += "; not run: " + ", ".join("%s (%s)" % kv for kv in result["left_out"].items())
        if args.results_file:
            record(args.results_file, dict(result, user=args.user, path=args.path), host)
    out["msg"] = what
    return out
