"""The differential harness: one case playbook, run by ansible-playbook and by provision on fresh
fleet hosts, then compared: each task's status per host, the hosts' resulting files (content,
mode, owner; users/groups through /etc/passwd and /etc/group; crontabs), and the registered
values a case writes under /root/compat-out/.  tests/compat/README.md gives the case format."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.compat import tools
from tests.fleet import fleet as fleetmod

COMPAT_DIR = Path(__file__).resolve().parent
CASES_DIR = COMPAT_DIR / "cases"
REPO = COMPAT_DIR.parents[1]
HARNESS_VERSION = "3"  # bump when what is recorded changes (invalidates cached ansible results)

DEFAULT_PATHS = ("/etc", "/home", "/root", "/opt", "/srv", "/var/spool/cron")
DEFAULT_IGNORE = {
    "/root/.ansible": "ansible-playbook's remote temp dir",
    "/home/*/.ansible": "ansible-playbook's remote temp dir",
    "/root/.cache": "provision's bytecode cache on the host (~/.cache/provision)",
    "/home/*/.cache": "provision's bytecode cache on the host (~/.cache/provision)",
    "/etc/ld.so.cache": "rebuilt by package installs, byte layout varies",
}
# Not a task of the playbook's own (or not a result in Ansible's callbacks): left out on both sides.
UNRECORDED_ACTIONS = {"include_tasks", "import_tasks", "include_role", "import_role", "import_playbook",
                      "include", "meta"}
CFG_KEYS = {"paths", "hosts", "check_mode_run", "skip_second_run_zero", "ignore", "args", "description"}
TEXT_LIMIT = 64 * 1024
OUT_DIR = "/root/compat-out"


# ----------------------------------------------------------------------------- the case

@dataclass
class Case:
    name: str
    playbook: Path
    paths: tuple[str, ...] = DEFAULT_PATHS
    hosts: int = 1
    check_mode_run: bool = False
    skip_second_run_zero: str = ""  # the reason, when a second run may change things
    ignore: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()

    @property
    def files_dir(self) -> Path:
        return CASES_DIR / self.name


def list_cases() -> list[str]:
    return sorted(p.name[:-4] for p in CASES_DIR.glob("*.yml") if not p.name.endswith(".cfg.yml"))


def load_case(name: str) -> Case:
    case = Case(name, CASES_DIR / f"{name}.yml")
    cfg_path = CASES_DIR / f"{name}.cfg.yml"
    if not cfg_path.exists():
        return case
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    unknown = set(cfg) - CFG_KEYS
    if unknown:
        raise ValueError(f"{cfg_path}: unknown keys {sorted(unknown)} (known: {sorted(CFG_KEYS)})")
    if "paths" in cfg:
        case.paths = tuple(cfg["paths"])
    case.hosts = int(cfg.get("hosts", 1))
    case.check_mode_run = bool(cfg.get("check_mode_run", False))
    skip = cfg.get("skip_second_run_zero", False)
    if skip is True or (skip and not isinstance(skip, str)):
        raise ValueError(f"{cfg_path}: skip_second_run_zero takes the reason (a sentence), not {skip!r}")
    case.skip_second_run_zero = skip or ""
    ignore = cfg.get("ignore") or {}
    if not isinstance(ignore, dict) or not all(isinstance(v, str) and v for v in ignore.values()):
        raise ValueError(f"{cfg_path}: ignore is a mapping of path (glob) -> reason")
    case.ignore = dict(ignore)
    case.args = tuple(str(a) for a in cfg.get("args", ()))
    return case


def case_digest(case: Case) -> str:
    """What ansible's result depends on: the case's files, the pinned versions, the image, this harness."""
    h = hashlib.sha256()
    for part in (HARNESS_VERSION, tools.VERSION_KEY, fleetmod.IMAGE_VERSION, repr(asdict(case)[
            "paths"]), repr(case.args), repr(case.hosts), repr(case.check_mode_run)):
        h.update(part.encode() + b"\0")
    files = [case.playbook, CASES_DIR / f"{case.name}.cfg.yml", COMPAT_DIR / "callback" / "compat_record.py"]
    for d in (case.files_dir, CASES_DIR / "roles"):  # roles/ is shared by the cases (Ansible's roles path)
        if d.is_dir():
            files += sorted(p for p in d.rglob("*") if p.is_file())
    for p in files:
        if p.exists():
            h.update(str(p.relative_to(COMPAT_DIR)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:24]


# ----------------------------------------------------------------------------- what a run records

def _norm_name(name: str) -> str:
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        name = name.replace(prefix, "")
    return name


def task_line(rec: dict[str, Any]) -> str:
    line = f"{rec['status']:<8} {_norm_name(rec['task'])}"
    if rec.get("ignored"):
        line += "  (ignored)"
    if rec.get("handler"):
        line += "  [handler]"
    if rec.get("items") is not None:
        line += "  items=" + ",".join(rec["items"])
    return line


def _recorded(action: str, task: str) -> bool:
    return _norm_name(action) not in UNRECORDED_ACTIONS and task != "Gathering Facts"


def _item_status(r: Any) -> str:
    if not isinstance(r, dict):
        return "?"
    if r.get("skipped"):
        return "skipped"
    if r.get("failed"):
        return "failed"
    return "changed" if r.get("changed") else "ok"


def tasks_from_report(report: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in report.get("results", []):
        if not _recorded(r["action"], r["task"]):
            continue
        res = r.get("result") or {}
        items = res.get("results") if isinstance(res.get("results"), list) else None
        rec = {"task": r["task"], "status": r["status"], "ignored": r.get("ignored"),
               "handler": r.get("handler"), "items": [_item_status(i) for i in items] if items is not None else None}
        out.setdefault(r["host"], []).append(task_line(rec))
    return out


def tasks_from_callback(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if _recorded(rec["action"], rec["task"]):
            out.setdefault(rec["host"], []).append(task_line(rec))
    return out


def _ignored(path: str, patterns: dict[str, str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(2, len(parts) + 1)]
    return any(fnmatch.fnmatch(p, pat) for p in prefixes for pat in patterns)


def _crontab_text(text: str) -> str:
    # crontab(1) heads each file with its temp file name and the install time
    return "".join(ln for ln in text.splitlines(True)
                   if not (ln.startswith("# DO NOT EDIT") or ln.startswith("# (")))


def host_state(fl: fleetmod.Fleet, h: fleetmod.FleetHost, case: Case) -> dict[str, dict[str, Any]]:
    """{path: {kind, mode, uid, gid, digest[, text]}} of the configured paths, ignore list applied."""
    patterns = {**DEFAULT_IGNORE, **case.ignore}
    out: dict[str, dict[str, Any]] = {}
    for path, e in fl.snapshot(h, paths=case.paths).items():
        if _ignored(path, patterns):
            continue
        kind = ("file" if stat.S_ISREG(e.mode) else "link" if stat.S_ISLNK(e.mode)
                else "dir" if stat.S_ISDIR(e.mode) else "other")
        ent: dict[str, Any] = {"kind": kind, "mode": oct(e.mode & 0o7777), "uid": e.uid, "gid": e.gid,
                               "digest": e.digest}
        if kind == "file" and e.size <= TEXT_LIMIT:
            try:
                text = h.path(path).read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                text = None
            if text is not None and path.startswith("/var/spool/cron/"):
                text = _crontab_text(text)
                ent["digest"] = hashlib.sha256(text.encode()).hexdigest()
            ent["text"] = text
        out[path] = ent
    return out


def state_delta(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Only what the run changed: new or different entries, and removed ones as {'kind': 'absent'}."""
    delta: dict[str, Any] = {}
    for path, ent in after.items():
        if before.get(path) != ent:
            delta[path] = ent
    for path in before.keys() - after.keys():
        delta[path] = {"kind": "absent"}
    return delta


