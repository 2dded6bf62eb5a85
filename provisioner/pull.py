"""`provision pull`: a host applies a playbook from a git repository to itself (ansible-pull's model).

A timer on each workstation runs it; a box that was off converges when it boots. It promises: one
run at a time per state directory (an fcntl lock), the playbook applied only when the repository's
commit differs from the last successful run (or with --always), the result as JSON in a state file
and one line in the journal, and the exit codes of `provision apply` plus the two below.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.errors import Position, UserError

DEFAULT_STATE_DIR = Path("/var/lib/provision/pull")
STATE_FILE = "state.json"
LOCK_FILE = "pull.lock"
EXIT_LOCKED = 4   # another pull held the lock for longer than --lock-timeout
EXIT_GIT = 5      # the repository could not be cloned, fetched or checked out
RESULT_UNCHANGED = "unchanged"


class LockBusy(Exception):
    """The lock was still held when --lock-timeout ran out; the message names the holder."""


@dataclass
class PullOptions:
    """What `provision pull` was asked; see README (Hosts that pull) for each option."""

    url: str
    playbook: str | None = None
    directory: Path | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    checkout: str | None = None
    always: bool = False
    inventory: str | None = None
    extra_vars: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    check: bool = False
    private_key: Path | None = None
    accept_host_key: bool = False
    lock_timeout: float = 300.0
    verbose: int = 0


def work_dir(opts: PullOptions) -> Path:
    """--directory, else <state dir>/<repository name>: ansible-pull's checkout dir, per repository."""
    if opts.directory is not None:
        return opts.directory
    name = opts.url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name[:-4] if name.endswith(".git") else name
    return opts.state_dir / (name or "repo")


def pull(opts: PullOptions) -> int:
    """Lock, sync the repository, apply when it changed, record the result. Returns the exit code."""
    opts.state_dir = opts.state_dir.absolute()  # the run changes into the work dir (ansible-pull does)
    if opts.directory is not None:
        opts.directory = opts.directory.absolute()
    opts.state_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        with hold_lock(opts.state_dir / LOCK_FILE, opts.lock_timeout) as waited:
            if waited >= 0.5:
                print(f"provision pull: waited {waited:.1f} s for the previous run to finish", file=sys.stderr)
            return _pull_locked(opts, t0)
    except LockBusy as exc:
        line = f"{public_url(opts.url)}: not run: {exc}"
        print(f"provision pull: {line}", file=sys.stderr)
        journal(line, error=True)
        return EXIT_LOCKED


def _pull_locked(opts: PullOptions, t0: float) -> int:
    state_path = opts.state_dir / STATE_FILE
    previous = read_state(state_path)
    started = _now()
    directory = work_dir(opts)
    record: dict[str, Any] = {
        "host": socket.gethostname(), "url": public_url(opts.url), "checkout": opts.checkout,
        "directory": str(directory), "started": started, "check": opts.check, "provision_version": __version__,
        "last_success": previous.get("last_success"),
    }
    try:
        commit = sync_repository(opts.url, directory, opts.checkout, git_env(opts))
        record["commit"] = commit
        playbook = choose_playbook(directory, opts.playbook)
        os.chdir(directory)  # relative paths of the run (-i, -e @file, the playbook's own) are the repository's
    except subprocess.CalledProcessError as exc:
        why = (exc.stderr or "").replace(opts.url, record["url"]).strip().splitlines()
        record.update(result="git-failed", exit_code=EXIT_GIT, commit=previous.get("commit"),
                      message=f"{shlex.join(exc.cmd[3:5])}: {why[-1] if why else 'exit %d' % exc.returncode}")
        return _finish(record, state_path, t0)
    except UserError as exc:  # no playbook to apply: bad input, as apply's exit 2
        record.update(result="error", exit_code=2, message=str(exc))
        return _finish(record, state_path, t0)
    record.update(commit=commit, playbook=str(playbook.relative_to(directory)))
    last = record["last_success"] or {}
    same = (last.get("commit"), last.get("url"), last.get("playbook")) == (commit, record["url"], record["playbook"])
    if same and not opts.always:
        record.update(result=RESULT_UNCHANGED, exit_code=0,
                      message=f"commit {commit[:12]} already applied at {last.get('time')}: nothing to do")
        print(f"provision pull: {record['message']} (--always to apply anyway)")
        return _finish(record, state_path, t0)
    rc, counts = apply_playbook(opts, directory, playbook)
    record.update(exit_code=rc, counts=counts, result=_result(rc, counts))
    if rc == 0 and not opts.check:
        record["last_success"] = {"commit": commit, "url": record["url"], "playbook": record["playbook"],
                                  "time": _now()}
    return _finish(record, state_path, t0)


