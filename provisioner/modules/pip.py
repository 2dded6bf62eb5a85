"""pip: Python packages in an interpreter or a virtualenv, as Ansible's pip module.

The plan reads every installed version in ONE interpreter call and checks the requested
specifiers itself (PEP 440's common operators on dotted versions, names per PEP 503); all
missing packages go to ONE `pip install`. What cannot be judged locally (URLs, markers, nested
requirement files) is handed to pip, and changed is then pip's before/after difference.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

LIST_SCRIPT = ("import json, importlib.metadata as m; print(json.dumps("
               "{d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))")
# name [extras] specifiers; anything else (URLs, paths, markers) is left to pip
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*"
                         r"((?:[<>=!~]=?=?\s*[^,;\s]+\s*,?\s*)*)$")
VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)[-_.]?(dev|a|alpha|b|beta|c|rc|pre|post)?[-_.]?(\d*)")
PHASE = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "c": 3, "rc": 3, "pre": 3, "": 4, "post": 5}
CLAUSE = re.compile(r"(===|==|!=|~=|>=|<=|>|<)\s*([^,\s]+)")


class Args(ModuleArgs):
    name: list[str] = []    # "six", "six==1.16.0", "requests[socks]>=2,<3"
    version: str | None = None
    requirements: str | None = None
    virtualenv: str | None = None
    virtualenv_site_packages: bool = False
    virtualenv_command: str | None = None            # default: <virtualenv_python or python3> -m venv
    virtualenv_python: str | None = None
    state: Literal["present", "absent", "latest", "forcereinstall"] = "present"
    extra_args: str | None = None
    editable: bool = False
    chdir: str | None = None
    executable: str | None = None                    # a pip program; default: python -m pip
    break_system_packages: bool = False


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(version: str) -> tuple[tuple[int, ...], int, int]:
    """Release numbers (trailing zeros dropped), then dev < a < b < rc < final < post."""
    m = VERSION.match(version.strip().lower())
    if not m:
        return ((), 4, 0)
    release = tuple(int(x) for x in m.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    return release, PHASE[m.group(2) or ""], int(m.group(3) or 0)


def satisfies(version: str, spec: str) -> bool:
    have = version_key(version)
    for op, target in CLAUSE.findall(spec):
        if op == "===":
            ok = version == target
        elif op in ("==", "!=") and target.endswith(".*"):
            prefix = version_key(target[:-2])[0]
            ok = (version_key(version)[0] + (0,) * len(prefix))[:len(prefix)] == prefix
            ok = ok if op == "==" else not ok
        elif op == "~=":
            parts = target.split(".")
            ok = have >= version_key(target) and satisfies(version, "==" + ".".join(parts[:-1]) + ".*")
        else:
            want = version_key(target)
            ok = {"==": have == want, "!=": have != want, ">=": have >= want, "<=": have <= want,
                  ">": have > want, "<": have < want}[op]
        if not ok:
            return False
    return True


def requested(args: Args) -> list[str]:
    """The name list, with specifiers Ansible's comma splitting tore apart joined again."""
    names: list[str] = []
    for item in (n.strip() for n in args.name if n.strip()):
        if names and CLAUSE.match(item):
            names[-1] += "," + item
        else:
            names.append(item)
    if args.version:
        if len(names) != 1:
            raise ModuleError("version can only be used with exactly one name")
        names[0] += f"=={args.version}"
    return names


def requirement_lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise ModuleError(f"requirements file not found: {path}")
    with open(path) as f:
        text = re.sub(r"\\\n", "", f.read())
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")
            and not line.startswith(("--index-url", "--extra-index-url", "-i ", "--find-links", "-f "))]


def interpreter(args: Args, base: str) -> tuple[list[str], str | None]:
    """(pip argv prefix, venv directory to create or None)."""
    if args.executable:
        return [args.executable], None
    if args.virtualenv:
        venv = os.path.join(base, args.virtualenv)
        python = os.path.join(venv, "bin", "python")
        return [python, "-m", "pip"], None if os.path.exists(python) else venv
    return [sys.executable, "-m", "pip"], None


def installed_versions(host: Host, pip: list[str], cwd: str | None) -> dict[str, str]:
    res = host.run([pip[0], "-c", LIST_SCRIPT], cwd=cwd) if pip[1:2] == ["-m"] else None
    if res is None or res.rc != 0:             # an explicit pip, or python < 3.8
        res = host.run([*pip, "list", "--format=json", "--disable-pip-version-check"], cwd=cwd)
        if res.rc != 0:
            raise ModuleError(f"cannot list installed packages: {res.stderr.strip()}")
        return {canonical(d["name"]): d["version"] for d in json.loads(res.stdout)}
    return {canonical(n): v for n, v in json.loads(res.stdout).items()}


def needs_pip(args: Args, spec: str, have: dict[str, str]) -> bool:
    """Whether pip must act on this requirement; anything not a plain name+specifiers goes to pip."""
    m = REQUIREMENT.match(spec)
    if args.state == "absent":
        return not m or canonical(m.group(1)) in have
    return args.state != "present" or not m or canonical(m.group(1)) not in have \
        or not satisfies(have[canonical(m.group(1))], m.group(3))


