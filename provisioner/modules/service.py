"""service (also `systemd`, `systemd_service`): a service started/stopped, enabled, masked.

With systemd running, ONE `systemctl show` reads the unit's load, active and unit-file states and
only the missing steps run. Without it (a container, a chroot), sysvinit scripts are driven
through `service` (or /etc/init.d/NAME) and update-rc.d/chkconfig; with neither, it fails saying so.
"""

from __future__ import annotations

import os

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, glob_paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

OTHER_NAMES = ("systemd", "systemd_service")
ALIASES = {"service": "name", "unit": "name", "daemon-reload": "daemon_reload", "args": "arguments"}
INIT_D = "/etc/init.d"
RC_DIRS = ("/etc/rc{}.d", "/etc/rc.d/rc{}.d")
PROPERTIES = "LoadState,ActiveState,SubState,UnitFileState"
ENABLED_STATES = ("enabled", "enabled-runtime", "alias", "indirect", "generated", "transient", "static")


class Args(ModuleArgs):
    name: str | None = None
    state: Literal["started", "stopped", "restarted", "reloaded"] | None = None
    enabled: bool | None = None
    masked: bool | None = None
    daemon_reload: bool = False
    scope: Literal["system", "user", "global"] = "system"
    no_block: bool = False
    arguments: str = ""                   # extra words for a sysvinit script (service module's args)
    use: str = "auto"                     # auto: host.facts["service_mgr"]; or systemd, sysvinit


def manager(args: Args, host: Host) -> str:
    mgr = args.use if args.use != "auto" else host.facts.get("service_mgr")
    if not mgr:                         # no facts gathered: systemd's own test for "booted with systemd"
        mgr = "systemd" if os.path.isdir("/run/systemd/system") else "sysvinit"
    return mgr


def systemctl(args: Args, host: Host) -> list[str]:
    path = host.which("systemctl")
    if not path:
        raise ModuleError("service manager is systemd but systemctl is not on PATH")
    return [path] + ({"user": ["--user"], "global": ["--global"]}.get(args.scope, []))


def systemd_status(args: Args, host: Host) -> dict[str, str]:
    res = host.run([*systemctl(args, host), "show", args.name or "", "-p", PROPERTIES])
    if res.rc != 0:
        raise ModuleError(f"systemctl show {args.name} failed: {(res.stderr or res.stdout).strip()}")
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def systemd_steps(args: Args, host: Host, before_reload: bool = False) -> tuple[list[str], dict[str, str]]:
    if not args.name:
        return [], {}
    status = systemd_status(args, host)
    if status.get("LoadState") == "not-found" and args.masked is not True and not before_reload:
        raise ModuleError(f"Could not find the requested service {args.name}: host")
    unit_file, active = status.get("UnitFileState", ""), status.get("ActiveState", "")
    steps = []
    if args.masked is not None and args.masked != unit_file.startswith("masked"):
        steps.append("mask" if args.masked else "unmask")
    if args.enabled is not None and not args.masked:
        if args.enabled and unit_file not in ENABLED_STATES:
            steps.append("enable")
        elif not args.enabled and unit_file in ("enabled", "enabled-runtime", "alias"):
            steps.append("disable")
    running = active in ("active", "activating", "reloading")
    if args.state == "started" and not running and not args.masked:
        steps.append("start")
    elif args.state == "stopped" and (running or active == "deactivating"):
        steps.append("stop")
    elif args.state in ("restarted", "reloaded"):
        steps.append(args.state[:-2] if running or args.state == "restarted" else "start")
    return steps, status


def sysv_command(args: Args, host: Host) -> list[str]:
    service = host.which("service")
    if service:
        return [service, args.name or ""]
    script = os.path.join(INIT_D, args.name or "")
    if os.path.isfile(script):
        return [script]
    raise ModuleError(f"cannot manage service {args.name}: systemd is not running here "
                      f"(service_mgr={manager(args, host)}) and there is no 'service' command or {script}")


