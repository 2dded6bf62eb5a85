"""apt: Debian packages present, absent or latest, as Ansible's apt module, without python-apt.

The plan reads dpkg's status of every name in ONE dpkg-query (a converged host costs one
command); apt-get -s runs only when something may change. All installs are ONE apt-get
transaction, all removals another, so a list of packages resolves dependencies once.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, Optional, Tuple

ALIASES = {"pkg": "name", "package": "name", "update-cache": "update_cache",
           "install-recommends": "install_recommends", "default-release": "default_release"}
ENV = {"DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}
SUCCESS_STAMP = "/var/lib/apt/periodic/update-success-stamp"
CACHE_PATHS = (SUCCESS_STAMP, "/var/lib/apt/lists", "/var/cache/apt/pkgcache.bin")
VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9\-]+)?$")
SUMMARY = re.compile(r"(\d+) upgraded, (\d+) newly installed, (\d+) to remove")


class Args(ModuleArgs):
    name: list[str] = []  # "foo", "foo=1.2", "foo=1.2*", "foo:i386"
    state: Literal["present", "absent", "latest", "fixed"] = "present"
    update_cache: bool | None = None
    cache_valid_time: int = 0                 # seconds; when set, update only an older cache
    install_recommends: bool | None = None  # None: apt's own default
    deb: str | None = None                 # path to a local .deb file
    purge: bool = False
    autoremove: bool = False
    force_apt_get: bool = False               # accepted for compatibility: apt-get is always used
    dpkg_options: str = "force-confdef,force-confold"
    default_release: str | None = None
    allow_downgrade: bool = False
    lock_timeout: int = 60


def split_spec(spec: str) -> tuple[str, str | None]:
    name, _, version = spec.strip().partition("=")
    if not VALID_NAME.match(name):
        raise ModuleError(f"invalid package name: {spec!r}")
    return name, version or None


def cache_time() -> int:
    """When the package lists were last refreshed (0: never), the newest of apt's own markers."""
    times = [os.stat(p).st_mtime for p in CACHE_PATHS if os.path.exists(p)]
    return int(max(times)) if times else 0


def query_status(host: Host, names: list[str]) -> dict[str, tuple[str, str]]:
    """{package: (state word, version)}; names dpkg has never heard of are simply missing (rc 1)."""
    if not names:
        return {}
    res = host.run(["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", "--", *names])
    if res.rc not in (0, 1):
        raise ModuleError(f"dpkg-query failed: {res.stderr.strip()}")
    status: dict[str, tuple[str, str]] = {}
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            word = parts[1].split()[-1] if parts[1].split() else ""
            if status.get(parts[0], ("",))[0] != "installed":   # multi-arch: any installed arch wins
                status[parts[0]] = (word, parts[2])
    return status


def provided_names(host: Host) -> set[str]:
    """Virtual package names provided by installed packages (e.g. awk by mawk)."""
    res = host.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Provides}\n"])
    names: set[str] = set()
    for line in res.stdout.splitlines():
        abbrev, _, provides = line.partition("\t")
        if abbrev.startswith("ii"):
            names.update(p.split()[0].split(":")[0] for p in provides.split(",") if p.strip())
    return names


def apt_options(args: Args) -> list[str]:
    opts = ["-y", "-q", "-o", f"DPkg::Lock::Timeout={args.lock_timeout}"]
    for opt in args.dpkg_options.split(","):
        if opt.strip():
            opts += ["-o", f"Dpkg::Options::=--{opt.strip()}"]
    if args.install_recommends is not None:
        opts.append("--install-recommends" if args.install_recommends else "--no-install-recommends")
    if args.default_release:
        opts += ["-t", args.default_release]
    if args.allow_downgrade:
        opts.append("--allow-downgrades")
    if args.state == "fixed":
        opts.append("--fix-broken")
    return opts


def apt_errors(text: str) -> str:
    missing = re.findall(r"Unable to locate package (\S+)", text)
    if missing:
        return "; ".join(f"No package matching '{m}' is available" for m in missing)
    return " ".join(line[3:] for line in text.splitlines() if line.startswith("E: ")) or text.strip()[-1000:]


