"""Benchmark: the same 10-task GPU baseline with provision, ansible-playbook and pyinfra.

For each tool and host count N it starts N fresh test hosts (tests/fleet: real sshd on
127.0.0.1, one Debian 13 overlay root each), runs the playbook once (first run), then twice
more (no-op runs), and prints one table: wall time, the no-op time against provision's,
the SSH exec sessions per host during the no-op runs (from the hosts' sshd logs) and the
peak memory of the tool's whole process tree on the controller.

    python bench/run.py --hosts 1,5,20,50 --tools provision,ansible,pyinfra
    python bench/run.py --quick                # 1 and 5 hosts, provision only

ansible-core and pyinfra are installed by this program into a throwaway venv under
/var/tmp/provision-bench/venv. See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from tests.fleet import fleet as fleetmod  # noqa: E402

WORK = Path(os.environ.get("PROVISION_BENCH_DIR", "/var/tmp/provision-bench"))
VENV = WORK / "venv"
PLAYBOOK = BENCH_DIR / "baseline.yml"
PYINFRA_DEPLOY = BENCH_DIR / "baseline_pyinfra.py"
PACKAGES = ["tree", "jq", "pkg-config"]        # the playbook's apt task
WANTED = ["ansible-core==2.19.*", "pyinfra==3.*"]
TOOLS = ("provision", "provision-persist", "provision-jump", "ansible", "ansible-pipelining", "pyinfra")
PERSIST_S = 120   # provision-persist's --persist: outlives the pauses between one size's runs
LABELS = {
    "provision": "provision",
    "provision-persist": "provision --persist %d (its daemon's CPU and memory included)" % PERSIST_S,
    "provision-jump": "provision, through one jump host (ProxyJump)",
    "ansible": "ansible-core (defaults, ControlPersist)",
    "ansible-pipelining": "ansible-core, pipelining on",
    "pyinfra": "pyinfra",
}
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class RunFigures:
    """One invocation of a tool: wall seconds, rc, peak RSS of its process tree, sessions."""

    seconds: float
    rc: int
    peak_rss: int
    cpu_s: float
    processes: int
    exec_sessions: list[int] = field(default_factory=list)   # per host, this run only
    changed: int | None = None                                # from the recap, when readable
    log: str = ""
    host_cpu_s: float = 0.0   # CPU the measured hosts spent on this run, all of them together
    detached_cpu_s: float = 0.0   # of cpu_s: processes of the tool that outlive it (persist daemon, ssh masters)


@dataclass
class Row:
    tool: str
    hosts: int
    version: str
    first: RunFigures | None = None
    noop: list[RunFigures] = field(default_factory=list)
    error: str = ""

    def best_noop_run(self) -> RunFigures | None:
        ok = [r for r in self.noop if r.rc == 0]
        return min(ok, key=lambda r: r.seconds) if ok else None

    def noop_best(self) -> float | None:
        best = self.best_noop_run()
        return best.seconds if best else None

    def noop_mean(self) -> float | None:
        ok = [r.seconds for r in self.noop if r.rc == 0]
        return statistics.mean(ok) if ok else None

    def peak_mb(self) -> float:
        runs = ([self.first] if self.first else []) + self.noop
        return max((r.peak_rss for r in runs), default=0) / 2**20


# --------------------------------------------------------------------------- the process tree's memory

class TreeMemory(threading.Thread):
    """Polls /proc every `interval` s and keeps the peak of the summed RSS of every process
    that carries this run's tag in its environment (the tool and all its descendants, also
    ones that detach, such as ssh's ControlPersist masters)."""

    def __init__(self, tag: str, root_pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.needle = ("PROVISION_BENCH_TAG=" + tag).encode()
        self.root_pid = root_pid
        self.interval = interval
        self.peak = 0
        self.seen: set[int] = set()
        self._tagged: dict[int, bool] = {}
        self._halt = threading.Event()

    def _is_tagged(self, pid: int) -> bool:
        known = self._tagged.get(pid)
        if known is None:
            try:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    known = self.needle in f.read().split(b"\0")
            except OSError:
                known = False
            known = known or pid == self.root_pid
            self._tagged[pid] = known
        return known

    def sample(self) -> None:
        total = 0
        alive = set()
        for ent in os.listdir("/proc"):
            if not ent.isdigit():
                continue
            pid = int(ent)
            alive.add(pid)
            if not self._is_tagged(pid):
                continue
            try:
                with open("/proc/%d/statm" % pid) as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
            self.seen.add(pid)
        for pid in [p for p in self._tagged if p not in alive]:
            del self._tagged[pid]
        self.peak = max(self.peak, total)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_measured(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                 timeout: float) -> RunFigures:
    """Run a tool once; wall time from spawn to exit, peak RSS of its tree, CPU of what it reaped.
    env carries PROVISION_BENCH_TAG, the same for all runs of one tool on one fleet: processes
    an earlier run left behind (ControlPersist masters) count while they live."""
    tag = env["PROVISION_BENCH_TAG"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    detached_before = tagged_cpu(tag)
    with open(log_path, "wb") as logf:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT)
        mem = TreeMemory(tag, proc.pid)
        mem.start()
        deadline = t0 + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        mem.sample()
        mem.stop()
    # ControlPersist masters and provision's persist daemon outlive the tool; nothing is killed
    # here (they end with the fleet, or at their idle time). What they spent during this run is
    # the tool's CPU too: it is not in what the tool reaped.
    detached = sum(cpu - detached_before.get(pid, 0.0) for pid, cpu in tagged_cpu(tag, mem).items())
    return RunFigures(seconds=seconds, rc=proc.returncode, peak_rss=mem.peak,
                      cpu_s=((usage.ru_utime + usage.ru_stime) if usage else 0.0) + detached,
                      processes=len(mem.seen), log=str(log_path), detached_cpu_s=detached)


def tagged_cpu(tag: str, mem: TreeMemory | None = None) -> dict[int, float]:
    """CPU seconds so far of each live process that carries the tag (own time and its reaped
    children's), for processes that outlive the tool."""
    mem = mem or TreeMemory(tag, -1)
    return {pid: ticks / TICK for pid, (_, ticks) in proc_cpu().items()
            if pid != mem.root_pid and mem._is_tagged(pid)}


_CHANGED = re.compile(r"\bchanged[=:]\s*(\d+)", re.I)


def changed_count(log_path: str, tool: str) -> int | None:
    """Sum of 'changed=N' over the recap lines (provision and ansible print the same recap)."""
    if tool == "pyinfra":
        return None
    text = Path(log_path).read_text(errors="replace")
    recap = text[text.rfind("RECAP"):] if "RECAP" in text else text
    found = [int(m.group(1)) for m in _CHANGED.finditer(recap)]
    return sum(found) if found else None


# --------------------------------------------------------------------------- what the hosts spent

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent, its own and its reaped children's CPU in clock ticks)."""
    table: dict[int, tuple[int, int]] = {}
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            fields = Path("/proc/%s/stat" % ent).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(ent)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))  # ppid; utime stime cutime cstime
    return table