def plan(args: Args, host: Host) -> Change:
    if not args.name and not args.requirements:
        raise ModuleError("one of the following is required: name, requirements")
    if args.executable and args.virtualenv:
        raise ModuleError("parameters are mutually exclusive: executable|virtualenv")
    base = args.chdir or os.getcwd()
    pip, create = interpreter(args, base)
    have = {} if create else installed_versions(host, pip, args.chdir)
    verb = "uninstall" if args.state == "absent" else "install"
    specs = [s for s in requested(args) if needs_pip(args, s, have)]
    if args.state == "absent":
        matches = [REQUIREMENT.match(s) for s in specs]
        if not all(matches):
            raise ModuleError("uninstall needs package names, not URLs or paths")
        specs = [m.group(1) for m in matches if m]
    reqfile = os.path.join(base, args.requirements) if args.requirements else None
    if reqfile and not any(needs_pip(args, line, have) for line in requirement_lines(reqfile)):
        reqfile = None
    if args.state == "latest" and (specs or reqfile) and not create:
        specs, reqfile = pending_upgrades(host, args, pip, specs, reqfile)
    todo = {"pip": pip, "create": create, "before": have, "verb": verb, "specs": specs, "reqfile": reqfile}
    data = {"name": args.name, "version": args.version, "requirements": args.requirements,
            "virtualenv": args.virtualenv, "state": args.state, f"packages_to_{verb}": specs}
    if not specs and not reqfile and not create:
        return Change(False, "", todo=todo, data=data)
    what = ([f"create virtualenv {create}"] if create else []) + \
        [f"{verb} {' '.join(specs + ([f'-r {reqfile}'] if reqfile else []))}"]
    return Change(True, ("would " if host.check_mode else "") + ", ".join(what), todo=todo, data=data)


def pending_upgrades(host: Host, args: Args, pip: list[str], specs: list[str],
                     reqfile: str | None) -> tuple[list[str], str | None]:
    """What pip's --upgrade dry-run report would change; everything asked when pip cannot say."""
    res = host.run([*pip, "install", "--upgrade", "--dry-run", "--quiet", "--report", "-", *specs,
                    *(["-r", reqfile] if reqfile else [])], cwd=args.chdir)
    try:
        changing = {canonical(i["metadata"]["name"]) for i in json.loads(res.stdout)["install"]}
    except (ValueError, KeyError):
        return specs, reqfile
    named = [REQUIREMENT.match(s) for s in specs]
    return [s for s, m in zip(specs, named) if not m or canonical(m.group(1)) in changing], \
        reqfile if changing else None


def pip_argv(args: Args, todo: dict[str, Any]) -> list[str]:
    argv = [*todo["pip"], todo["verb"], "--disable-pip-version-check"]
    if todo["verb"] == "uninstall":
        argv.append("-y")
    else:
        argv += {"latest": ["-U"], "forcereinstall": ["-U", "--force-reinstall"]}.get(args.state, [])
    argv += ["--break-system-packages"] if args.break_system_packages else []
    argv += shlex.split(args.extra_args or "")
    for spec in todo["specs"]:
        argv += ["-e", spec] if args.editable else [spec]
    return argv + (["-r", todo["reqfile"]] if todo["reqfile"] else [])


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    out: dict[str, Any] = {}
    if todo["create"]:
        command = shlex.split(args.virtualenv_command or "") or \
            [args.virtualenv_python or sys.executable, "-m", "venv"]
        if args.virtualenv_python and args.virtualenv_command:
            if "venv" in command or "pyvenv" in command[0]:
                raise ModuleError("virtualenv_python cannot be used with the venv module; "
                                  "put the interpreter in virtualenv_command")
            command += ["-p", args.virtualenv_python]
        command += ["--system-site-packages"] if args.virtualenv_site_packages else []
        res = host.run([*command, todo["create"]], cwd=args.chdir)
        if res.rc != 0:
            raise ModuleError(f"creating the virtualenv failed: {(res.stderr or res.stdout).strip()}",
                              rc=res.rc, stdout=res.stdout, stderr=res.stderr)
        out["stdout_virtualenv"] = res.stdout
    if not todo["specs"] and not todo["reqfile"]:
        return {**out, "changed": True}
    argv = pip_argv(args, todo)
    res = host.run(argv, cwd=args.chdir)
    out.update(cmd=" ".join(shlex.quote(a) for a in argv), rc=res.rc, stdout=res.stdout, stderr=res.stderr)
    if res.rc != 0:
        raise ModuleError(f"pip {todo['verb']} failed: {(res.stderr or res.stdout).strip()[-2000:]}", **out)
    after = installed_versions(host, todo["pip"], args.chdir)
    out["changed"] = bool(todo["create"]) or after != todo["before"] or args.state == "forcereinstall"
    return out
