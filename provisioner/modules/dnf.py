"""dnf (also `yum`): RPM packages present, absent or latest, as Ansible's dnf module, without its API.

The plan asks rpm about every name in ONE `rpm -q` (a converged host costs one command; capability
lookups and `dnf check-update` run only when needed); installs are ONE `dnf install` transaction.
"""

from __future__ import annotations

import re

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

OTHER_NAMES = ("yum",)
ALIASES = {"pkg": "name", "expire-cache": "update_cache"}
QUERY_FORMAT = "%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n"
VALID_SPEC = re.compile(r"^[A-Za-z0-9_.+:/()*~\-]+( *[<>=]{1,2} *[A-Za-z0-9_.+:~\-]+)?$")


class Args(ModuleArgs):
    name: list[str] = []  # "foo", "foo-1.2-3.el9", "foo >= 1.2", "python3dist(x)"
    state: Literal["present", "installed", "latest", "absent", "removed"] = "present"
    update_cache: bool = False
    disable_gpg_check: bool = False
    enablerepo: list[str] = []
    disablerepo: list[str] = []
    exclude: list[str] = []
    autoremove: bool = False


def check_spec(spec: str) -> str:
    spec = spec.strip()
    if spec.startswith(("-", "@")) or not VALID_SPEC.match(spec):
        raise ModuleError(f"invalid or unsupported package spec (groups are not supported): {spec!r}")
    return spec


def tool(host: Host) -> str:
    return "yum" if host.facts.get("pkg_mgr") == "yum" else "dnf"


def repo_options(args: Args) -> list[str]:
    opts = [f"--enablerepo={r}" for r in args.enablerepo] + [f"--disablerepo={r}" for r in args.disablerepo]
    opts += [f"--exclude={e}" for e in args.exclude]
    return opts + (["--nogpgcheck"] if args.disable_gpg_check else [])


def not_installed(host: Host, specs: list[str], provides: bool = False) -> set[str]:
    """The specs rpm reports missing; `provides` asks by capability (virtual names, 'foo >= 1.2')."""
    if not specs:
        return set()
    by = ["--whatprovides"] if provides else []
    res = host.run(["rpm", "-q", *by, "--qf", QUERY_FORMAT, "--", *specs])
    pattern = r"^no package provides (.+)$" if provides else r"^package (.+) is not installed$"
    missing = {m.group(1).strip() for m in re.finditer(pattern, res.stdout + "\n" + res.stderr, re.MULTILINE)}
    if res.rc != 0 and not missing:
        raise ModuleError(f"rpm -q failed (rc={res.rc}): {(res.stderr or res.stdout).strip()}")
    return missing


def upgradable(host: Host, args: Args, names: list[str]) -> list[str]:
    """Installed names with a newer version in the enabled repositories (`check-update` exits 100)."""
    res = host.run([tool(host), "check-update", "-q", *repo_options(args), *names])
    if res.rc not in (0, 100):
        raise ModuleError(f"{tool(host)} check-update failed: {(res.stderr or res.stdout).strip()}")
    found = {line.split()[0].rsplit(".", 1)[0] for line in res.stdout.splitlines()
             if line.strip() and not line.startswith((" ", "Obsoleting", "Security"))}
    return [n for n in names if n in found]


def plan(args: Args, host: Host) -> Change:
    specs = [check_spec(s) for s in args.name if s.strip()]
    by_version = [s for s in specs if re.search(r"[<>=]", s)]
    todo: dict[str, Any] = {"install": [], "upgrade": [], "remove": [], "makecache": False,
                            "autoremove": False}
    missing = not_installed(host, [s for s in specs if s not in by_version]) | set(by_version)
    if args.state in ("absent", "removed"):
        todo["remove"] = [s for s in specs if s not in missing]
        todo["autoremove"] = args.autoremove and not specs
    else:
        # names rpm does not know as packages may be capabilities an installed package provides
        missing = not_installed(host, [s for s in specs if s in missing], provides=True)
        todo["install"] = [s for s in specs if s in missing]
        if args.state == "latest":
            todo["upgrade"] = upgradable(host, args, [s for s in specs if s not in missing])
        todo["makecache"] = args.update_cache and not specs
    data = {"packages_to_install": todo["install"], "packages_to_upgrade": todo["upgrade"],
            "packages_to_remove": todo["remove"]}
    what = [f"{verb} {' '.join(todo[key])}" for verb, key in
            (("install", "install"), ("upgrade", "upgrade"), ("remove", "remove")) if todo[key]]
    what += [k for k in ("makecache", "autoremove") if todo[k]]
    if not what:
        return Change(False, "Nothing to do", todo=todo, data=data)
    return Change(True, ("would " if host.check_mode else "") + ", ".join(what), todo=todo, data=data)


def failures(text: str) -> list[str]:
    unknown = re.findall(r"No match for argument: (\S+)", text) or \
        re.findall(r"No package (\S+) available", text)
    return [f"No package {n} available." for n in unknown]


def transaction(stdout: str) -> list[str]:
    """Ansible's `results`: 'Installed: tmux-3.2-2.x86_64', from dnf's indented summary sections."""
    results: list[str] = []
    section = None
    for line in stdout.splitlines():
        header = re.match(r"^(Installed|Upgraded|Removed|Erased|Updated|Downgraded):\s*$", line)
        if header:
            section = header.group(1)
        elif section and line.startswith(" ") and line.strip():
            results.extend(f"{section}: {pkg}" for pkg in line.split())
        else:
            section = None
    return results


def run_dnf(host: Host, argv: list[str]) -> dict[str, Any]:
    res = host.run(argv)
    results = transaction(res.stdout)
    data: dict[str, Any] = {"rc": res.rc, "stdout": res.stdout, "stderr": res.stderr, "results": results}
    if res.rc != 0:
        found = failures(res.stdout + res.stderr)
        reason = (res.stderr or res.stdout).strip()
        msg = "; ".join(found) if found else f"'{' '.join(argv)}' failed: {reason}"
        raise ModuleError(msg, failures=found, **data)
    data["changed"] = "Nothing to do" not in res.stdout
    return data


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    refresh = ["--refresh"] if args.update_cache and tool(host) == "dnf" else []
    if args.update_cache and tool(host) == "yum" and (todo["install"] or todo["upgrade"]):
        host.run(["yum", "makecache", "-q"], check=True)
    out: dict[str, Any] = {"changed": False}
    steps = [("install", todo["install"]), ("upgrade" if tool(host) == "dnf" else "update", todo["upgrade"]),
             ("remove", todo["remove"])]
    for verb, specs in steps:
        if specs:
            result = run_dnf(host, [tool(host), verb, "-y", *refresh, *repo_options(args), *specs])
            out["changed"] = result.pop("changed") or out["changed"]
            out.setdefault("results", []).extend(result.pop("results"))
            out.update(result)
    if todo["autoremove"]:
        result = run_dnf(host, [tool(host), "autoremove", "-y", *repo_options(args)])
        out["changed"] = result.pop("changed")
        out.update(result)
    if todo["makecache"]:
        host.run([tool(host), "makecache", "-q", *repo_options(args)], check=True)
    return out
