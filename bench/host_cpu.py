"""What one managed host spends, in CPU, on a no-op run: provision (and pyinfra), and the parts
of it no tool can avoid. Prints figures; asserts nothing.

    python bench/host_cpu.py [--runs 20] [--tools provision,pyinfra]

One fleet host (tests/fleet: Debian 13, its own sshd on 127.0.0.1, its own PID namespace).
Everything a connection starts on the host (sshd-session, sshd-auth, the shell, python, the
commands it runs) descends from the host's PID 1, its sshd; what a run cost the host is measured
as bench/run.py measures it (hosts_cpu: PID 1 and every process under it, with what they reaped).
The clock ticks are 10 ms: each figure is a mean over --runs.
"""

from __future__ import annotations

import argparse
import resource
import sys
import uuid
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench import run as benchrun  # noqa: E402
from tests.fleet import fleet as fleetmod  # noqa: E402

# what the agent's own start imports from the standard library (besides what python's start
# loads anyway); facts bring `re` (with enum and functools)
STDLIB = "import threading, select, _json, re, fnmatch"
FIRST_RUN_HOSTS = 3


def mean_host_cpu(pid: int, runs: int, step: object) -> tuple[float, float]:
    """(host CPU ms, controller CPU ms) per call of step(), averaged over `runs` calls."""
    host0 = benchrun.settled_hosts_cpu([pid])
    ctl0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(runs):
        step()  # type: ignore[operator]
    host1 = benchrun.settled_hosts_cpu([pid])
    ctl1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    ctl = (ctl1.ru_utime + ctl1.ru_stime - ctl0.ru_utime - ctl0.ru_stime
           + me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime)
    return (host1 - host0) / runs * 1e3, ctl / runs * 1e3


def first_runs(tools: list[str]) -> list[tuple[str, float, float]]:
    """The first run on fresh hosts, and the part of it every tool pays: apt-get installing the
    playbook's packages (from the fleet's warm .deb cache, as in bench/run.py)."""
    rows: list[tuple[str, float, float]] = []
    n = FIRST_RUN_HOSTS
    for tool in tools:
        with fleetmod.Fleet(n, name=f"hostcpu-first-{tool}", log=lambda m: None) as fleet:
            pids = [h.init_pid for h in fleet.hosts if h.init_pid is not None]
            workdir = benchrun.run_dir(f"hostcpu-first-{tool}")
            cmd, env, cwd = benchrun.command_for(tool, fleet, n, workdir)
            env["PROVISION_BENCH_TAG"] = uuid.uuid4().hex
            before = benchrun.settled_hosts_cpu(pids)
            r = benchrun.run_measured(cmd, env, cwd, workdir / "first.log", 1800)
            assert r.rc == 0, f"{tool}: first run failed, see {r.log}"
            host_ms = (benchrun.settled_hosts_cpu(pids) - before) / n * 1e3
            ctl_ms = r.cpu_s / n * 1e3
            rows.append((f"{tool}: a first run of bench/baseline.yml on a fresh host", host_ms, ctl_ms))
    with fleetmod.Fleet(n, name="hostcpu-first-apt", log=lambda m: None) as fleet:
        # host_exec runs the command under nsenter, our child: its CPU is ours to reap, not PID 1's
        before_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        for h in fleet.hosts:
            proc = fleet.host_exec(h, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *benchrun.PACKAGES],
                                   timeout=600)
            assert proc.returncode == 0, proc.stderr[-500:]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        host_ms = (after.ru_utime + after.ru_stime - before_usage.ru_utime - before_usage.ru_stime) / n * 1e3
        rows.append(("  of which any tool pays: `apt-get install -y --no-install-recommends %s` (no SSH)"
                     % " ".join(benchrun.PACKAGES), host_ms, float("nan")))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tools", default="provision,pyinfra")
    args = ap.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if "pyinfra" in tools:
        benchrun.ensure_venv(lambda m: print(m, file=sys.stderr))
    benchrun.precompile()
    rows: list[tuple[str, float, float]] = []
    for tool in tools:
        with fleetmod.Fleet(1, name=f"hostcpu-{tool}", log=lambda m: None) as fleet:
            pid = fleet.hosts[0].init_pid
            assert pid is not None
            workdir = benchrun.run_dir(f"hostcpu-{tool}")
            cmd, env, cwd = benchrun.command_for(tool, fleet, 1, workdir)

            def apply(cmd: list[str] = cmd, env: dict[str, str] = env, cwd: Path = cwd) -> None:
                benchrun.converge(cmd, env, cwd)

            apply()  # converge (and, for provision, write the host's bytecode cache)
            rows.append((f"{tool}: a whole no-op run of bench/baseline.yml", *mean_host_cpu(pid, args.runs, apply)))
            if tool != "provision":
                continue
            # Each step: connect, run one command, disconnect (what a command costs shows only once
            # its connection's sshd-session has exited and been reaped by PID 1).
            def connect_and(command: str) -> object:
                def step() -> None:
                    c = fleet.ssh(fleet.hosts[0])
                    c.exec_command(command)[1].read()
                    c.close()
                return step

            base, base_ctl = mean_host_cpu(pid, args.runs, connect_and("true"))
            rows.append(("  of which any tool pays: sshd for one connection (connect, authenticate, exec `true`)",
                         base, base_ctl))
            for label, command in (("python3 start-up (`python3 -I -S -c pass`)", "python3 -I -S -c pass"),
                                   (f"python3 start-up and the agent's stdlib imports (`{STDLIB}`)",
                                    f"python3 -I -S -c '{STDLIB}'"),
                                   ("one `dpkg-query -W tree jq pkg-config`", "dpkg-query -W tree jq pkg-config")):
                host_ms, _ = mean_host_cpu(pid, args.runs, connect_and(command))
                rows.append((f"  of which: {label}, beyond that connection", host_ms - base, float("nan")))
    rows += first_runs(tools)
    print(f"\nHost CPU per run, mean of {args.runs} (one Debian 13 fleet host; first runs: mean over "
          f"{FIRST_RUN_HOSTS} fresh hosts); controller CPU alongside\n")
    print("| what | host CPU ms | controller CPU ms |")
    print("|---|---:|---:|")
    for what, host_ms, ctl_ms in rows:
        print(f"| {what} | {host_ms:.1f} | {'-' if ctl_ms != ctl_ms else f'{ctl_ms:.1f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