@dataclass
class Phase:
    """One run of one tool: its exit code, output tail, per-host task lines and state delta."""
    rc: int
    output: str
    tasks: dict[str, list[str]]
    state: dict[str, dict[str, Any]]
    seconds: float

    def changed(self) -> dict[str, int]:
        return {h: sum(1 for ln in lines if ln.startswith("changed")) for h, lines in self.tasks.items()}


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(["    " + ln for ln in text.splitlines() if ln.strip()][-n:])


# ----------------------------------------------------------------------------- running the tools

def _ansible_env(workdir: Path, record: Path) -> dict[str, str]:
    cp = Path(tempfile.mkdtemp(prefix="cc", dir="/tmp"))  # ssh control sockets: short path
    cfg = workdir / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        "interpreter_python = /usr/bin/python3\n"
        f"collections_path = {tools.collections_path()}\n"
        f"callback_plugins = {COMPAT_DIR / 'callback'}\n"
        "callbacks_enabled = compat_record\n"
        "retry_files_enabled = False\n"
        "host_key_checking = True\n"
        "forks = 10\n"
        "nocolor = True\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        "ssh_args = -o ControlMaster=auto -o ControlPersist=20s\n"
        f"control_path_dir = {cp}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON"))}
    env.update({"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOME": str(workdir / "ansible-home"),
                "COMPAT_RECORD_FILE": str(record), "ANSIBLE_NOCOLOR": "1"})
    return env


def controller_dir(workdir: Path) -> Path:
    """Where a case may write on the controller (lookup('password', ...)): `compat_controller_dir`,
    one per tool, kept across that tool's runs."""
    return workdir.parent / (workdir.name.rsplit("-", 1)[0] + "-controller")