def hosts_cpu(pids: list[int]) -> float:
    """CPU seconds the hosts have spent so far, summed over the hosts.

    Each fleet host runs in a PID namespace of its own whose PID 1 is its sshd, so every process a
    connection starts (sshd-session, sshd-auth, the shell, python, the commands it runs) descends
    from it: a host's CPU is its PID 1's own and reaped-children time plus that of every process
    still alive under it (each CPU second counts once: in the process that spent it while it
    lives, then in the reaped-children time of whoever reaped it). The live part matters for
    Ansible's ControlPersist masters, whose sessions' CPU stays in a live sshd-session. Clock
    ticks are 10 ms; summed over many hosts they average out."""
    table = proc_cpu()
    kids: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        kids.setdefault(parent, []).append(pid)
    total = 0
    todo = [p for p in pids if p in table]
    while todo:
        pid = todo.pop()
        total += table[pid][1]
        todo.extend(kids.get(pid, ()))
    return total / TICK


def settled_hosts_cpu(pids: list[int], quiet_for: float = 0.4, limit: float = 6.0) -> float:
    """hosts_cpu() once nothing more is being reaped (an agent may end just after its controller)."""
    last, since, t0 = hosts_cpu(pids), time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < limit:
        time.sleep(0.1)
        now = hosts_cpu(pids)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            break
    return last