def simulate(host: Host, args: Args, verb: str, specs: list[str]) -> tuple[list[str], str]:
    """Packages apt-get would install/upgrade (or remove, for autoremove), or an error sentence."""
    res = host.run(["apt-get", "-s", *apt_options(args), verb, *specs], env=ENV)
    if res.rc != 0:
        return [], apt_errors(res.stderr + res.stdout)
    acted = [line.split()[1] for line in res.stdout.splitlines() if line.startswith(("Inst ", "Remv "))]
    return acted, ""


def deb_identity(host: Host, path: str) -> tuple[str, str]:
    res = host.run(["dpkg-deb", "-f", path, "Package", "Version"])
    fields = dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)
    if res.rc != 0 or "Package" not in fields:
        raise ModuleError(f"cannot read .deb {path}: {res.stderr.strip()}")
    return fields["Package"], fields.get("Version", "")


def update_needed(args: Args) -> bool:
    if args.update_cache is False or (args.update_cache is None and not args.cache_valid_time):
        return False
    return not args.cache_valid_time or time.time() - cache_time() > args.cache_valid_time


def plan(args: Args, host: Host) -> Change:
    specs = [s.strip() for s in args.name if s.strip()]
    parsed = [split_spec(s) for s in specs]
    update = update_needed(args)
    deb = deb_identity(host, args.deb) if args.deb else None
    names = [n for n, _ in parsed] + ([deb[0]] if deb else [])
    status = query_status(host, [n.split(":")[0] for n in names])
    installed = {n: v for n, (w, v) in status.items() if w == "installed"}
    todo: dict[str, Any] = {"update": update, "install": [], "remove": [], "autoremove": False}
    data: dict[str, Any] = {"cache_updated": False, "cache_update_time": cache_time()}
    if args.state == "absent":
        todo["remove"] = [n for n in names if n.split(":")[0] in installed
                          or (args.purge and status.get(n.split(":")[0], ("",))[0] == "config-files")]
        if args.autoremove and not todo["remove"]:
            todo["autoremove"] = bool(simulate(host, args, "autoremove", [])[0])
    else:
        def satisfied(name: str, version: str | None) -> bool:
            have = installed.get(name.split(":")[0])
            return have is not None and (version is None or fnmatch.fnmatch(have, version))
        missing = [s for s, (n, v) in zip(specs, parsed) if not satisfied(n, v)]
        if missing:      # a virtual name is satisfied by any installed provider, as in Ansible
            provided = provided_names(host)
            missing = [s for s in missing
                       if split_spec(s)[1] or split_spec(s)[0].split(":")[0] not in provided]
        if deb and installed.get(deb[0]) != deb[1]:
            missing.append(os.path.abspath(args.deb or ""))
        upgradable = [s for s, (n, v) in zip(specs, parsed)
                      if args.state == "latest" and v is None and n.split(":")[0] in installed]
        if update and args.state == "latest":
            todo["install"] = missing + upgradable      # what is newest is known only after the update
        elif missing and not upgradable and args.state == "present" and not host.check_mode:
            # the install itself resolves and says what it did: a simulation first would run
            # apt's resolver twice (0.7-1.4 s of CPU each on a small host)
            todo["install"] = missing
        elif missing or upgradable or (args.state == "fixed" and not specs):
            acted, error = simulate(host, args, "install", missing + upgradable)
            if error and not update:
                raise ModuleError(error)
            todo["install"] = missing + [s for s in upgradable if s.split(":")[0] in acted]
            todo["fix"] = args.state == "fixed" and bool(acted)
        data["packages_to_install"] = list(todo["install"])
    data["packages_to_remove"] = list(todo["remove"])
    wanted = todo["install"] or todo["remove"] or todo["autoremove"] or todo.get("fix")
    if not (wanted or update):
        return Change(False, "", todo=todo, data=data)
    what = (["install " + " ".join(todo["install"])] if todo["install"] else []) + \
           (["remove " + " ".join(todo["remove"])] if todo["remove"] else []) + \
           (["autoremove"] if todo["autoremove"] else []) + (["update the cache"] if update else [])
    return Change(True, ("would " if host.check_mode else "") + ", ".join(what), todo=todo, data=data)