def sysv_enabled(name: str) -> bool:
    return any(glob_paths(os.path.join(d.format(level), f"S??{name}")) for d in RC_DIRS for level in "2345")


def sysv_steps(args: Args, host: Host) -> tuple[list[str], dict[str, str]]:
    if args.masked is not None:
        raise ModuleError("masked needs systemd, which is not running here")
    if not args.name:
        raise ModuleError("name is required without systemd")
    res = host.run([*sysv_command(args, host), "status", *args.arguments.split()])
    if "unrecognized service" in res.stdout + res.stderr or res.rc == 127:
        raise ModuleError(f"Could not find the requested service {args.name}: host")
    running, enabled = res.rc == 0, sysv_enabled(args.name)
    steps = []
    if args.enabled is not None and args.enabled != enabled:
        steps.append("enable" if args.enabled else "disable")
    if args.state == "started" and not running:
        steps.append("start")
    elif args.state == "stopped" and running:
        steps.append("stop")
    elif args.state in ("restarted", "reloaded"):
        steps.append(args.state[:-2] if running else "start")
    return steps, {"ActiveState": "active" if running else "inactive", "enabled": str(enabled).lower()}


def plan(args: Args, host: Host) -> Change:
    if not args.name and not args.daemon_reload:
        raise ModuleError("name is required (or daemon_reload)")
    mgr = manager(args, host)
    if mgr == "systemd":
        steps, status = systemd_steps(args, host, before_reload=args.daemon_reload)
    else:
        if args.daemon_reload:
            raise ModuleError("daemon_reload needs systemd, which is not running here")
        steps, status = sysv_steps(args, host)
    data = {"name": args.name, "state": args.state, "enabled": args.enabled, "status": status}
    if not steps and not args.daemon_reload:
        return Change(False, "", data=data)
    what = (["daemon-reload"] if args.daemon_reload else []) + steps
    msg = ("would " if host.check_mode else "") + " ".join([*what, args.name or ""]).rstrip()
    return Change(True, msg, todo={"manager": mgr, "steps": steps}, data=data)


def run_step(host: Host, argv: list[str], step: str) -> None:
    res = host.run(argv)
    if res.rc != 0:
        raise ModuleError(f"Unable to {step} service: {(res.stderr or res.stdout).strip()}",
                          rc=res.rc, stdout=res.stdout, stderr=res.stderr)


def sysv_enable_argv(host: Host, name: str, enable: bool) -> list[str]:
    tool = host.which("update-rc.d")
    if tool:          # `defaults` creates the rc links; `enable` only renames existing K links to S
        linked = any(glob_paths(os.path.join(d.format(level), f"[SK]??{name}"))
                     for d in RC_DIRS for level in "2345")
        return [tool, name, ("enable" if linked else "defaults") if enable else "disable"]
    tool = host.which("chkconfig")
    if tool:
        return [tool, name, "on" if enable else "off"]
    verb = "enable" if enable else "disable"
    raise ModuleError(f"cannot {verb} {name}: neither update-rc.d nor chkconfig is here")


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    steps = change.todo["steps"]
    if change.todo["manager"] == "systemd":
        if args.daemon_reload:         # unit files may have changed: decide again after the reload
            run_step(host, [*systemctl(args, host), "daemon-reload"], "daemon-reload")
            steps = systemd_steps(args, host)[0]
        for step in steps:
            no_block = ["--no-block"] if args.no_block else []
            run_step(host, [*systemctl(args, host), *no_block, step, args.name or ""], step)
        return {"changed": bool(steps)}
    for step in steps:
        if step in ("enable", "disable"):
            run_step(host, sysv_enable_argv(host, args.name or "", step == "enable"), step)
        else:
            run_step(host, [*sysv_command(args, host), step, *args.arguments.split()], step)
    return {"changed": True}