# --------------------------------------------------------------------------- the tools

def ensure_venv(log: Any) -> dict[str, str]:
    """ansible-core and pyinfra in a venv of their own; returns {tool: version}."""
    py = VENV / "bin" / "python"
    if not ((VENV / "bin" / "ansible-playbook").exists() and (VENV / "bin" / "pyinfra").exists()):
        log("installing %s into %s" % (" ".join(WANTED), VENV))
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if subprocess.run(pip + WANTED).returncode != 0:
            log("%s not available: taking the latest ansible-core and pyinfra" % " ".join(WANTED))
            subprocess.run(pip + ["ansible-core", "pyinfra"], check=True)
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('ansible-core'), "
                          "m.version('pyinfra'))"], capture_output=True, text=True, check=True)
    ansible_v, pyinfra_v = out.stdout.split()
    return {"ansible": "ansible-core " + ansible_v, "ansible-pipelining": "ansible-core " + ansible_v,
            "pyinfra": "pyinfra " + pyinfra_v}


def precompile() -> None:
    """Byte-compile provision's sources, as `pip install` does for a regular (non-editable) install."""
    import compileall
    compileall.compile_dir(str(REPO / "provisioner"), quiet=1)


def provision_version() -> str:
    from provisioner import __version__
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return "provision %s (%s)" % (__version__, commit or "?")


def ansible_cfg(path: Path, n: int, pipelining: bool, cp_dir: Path) -> Path:
    # host_key_checking stays on: the inventory's ansible_ssh_common_args point ssh at the
    # fleet's known_hosts with StrictHostKeyChecking=yes. ssh_args are Ansible's defaults
    # (ControlMaster=auto, ControlPersist=60s) in both variants.
    path.write_text(
        "[defaults]\n"
        "host_key_checking = True\n"
        "forks = %d\n"
        "interpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\n"
        "[ssh_connection]\n"
        "pipelining = %s\n"
        "control_path_dir = %s\n" % (min(max(n, 1), 50), pipelining, cp_dir))
    return path


def pyinfra_inventory(path: Path, fleet: fleetmod.Fleet) -> Path:
    hosts = [(h.name, {"ssh_hostname": h.address, "ssh_port": h.port, "ssh_user": "root",
                       "ssh_key": str(fleet.key_path), "ssh_known_hosts_file": str(fleet.known_hosts_path),
                       "ssh_strict_host_key_checking": "yes"}) for h in fleet.hosts]
    path.write_text("# written by bench/run.py\nhosts = %r\n" % (hosts,))
    return path