def parse_status(line: str) -> Optional[Tuple[str, float, str]]:
    """One line of apt-get's APT::Status-Fd as (phase, percent, text): 'download' for dlstatus,
    'install' for pmstatus; None for other kinds (pmconffile, pmerror, media-change) or noise.
    The text may hold colons; the package field (pmstatus) may too (name:arch)."""
    kind, _, rest = line.partition(":")
    phase = {"dlstatus": "download", "pmstatus": "install"}.get(kind)
    if phase is None:
        return None
    fields = rest.split(":")
    for i in range(1, len(fields)):  # the percent is the first number after the first field
        try:
            percent = float(fields[i])
        except ValueError:
            continue
        return phase, max(0.0, min(100.0, percent)), ":".join(fields[i + 1:]).strip()
    return None


class StatusReporter:
    """Turns Status-Fd lines into progress messages: on a new phase or whole percent, at most 4 a second."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.last: tuple[str, int] = ("", -1)
        self.sent_at = 0.0

    def __call__(self, line: str) -> None:
        parsed = parse_status(line)
        if parsed is None:
            return
        phase, percent, text = parsed
        key = (phase, int(percent))
        now = time.monotonic()
        if key == self.last or (key[0] == self.last[0] and now - self.sent_at < 0.25):
            return
        self.last, self.sent_at = key, now
        self.host.progress({"tool": "apt", "phase": phase, "percent": round(percent, 1), "text": text[:80]})


def run_apt(host: Host, argv: list[str]) -> dict[str, Any]:
    if host.reports_progress:   # someone watches: stream apt's own progress (no cost otherwise)
        res = host.run_reporting(argv, lambda fd: ["-o", f"APT::Status-Fd={fd}"], StatusReporter(host), env=ENV)
    else:
        res = host.run(argv, env=ENV)
    data: dict[str, Any] = {"rc": res.rc, "stdout": res.stdout, "stderr": res.stderr,
                            "stdout_lines": res.stdout.splitlines()}
    if res.rc != 0:
        error = apt_errors(res.stderr + res.stdout)
        if not error.startswith("No package matching"):
            error = f"'{' '.join(argv)}' failed: {error}"
        raise ModuleError(error, **data)
    summary = SUMMARY.search(res.stdout)
    data["changed"] = summary is None or any(int(n) for n in summary.groups())
    return data


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    out: dict[str, Any] = {"changed": False}
    if todo["update"]:
        argv = ["apt-get", "update", "-q", "-o", f"DPkg::Lock::Timeout={args.lock_timeout}"]
        if host.reports_progress:
            res = host.run_reporting(argv, lambda fd: ["-o", f"APT::Status-Fd={fd}"], StatusReporter(host), env=ENV)
        else:
            res = host.run(argv, env=ENV)
        if res.rc != 0:
            raise ModuleError(f"Failed to update apt cache: {apt_errors(res.stderr + res.stdout)}",
                              rc=res.rc, stdout=res.stdout, stderr=res.stderr)
        os.makedirs(os.path.dirname(SUCCESS_STAMP), exist_ok=True)
        with open(SUCCESS_STAMP, "a"):
            os.utime(SUCCESS_STAMP, None)    # so cache_valid_time also works when apt got 304s only
        out.update(cache_updated=True, cache_update_time=cache_time(), stdout=res.stdout, stderr=res.stderr)
        # Ansible counts a cache update as a change only when nothing else was asked.
        out["changed"] = not (args.name or args.deb or args.autoremove or args.state == "fixed")
    changed = False
    if todo["install"] or todo.get("fix"):
        result = run_apt(host, ["apt-get", *apt_options(args), "install", *todo["install"]])
        changed = result.pop("changed")
        out.update(result)
    if todo["remove"] or todo["autoremove"]:
        verb = "autoremove" if not todo["remove"] else "purge" if args.purge else "remove"
        extra = ["--auto-remove"] if args.autoremove and todo["remove"] else []
        result = run_apt(host, ["apt-get", *apt_options(args), verb, *extra, *todo["remove"]])
        changed = result.pop("changed") or changed
        out.update(result)
    out["changed"] = out["changed"] or changed
    return out