def controller_state(workdir: Path) -> dict[str, dict[str, Any]]:
    base = controller_dir(workdir)
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(base.rglob("*")):
        st = p.lstat()
        rel = "$compat_controller_dir/" + str(p.relative_to(base))
        if stat.S_ISREG(st.st_mode):
            text = p.read_text(errors="replace")
            out[rel] = {"kind": "file", "mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid,
                        "digest": hashlib.sha256(p.read_bytes()).hexdigest(), "text": text}
        else:
            out[rel] = {"kind": "dir" if stat.S_ISDIR(st.st_mode) else "other", "mode": oct(st.st_mode & 0o7777),
                        "uid": st.st_uid, "gid": st.st_gid, "digest": None}
    return out


def _extra_vars(workdir: Path) -> list[str]:
    ctl = controller_dir(workdir)
    ctl.mkdir(mode=0o755, exist_ok=True)
    return ["-e", json.dumps({"compat_controller_dir": str(ctl)})]


def run_ansible(case: Case, fl: fleetmod.Fleet, workdir: Path, extra: tuple[str, ...]) -> Phase:
    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / "record.jsonl"
    record.unlink(missing_ok=True)
    argv = [str(tools.ansible_playbook()), "-i", str(fl.inventory_path), str(case.playbook), *_extra_vars(workdir),
            *case.args, *extra]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=CASES_DIR, env=_ansible_env(workdir, record), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600, check=False)
    return Phase(proc.returncode, proc.stdout, tasks_from_callback(record), {}, time.monotonic() - t0)


def run_provision(case: Case, fl: fleetmod.Fleet, workdir: Path, extra: tuple[str, ...]) -> Phase:
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "provisioner.cli", "apply", str(case.playbook), "-i", str(fl.inventory_path),
            "--report", str(report), *_extra_vars(workdir), *case.args, *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600, check=False)
    data = json.loads(report.read_text()) if report.exists() else {}
    return Phase(proc.returncode, proc.stdout, tasks_from_report(data), {}, time.monotonic() - t0)


def phases(case: Case) -> list[tuple[str, tuple[str, ...]]]:
    out: list[tuple[str, tuple[str, ...]]] = []
    if case.check_mode_run:
        out.append(("check run (--check --diff) on the fresh hosts", ("--check", "--diff")))
    out.append(("first run", ()))
    out.append(("second run", ()))
    return out


def run_tool(tool: str, case: Case, fl: fleetmod.Fleet, workdir: Path) -> list[Phase]:
    runner = run_ansible if tool == "ansible" else run_provision
    for h in fl.hosts:  # where cases write the registered values they compare
        h.path(OUT_DIR).mkdir(mode=0o700, exist_ok=True)
    baseline = {h.name: host_state(fl, h, case) for h in fl.hosts}
    out = []
    for i, (_title, extra) in enumerate(phases(case)):
        phase = runner(case, fl, workdir / f"{tool}-{i}", extra)
        phase.state = {h.name: state_delta(baseline[h.name], host_state(fl, h, case)) for h in fl.hosts}
        phase.state["(controller)"] = {p: e for p, e in controller_state(workdir / f"{tool}-{i}").items()
                                       if not _ignored(p, case.ignore)}
        out.append(phase)
    return out


def cached_ansible(case: Case) -> list[Phase] | None:
    if os.environ.get("PROVISION_COMPAT_CACHE", "1") == "0":
        return None
    path = tools.BASE / "results" / f"{case.name}-{case_digest(case)}.json"
    if not path.exists():
        return None
    return [Phase(**p) for p in json.loads(path.read_text())]


def store_ansible(case: Case, runs: list[Phase]) -> None:
    path = tools.BASE / "results" / f"{case.name}-{case_digest(case)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp%d" % os.getpid())
    tmp.write_text(json.dumps([asdict(p) for p in runs]))
    os.replace(tmp, path)


def run_case(case: Case, make_fleet: Any, workdir: Path) -> tuple[list[Phase], list[Phase]]:
    """(ansible's phases, provision's phases), the two tools in parallel on fleets of their own.
    Ansible's result is cached under /var/tmp/provision-compat/results by the case's digest
    (PROVISION_COMPAT_CACHE=0 to run it anyway)."""
    ansible_runs = cached_ansible(case)
    fleets = {"provision": make_fleet(case.hosts, name=f"cp-{case.name}"[:30])}
    if ansible_runs is None:
        fleets["ansible"] = make_fleet(case.hosts, name=f"ca-{case.name}"[:30])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {tool: pool.submit(run_tool, tool, case, fl, workdir) for tool, fl in fleets.items()}
        results = {tool: f.result() for tool, f in futures.items()}
    if ansible_runs is None:
        ansible_runs = results["ansible"]
        if all(p.rc in (0, 2) for p in ansible_runs):  # 2: a host failed; anything else: not a reference
            store_ansible(case, ansible_runs)
    for fl in fleets.values():
        fl.close()
    return ansible_runs, results["provision"]