def _result(rc: int, counts: dict[str, int]) -> str:
    if rc == 130:
        return "interrupted"
    if rc == 2:
        return "error"  # bad input: the playbook, the inventory or -e did not load
    if rc != 0:
        return "failed"
    return "changed" if counts.get("changed") else "ok"


def _finish(record: dict[str, Any], state_path: Path, t0: float) -> int:
    record["finished"] = _now()
    record["duration_s"] = round(time.monotonic() - t0, 3)
    counts = record.get("counts") or {}
    line = (f"{record['url']} {str(record.get('commit') or '-')[:12]} {record['result']}"
            + "".join(f" {k}={counts[k]}" for k in ("ok", "changed", "failed", "unreachable") if k in counts)
            + f" rc={record['exit_code']} in {record['duration_s']:.1f}s")
    if record.get("message") and record["result"] != RESULT_UNCHANGED:
        line += f": {record['message']}"
    record["logged_to"] = journal(line, error=record["exit_code"] != 0)
    write_state(state_path, record)
    if record["result"] in ("git-failed", "error"):
        print(f"provision pull: {record['message']}", file=sys.stderr)
    return int(record["exit_code"])


# -- the lock ------------------------------------------------------------------------------------
@contextlib.contextmanager
def hold_lock(path: Path, timeout: float) -> Iterator[float]:
    """An exclusive fcntl lock on `path`, waited for up to `timeout` seconds; yields the wait.

    fcntl (not flock) so that it also holds on NFS; the kernel drops it when the process dies,
    so a killed run never leaves the next one locked out. The holder's pid is written in the file
    for the message of the one that gives up."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    t0 = time.monotonic()
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() - t0 >= timeout:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    raise LockBusy(f"another pull holds {path} ({holder}); gave up after "
                                   f"--lock-timeout {timeout:g} s") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {_now()}\n".encode(), 0)
        try:
            yield time.monotonic() - t0
        finally:
            os.ftruncate(fd, 0)  # an empty lock file: nobody holds it
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# -- the repository -------------------------------------------------------------------------------
def git_env(opts: PullOptions) -> dict[str, str]:
    """Never a prompt (a timer has no terminal); the deploy key alone when one is given."""
    ssh = ["ssh", "-o", "BatchMode=yes",
           "-o", "StrictHostKeyChecking=" + ("accept-new" if opts.accept_host_key else "yes")]
    if opts.private_key is not None:
        ssh += ["-i", str(opts.private_key), "-o", "IdentitiesOnly=yes"]
    return {**os.environ, "GIT_SSH_COMMAND": shlex.join(ssh), "GIT_TERMINAL_PROMPT": "0"}


def sync_repository(url: str, directory: Path, ref: str | None, env: dict[str, str]) -> str:
    """Clone or update `directory` to `ref` (a branch, tag or commit; default: the remote's HEAD),
    discarding local edits to tracked files. Returns the commit checked out."""
    if shutil.which("git") is None:
        raise UserError("git is not installed on this host (provision pull needs it)")

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(directory), *args], env=env, check=True, text=True,
                              capture_output=True, timeout=600)
        return done.stdout.strip()

    if not (directory / ".git").is_dir():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        git("init", "--quiet")
        git("remote", "add", "origin", url)
    else:
        git("remote", "set-url", "origin", url)
    git("fetch", "--quiet", "--prune", "origin", ref or "HEAD")
    git("checkout", "--quiet", "--force", "--detach", "FETCH_HEAD")
    return git("rev-parse", "HEAD")


def choose_playbook(directory: Path, name: str | None) -> Path:
    """The given playbook, else ansible-pull's choice: <fqdn>.yml, <hostname>.yml, local.yml."""
    if name is not None:
        path = directory / name
        if not path.is_file():
            raise UserError(f"playbook {name!r} not found in the repository", Position(str(directory)))
        return path
    fqdn, short = socket.getfqdn(), socket.gethostname()
    candidates = [f"{fqdn}.yml", f"{short.split('.')[0]}.yml", "local.yml"]
    for candidate in dict.fromkeys(candidates):
        if (directory / candidate).is_file():
            return directory / candidate
    raise UserError(f"no playbook given and none of {', '.join(dict.fromkeys(candidates))} "
                    "is in the repository", Position(str(directory)))


# -- the run --------------------------------------------------------------------------------------
def apply_playbook(opts: PullOptions, directory: Path, playbook: Path) -> tuple[int, dict[str, int]]:
    """`provision apply` in this process, with its report read back for the counts."""
    from provisioner.cli import main

    argv = ["apply", str(playbook)]
    if opts.inventory:
        inventory = Path(opts.inventory)
        # an inventory inside the repository may be named relative to it
        argv += ["-i", str(directory / inventory) if (directory / inventory).exists() else opts.inventory]
    for value in opts.extra_vars:
        argv += ["-e", value]
    for tag in opts.tags:
        argv += ["-t", tag]
    argv += ["--check"] if opts.check else []
    argv += ["-v"] * opts.verbose
    fd, report = tempfile.mkstemp(dir=opts.state_dir, prefix=".report-", suffix=".json")
    os.close(fd)
    try:
        rc = main(argv + ["--report", report])
        try:
            recap = json.loads(Path(report).read_text()).get("recap", {})
        except ValueError:  # no run happened (bad input): the report was never written
            recap = {}
    finally:
        os.unlink(report)
    counts: dict[str, int] = {}
    for stats in recap.values():
        for key, value in stats.items():
            if isinstance(value, int):
                counts[key] = counts.get(key, 0) + value
    return rc, counts


# -- state and journal ---------------------------------------------------------------------------
def read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, record: dict[str, Any]) -> None:
    """Atomically, readable by all (`provision status` reads it over SSH as any user); no secrets in it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def journal(line: str, error: bool = False, dev_log: str = "/dev/log") -> str:
    """One line, tagged provision-pull: through `logger` (the journal, or syslog), else straight to
    the syslog socket, else stderr. Returns where it went."""
    logger = shutil.which("logger")
    if logger is not None and os.path.exists(dev_log):
        done = subprocess.run([logger, "-u", dev_log, "-t", "provision-pull",
                               "-p", "user.err" if error else "user.info", "--", line], capture_output=True, timeout=10, check=False)
        if done.returncode == 0:
            return "logger"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(dev_log)
            priority = 8 + (3 if error else 6)  # facility user (1) * 8 + severity err (3) / info (6)
            sock.send(f"<{priority}>provision-pull[{os.getpid()}]: {line}".encode())
        return dev_log
    except OSError:
        print(f"provision-pull: {line}", file=sys.stderr)
        return "stderr"


def public_url(url: str) -> str:
    """The URL as the state file and the journal show it: an https token or password masked."""
    return re.sub(r"^([a-z+]+://[^/@:]*):[^/@]*@", r"\1:****@", url)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