def command_for(tool: str, fleet: fleetmod.Fleet, n: int, rundir: Path) -> tuple[list[str], dict[str, str], Path]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    # As on a user's machine: bytecode is cached (pip compiled ansible's and pyinfra's at install;
    # provision's is compiled by precompile()). A shell that exports PYTHONDONTWRITEBYTECODE would
    # make provision, installed editable, compile all its sources on every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if tool == "provision-jump":
        # The same hosts, each reached through one more fleet host as the jump host: one SSH
        # connection to it, a direct-tcpip channel per host (all on 127.0.0.1).
        jump = fleet.hosts[-1]
        targets = fleet.hosts[:-1]
        inventory = fleet.write_inventory(rundir / "inventory-jump.yml", hosts=targets, extra_vars={
            "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                                       " -o ProxyJump=root@%s:%d" % (fleet.known_hosts_path, jump.address, jump.port)})
        argv = [sys.executable, "-m", "provisioner.cli", "apply", str(PLAYBOOK), "-i", str(inventory),
                "--known-hosts", str(fleet.known_hosts_path), "-q"]
        env["PYTHONPATH"] = str(REPO)
        return argv, env, REPO
    if tool in ("provision", "provision-persist"):
        # provision's default --forks, as a lab admin runs it (bench/README.md says why 50)
        argv = [sys.executable, "-m", "provisioner.cli", "apply", str(PLAYBOOK), "-i", str(fleet.inventory_path),
                "--known-hosts", str(fleet.known_hosts_path), "-q"]
        env["PYTHONPATH"] = str(REPO)
        if tool == "provision-persist":
            # the first run starts the daemon; the no-op runs find every host's agent kept. A
            # runtime dir of the bench's own: a daemon of this size's fleet only.
            argv += ["--persist", str(PERSIST_S)]
            env["XDG_RUNTIME_DIR"] = str(rundir / "xdg")
            (rundir / "xdg").mkdir(mode=0o700, exist_ok=True)
        return argv, env, REPO
    if tool.startswith("ansible"):
        cfg = ansible_cfg(rundir / ("%s.cfg" % tool), n, tool == "ansible-pipelining", rundir / "cp")
        env.update({"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOME": str(rundir / "ansible-home"),
                    "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
        return [str(VENV / "bin" / "ansible-playbook"), "-i", str(fleet.inventory_path), str(PLAYBOOK)], env, rundir
    if tool == "pyinfra":
        inv = pyinfra_inventory(rundir / "inventory.py", fleet)
        return [str(VENV / "bin" / "pyinfra"), "-y", str(inv), str(PYINFRA_DEPLOY)], env, BENCH_DIR
    raise ValueError(tool)


# --------------------------------------------------------------------------- one tool at one size

def run_dir(name: str) -> Path:
    """A fresh folder for one measurement's inventories and logs: WORK/runs/NAME-HHMMSS."""
    path = WORK / "runs" / ("%s-%s" % (name, time.strftime("%H%M%S")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def converge(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    """One run whose figures nobody reads: it brings the hosts to the playbook's state (and, for
    provision, writes the hosts' bytecode cache)."""
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def warm_apt_cache(log: Any) -> None:
    """Download the playbook's .debs into the fleet's shared archive once, so every tool's
    first run installs from the same warm cache (none of them pays the download alone)."""
    with fleetmod.Fleet(1, name="bench-warm", log=lambda m: None) as fl:
        proc = fl.host_exec(fl.hosts[0], ["apt-get", "install", "-y", "-q", "--download-only",
                                          "--no-install-recommends", *PACKAGES], timeout=600)
        if proc.returncode != 0:
            log("warming the .deb cache failed (the first runs will download): %s"
                % proc.stderr.decode(errors="replace")[-300:])


def bench_one(tool: str, n: int, version: str, noop_runs: int, timeout: float, log: Any) -> Row:
    row = Row(tool, n, version)
    rundir = run_dir("%s-%d" % (tool, n))
    jump = tool == "provision-jump"
    fleet = fleetmod.Fleet(n + jump, name="bench-%s-%d" % (tool, n), log=lambda m: None)
    try:
        fleet.up()
        targets = fleet.hosts[:n]   # the jump host (last) is not one of the measured hosts
        argv, env, cwd = command_for(tool, fleet, n, rundir)
        env["PROVISION_BENCH_TAG"] = uuid.uuid4().hex
        pids = [h.init_pid for h in targets if h.init_pid is not None]
        settled = [settled_hosts_cpu(pids)]   # the hosts' CPU after the last run: the next one's start

        def measure(logname: str) -> RunFigures:
            fleet.reset_log()
            r = run_measured(argv, env, cwd, rundir / logname, timeout)
            settled.append(settled_hosts_cpu(pids))
            r.host_cpu_s = settled[-1] - settled[-2]
            r.exec_sessions = [fleet.count_exec_sessions(h) for h in targets]
            r.changed = changed_count(r.log, tool)
            return r

        first = row.first = measure("first.log")
        log("  %-20s N=%-3d first run %7.2f s rc=%d  peak %.0f MB" % (tool, n, first.seconds, first.rc,
                                                                      first.peak_rss / 2**20))
        if first.rc != 0:
            row.error = "first run failed (rc %d): see %s" % (first.rc, first.log)
            return row
        for i in range(noop_runs):
            r = measure("noop%d.log" % (i + 1))
            if jump:
                log("  %-20s N=%-3d jump host: %d SSH connection(s) this run" % (
                    tool, n, fleet.count_connections(fleet.hosts[-1])))
            row.noop.append(r)
            log("  %-20s N=%-3d no-op run %7.2f s rc=%d  exec/host %s  peak %.0f MB  CPU %.2f s controller, "
                "%.2f s hosts%s" % (
                tool, n, r.seconds, r.rc, _span(r.exec_sessions), r.peak_rss / 2**20, r.cpu_s, r.host_cpu_s,
                "  (changed=%d!)" % r.changed if r.changed else ""))
            if r.rc != 0:
                row.error = "no-op run failed (rc %d): see %s" % (r.rc, r.log)
            elif r.changed:
                row.error = "no-op run changed %d things: see %s" % (r.changed, r.log)
    except Exception as exc:  # one broken tool must not lose the others' figures
        row.error = "%s: %s" % (type(exc).__name__, exc)
        log("  %s N=%d: %s" % (tool, n, row.error))
    finally:
        if tool == "provision-persist":
            stop_persist(rundir / "xdg")
        fleet.close()
    return row


def stop_persist(runtime_dir: Path) -> None:
    """End the persist daemon a provision-persist run left (its kept agents with it)."""
    subprocess.run([sys.executable, "-c", "from provisioner.connection import persist; persist.control('stop')"],
                   env={**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir), "PYTHONPATH": str(REPO)},
                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)


# --------------------------------------------------------------------------- the table

def _span(values: list[int]) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else "%d-%d" % (lo, hi)


def table(rows: list[Row]) -> str:
    base: dict[int, float] = {}
    for r in rows:
        best = r.noop_best()
        if r.tool == "provision" and best is not None:
            base[r.hosts] = best
    head = ("| tool | hosts | first run s | no-op s best / mean | no-op vs provision | "
            "SSH exec sessions per host, no-op | controller peak memory (process tree) | "
            "controller CPU s, no-op |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        best, mean = r.noop_best(), r.noop_mean()
        ratio = "-"
        if best is not None and r.hosts in base:
            ratio = "1.0x" if r.tool == "provision" else ("%.2fx" if r.tool.startswith("provision") else "%.1fx") % (
                best / base[r.hosts])
        sessions = _span([s for x in r.noop for s in x.exec_sessions])
        first = "%.2f" % r.first.seconds if r.first and r.first.rc == 0 else (
            "failed" if r.first else "-")
        noop = "%.2f / %.2f" % (best, mean) if best is not None and mean is not None else "-"
        cpu = [x.cpu_s for x in r.noop if x.rc == 0]
        note = " (%s)" % r.error if r.error else ""
        lines.append("| %s | %d | %s | %s | %s | %s | %.0f MB | %s |%s" % (
            LABELS.get(r.tool, r.tool), r.hosts, first, noop, ratio, sessions, r.peak_mb(),
            "%.2f" % min(cpu) if cpu else "-", note))
    return "\n".join(lines)


def time_table(rows: list[Row], cores: int, which: str = "no-op") -> str:
    """Where a run's wall time went (`which`: the better "no-op" run, or the "first" run): the
    controller's CPU, the hosts' CPU (the test hosts run on this machine's cores too), the floor
    those two set on `cores` cores, and the rest: time spent waiting (round trips, a core idle
    while a host or the controller was not ready)."""
    lines = ["| tool | hosts | %s wall s | controller CPU s | hosts' CPU s (per host) | "
             "CPU floor on %d cores s | beyond the floor s |" % (which, cores), "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = r.best_noop_run() if which == "no-op" else (r.first if r.first and r.first.rc == 0 else None)
        if b is None or not b.host_cpu_s:
            continue
        floor = (b.cpu_s + b.host_cpu_s) / cores
        lines.append("| %s | %d | %.2f | %.2f | %.2f (%.0f ms) | %.2f | %.2f |" % (
            LABELS.get(r.tool, r.tool), r.hosts, b.seconds, b.cpu_s, b.host_cpu_s,
            b.host_cpu_s / r.hosts * 1e3, floor, b.seconds - floor))
    return "\n".join(lines)


def goals(rows: list[Row]) -> str:
    """Issue 15's goals against pyinfra, from the figures of this table (one run, same hosts):
    for provision as it runs by default, and with --persist when that ran."""
    by = {(r.tool, r.hosts): r for r in rows}
    lines = ["| goal | hosts | figure | met |", "|---|---:|---|---|"]
    for tool, how in (("provision", ""), ("provision-persist", ", --persist")):
        for n in sorted({r.hosts for r in rows}):
            p, q = by.get((tool, n)), by.get(("pyinfra", n))
            if p is None:
                continue
            if q is not None and p.noop_best() and q.noop_best() and n >= 20:
                ratio = q.noop_best() / p.noop_best()  # type: ignore[operator]
                lines.append("| no-op >= 2.5x faster than pyinfra%s | %d | %.2fx (%.2f s vs %.2f s) | %s |" % (
                    how, n, ratio, p.noop_best(), q.noop_best(), "yes" if ratio >= 2.5 else "**no**"))
            if q is not None and p.first and q.first and p.first.rc == 0 and q.first.rc == 0:
                ratio = q.first.seconds / p.first.seconds
                lines.append("| first run >= 1.25x faster than pyinfra%s | %d | %.2fx (%.1f s vs %.1f s) | %s |" % (
                    how, n, ratio, p.first.seconds, q.first.seconds, "yes" if ratio >= 1.25 else "**no**"))
            sessions = [s for x in p.noop for s in x.exec_sessions]
            if sessions:
                lines.append("| 1 SSH exec session per host, no-op%s | %d | %s | %s |" % (
                    how, n, _span(sessions), "yes" if max(sessions) <= 1 else "**no**"))
            if n >= 200:
                lines.append("| controller memory <= 70 MB%s | %d | %.0f MB | %s |" % (
                    how, n, p.peak_mb(), "yes" if p.peak_mb() <= 70 else "**no**"))
    return "\n".join(lines)


def report(head: str, rows: list[Row], cores: int) -> str:
    parts = [head, "", table(rows), "", "Where the better no-op run's time went:", "", time_table(rows, cores),
             "", "Where the first run's time went:", "", time_table(rows, cores, "first")]
    if any(r.tool == "pyinfra" for r in rows):
        parts += ["", "Against the goals (issue 15):", "", goals(rows)]
    return "\n".join(parts)


def load_rows(path: Path) -> tuple[str, list[Row]]:
    data = json.loads(path.read_text())
    rows = []
    for d in data["rows"]:
        first = RunFigures(**d["first"]) if d.get("first") else None
        noop = [RunFigures(**x) for x in d.get("noop", [])]
        rows.append(Row(d["tool"], d["hosts"], d["version"], first, noop, d.get("error", "")))
    return data.get("header", ""), rows


def table_from_json(paths: list[Path]) -> str:
    merged: dict[tuple[str, int], Row] = {}
    headers = []
    for path in paths:
        head, rows = load_rows(path)
        headers.append(head)
        for r in rows:
            merged[(r.tool, r.hosts)] = r
    order = {t: i for i, t in enumerate(TOOLS)}
    rows = sorted(merged.values(), key=lambda r: (r.hosts, order.get(r.tool, 99)))
    return report("\n".join(dict.fromkeys(headers)), rows, os.cpu_count() or 1)


def header(versions: dict[str, str]) -> str:
    load = os.getloadavg()
    return ("%s; %s; Python %s; %d CPUs; load average at start %.2f %.2f %.2f" % (
        "; ".join(sorted(set(versions.values()))), platform.platform(terse=True), platform.python_version(),
        os.cpu_count() or 0, *load))


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", help="host counts, comma-separated (default 1,5,20,50,100,200; --quick: 1,5)")
    ap.add_argument("--tools", help="comma-separated: provision, provision-persist (--persist %d), ansible (both "
                    "variants), ansible-defaults, ansible-pipelining, pyinfra (default all; --quick: provision)"
                    % PERSIST_S)
    ap.add_argument("--quick", action="store_true", help="1 and 5 hosts, provision only (a smoke test)")
    ap.add_argument("--via-jump", action="store_true",
                    help="also run provision's no-op with every host behind one jump host (ProxyJump; tool "
                         "provision-jump), compared with the direct figure")
    ap.add_argument("--ansible-max-hosts", type=int, default=20,
                    help="run ansible-playbook only up to this many hosts (default 20: its ratio is settled, "
                    "and it takes minutes a run beyond)")
    ap.add_argument("--noop-runs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per tool invocation, seconds")
    ap.add_argument("--json", help="also write the figures as JSON here (rewritten after every row)")
    ap.add_argument("--no-warm-cache", action="store_true", help="do not pre-download the playbook's .debs")
    ap.add_argument("--table", nargs="+", metavar="JSON",
                    help="only print the table from figures saved with --json (a later file's rows "
                         "replace an earlier one's for the same tool and host count)")
    args = ap.parse_args(argv)
    if args.table:
        print(table_from_json([Path(p) for p in args.table]))
        return 0

    hosts = [int(x) for x in (args.hosts or ("1,5" if args.quick else "1,5,20,50,100,200")).split(",") if x.strip()]
    wanted = [t.strip() for t in (args.tools or ("provision" if args.quick else "provision,provision-persist,ansible,pyinfra"))
              .split(",") if t.strip()]
    tools: list[str] = []
    for t in wanted:
        expanded = {"ansible": ["ansible", "ansible-pipelining"], "ansible-defaults": ["ansible"]}.get(t, [t])
        for e in expanded:
            if e not in TOOLS:
                ap.error("unknown tool %r (choose from provision, provision-jump, ansible, ansible-defaults, "
                         "ansible-pipelining, provision-persist, pyinfra)" % e)
            if e not in tools:
                tools.append(e)
    if args.via_jump and "provision-jump" not in tools:
        tools.insert(tools.index("provision") + 1 if "provision" in tools else 0, "provision-jump")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    reason = fleetmod.check_requirements()
    if reason:
        log("cannot start test hosts: " + reason)
        return 2
    fleetmod.reap_stale(log=log)
    fleetmod.ensure_image(log=log)
    versions = {"provision": provision_version()}
    versions["provision-jump"] = versions["provision-persist"] = versions["provision"]
    precompile()
    if any(not t.startswith("provision") for t in tools):
        versions.update(ensure_venv(log))
    head = header(versions)
    log(head)
    if not args.no_warm_cache:
        warm_apt_cache(log)

    rows: list[Row] = []
    for n in hosts:
        for tool in tools:
            if tool.startswith("ansible") and n > args.ansible_max_hosts:
                continue
            rows.append(bench_one(tool, n, versions[tool], args.noop_runs, args.timeout, log))
            if args.json:
                Path(args.json).write_text(json.dumps(
                    {"header": head, "rows": [asdict(r) for r in rows]}, indent=1))
    print()
    print(report(head, rows, os.cpu_count() or 1))
    return 0 if not any(r.error for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