# ----------------------------------------------------------------------------- comparing

def _udiff(a: list[str], b: list[str], indent: str = "    ") -> list[str]:
    return [indent + ln.rstrip("\n") for ln in
            difflib.unified_diff(a, b, "ansible-playbook", "provision", lineterm="", n=2)]


def _describe(ent: dict[str, Any]) -> str:
    if ent["kind"] == "absent":
        return "absent"
    s = f"{ent['kind']} mode {ent['mode']} owner {ent['uid']}:{ent['gid']}"
    if ent["kind"] == "link":
        s += f" -> {ent['digest']}"
    return s


def compare_state(a: dict[str, Any], p: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for path in sorted(a.keys() | p.keys()):
        ea, ep = a.get(path), p.get(path)
        if ea == ep:
            continue
        if ea is None or ep is None:
            who, ent = ("ansible-playbook", ea) if ep is None else ("provision", ep)
            lines.append(f"  {path}: changed only by {who}: {_describe(ent)}")  # type: ignore[arg-type]
            if ent and ent.get("text") is not None:  # type: ignore[union-attr]
                lines += ["    | " + ln for ln in ent["text"].splitlines()[:30]]  # type: ignore[index]
            continue
        meta_a, meta_p = _describe(ea), _describe(ep)
        if meta_a != meta_p:
            lines.append(f"  {path}: ansible-playbook {meta_a}; provision {meta_p}")
        if ea.get("digest") != ep.get("digest"):
            ta, tp = ea.get("text"), ep.get("text")
            if ta is not None and tp is not None:
                lines.append(f"  {path}: content differs")
                lines += _udiff(ta.splitlines(), tp.splitlines())
            elif ea["kind"] == ep["kind"] == "file":
                lines.append(f"  {path}: binary content differs (sha256 {ea['digest'][:12]} vs {ep['digest'][:12]})")
    return lines


def compare(case: Case, ansible: list[Phase], provision: list[Phase]) -> str:
    """A readable report of every difference; '' when the tools agree."""
    out: list[str] = []
    shown: set[int] = set()  # the phases whose output tails go with the report
    for i, ((title, _), pa) in enumerate(zip(phases(case), ansible)):
        if pa.rc not in (0, 2) or not pa.tasks:
            shown.add(i)
            out.append(f"ansible-playbook could not run the case ({title}: rc {pa.rc}, "
                       f"{sum(map(len, pa.tasks.values()))} task results): fix the case")
    for i, ((title, _), pa, pp) in enumerate(zip(phases(case), ansible, provision)):
        section: list[str] = []
        if (pa.rc == 0) != (pp.rc == 0):
            section.append(f"  exit code: ansible-playbook {pa.rc}, provision {pp.rc}")
        for host in sorted(pa.tasks.keys() | pp.tasks.keys()):
            la, lp = pa.tasks.get(host, []), pp.tasks.get(host, [])
            if la != lp:
                section.append(f"  task results on {host} (status, task name):")
                section += _udiff(la, lp)
        for host in sorted(pa.state.keys() | pp.state.keys()):
            diff = compare_state(*({p: e for p, e in ph.state.get(host, {}).items() if not _ignored(p, case.ignore)}
                                   for ph in (pa, pp)))
            if diff:
                section.append(f"  files on {host} (what the run changed, ansible-playbook vs provision):")
                section += diff
        if section:
            shown.add(i)
            out.append(f"{title}:")
            out += section
    if not case.skip_second_run_zero:
        for tool, runs in (("ansible-playbook", ansible), ("provision", provision)):
            changed = {h: n for h, n in runs[-1].changed().items() if n}
            if changed:
                shown.add(len(ansible) - 1)
                lines = [ln for host_lines in runs[-1].tasks.values() for ln in host_lines if ln.startswith("changed")]
                out.append(f"second run of {tool} changed things (must be changed=0): {changed}")
                out += ["    " + ln for ln in lines]
    if not out:
        return ""
    head = [f"compat case {case.name!r}: provision differs from {tools.ANSIBLE_CORE}", ""]
    tails = []
    for i, (title_extra, pa, pp) in enumerate(zip(phases(case), ansible, provision)):
        if i not in shown:
            continue
        tails += [f"--- ansible-playbook, {title_extra[0]} (rc {pa.rc}), last lines:", _tail(pa.output),
                  f"--- provision, {title_extra[0]} (rc {pp.rc}), last lines:", _tail(pp.output)]
    return "\n".join(head + out + ["", *tails])


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
