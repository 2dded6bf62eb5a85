"""`provision plan`: per host, the GPU stack versions and methods a playbook would use.

Connects to each host once (facts only: nothing is changed and no task runs), computes the
GPU roles' variables for that host as the play would see them (inventory, play vars, role
defaults, -e), and asks the same planner the `gpu_preflight` action uses. Prints one table
per host; exits 1 when any host has a refusal (or could not be reached).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from provisioner import compat
from provisioner.actions.gpu_preflight import plan_for
from provisioner.errors import TaskFailed, UserError
from provisioner.executor.context import HostRun
from provisioner.executor.fake_facts import FAKE_FACTS_VAR, fake_facts
from provisioner.executor.run import Runner
from provisioner.load.playbook import Play, iter_tasks
from provisioner.output.events import Output
from provisioner.template import LazyVars

GPU_ROLES = {"nvidia_driver", "cuda_toolkit", "cudnn", "rocm"}


def show_plan(playbook: Any, inventory: Any, options: Any, loader: Any, console: Console | None = None) -> int:
    console = console or Console(highlight=False, soft_wrap=True)
    runner = Runner(playbook, inventory, options, Output(quiet=True), loader)
    failed = False
    planned_any = False
    try:
        for play in playbook.plays:
            if not plans_gpu(play):
                continue
            planned_any = True
            names = inventory.select(play.hosts, play.pos)
            if options.limit:
                allowed = set(inventory.select(options.limit))
                names = [n for n in names if n in allowed]
            runner.play = play
            runner.play_hosts = names
            runs = [runner.hosts.setdefault(n, HostRun(inventory.hosts[n])) for n in names]
            fresh = [hr for hr in runs if hr.session is None and not hr.unreachable]
            reached = {r.host: r for r in runner._parallel(fresh, runner.connect)} if fresh else {}
            console.print(f"[bold]PLAN[/bold] {play.name} ({len(names)} host(s))")
            for hr in runs:
                result = reached.get(hr.name)
                if result is not None and result.status != "ok":
                    console.print(_table(hr.name, {}, {}, [f"{result.status}: {result.msg}"]))
                    failed = True
                    continue
                facts, plan, problems = host_plan(runner, play, hr)
                failed = failed or bool(problems)
                console.print(_table(hr.name, facts, plan, problems))
    finally:
        runner.close()
    if not planned_any:
        console.print("no play of this playbook installs a GPU stack (no gpu_preflight task, no GPU role)")
    return 1 if failed else 0


def plans_gpu(play: Play) -> bool:
    """A play plans a GPU stack when it runs gpu_preflight or one of the GPU roles."""
    tasks = iter_tasks(play.pre_tasks + play.tasks + play.post_tasks)
    return any(t.action == "gpu_preflight" for t in tasks) or any(r.name in GPU_ROLES for r in play.roles)


def host_plan(runner: Runner, play: Play, hr: HostRun) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(facts, plan, refusals) for one connected host, with the variables the play gives it."""
    def variables() -> LazyVars:
        layers = runner.base_layers(hr, play).set("role_params", *(r.params for r in play.roles))
        return LazyVars(layers.stack(), runner.templar)

    try:
        # another OS's facts stand in for this host's (what-if plans; play vars and -e included)
        fake = fake_facts(runner.options.facts_from, hr.name, variables().get(FAKE_FACTS_VAR), check=True)
        if fake is not None:
            hr.facts = fake
        plan = plan_for(dict(hr.facts), variables())
    except (compat.RequestError, compat.MatrixError, TaskFailed, UserError, OSError, ValueError) as exc:
        return dict(hr.facts), {}, [str(exc)]
    return dict(hr.facts), plan, list(plan["refusals"])


def describe_gpus(facts: Mapping[str, Any]) -> str:
    """"2x Tesla V100-SXM2-32GB (cc 7.0)", "AMD Instinct MI210 (gfx90a)", or "none"."""
    parts: list[str] = []
    smi = (facts.get("nvidia") or {}).get("gpus") or []
    if smi:
        counts = Counter(f"{g.get('name')} (cc {g.get('compute_cap') or '?'})" for g in smi)
        parts += [f"{n}x {name}" if n > 1 else name for name, n in counts.items()]
    else:
        counts = Counter(g.get("model") or f"NVIDIA {g.get('device_id')}" for g in facts.get("gpus") or []
                         if g.get("vendor") == "nvidia")
        parts += [f"{n}x {name}" if n > 1 else name for name, n in counts.items()]
    try:
        devices = compat.load_matrix().amd_gpus.devices
    except compat.MatrixError:
        devices = {}
    for gpu in facts.get("gpus") or []:
        if gpu.get("vendor") == "amd":
            known = devices.get(gpu.get("device_id") or "")
            parts.append(f"AMD {known.name} ({known.gfx})" if known else f"AMD {gpu.get('device_id')}")
    driver = (facts.get("nvidia") or {}).get("driver_version")
    text = ", ".join(parts) or "none"
    return f"{text}; driver {driver}" if driver else text


def _table(host: str, facts: Mapping[str, Any], plan: Mapping[str, Any], problems: list[str]) -> Table:
    table = Table(title=f"[bold]{host}[/bold]", title_justify="left", show_header=False, box=None,
                  padding=(0, 2, 0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    if facts:
        os_name = f"{facts.get('distribution') or facts.get('os_id')} {facts.get('distribution_version') or ''}"
        wsl = " (WSL2)" if facts.get("is_wsl") else ""
        table.add_row("os", f"{plan.get('os_key') or compat.os_key(dict(facts)) or '?'}: {os_name.strip()}{wsl}")
        table.add_row("gpu", describe_gpus(facts))
    if plan:
        table.add_row("stack", str(plan.get("gpu_stack")))
        for key, value in plan_rows(plan):
            table.add_row(key, value)
        for note in plan.get("notes") or []:
            table.add_row("note", note)
    for problem in problems:
        table.add_row("[red]REFUSED[/red]", f"[red]{problem}[/red]")
    return table


def plan_rows(plan: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The plan as (label, text) rows: versions, methods, packages, URLs."""
    rows: list[tuple[str, str]] = []
    if plan.get("cuda_action") == "keep":
        rows.append(("cuda", f"keep {plan['cuda_version']} (installed)"))
        rows.append(("  why", str(plan.get("cuda_reason"))))
    elif plan.get("cuda_version"):
        toolkits = plan.get("cuda_toolkits") or [{"version": plan["cuda_version"],
                                                  "packages": plan.get("cuda_packages") or []}]
        versions = ", ".join(t["version"] + (" (default)" if t["version"] == plan["cuda_version"] and
                                             len(toolkits) > 1 else "") for t in toolkits)
        if not plan.get("cuda_pinned"):   # cuda_version auto: say what was chosen, and why
            versions = f"install {versions} ({plan.get('cuda_reason')})"
        rows.append(("cuda", f"{versions} via {plan.get('cuda_method')}"))
        packages = [p for t in toolkits for p in t.get("packages") or []]
        if packages:
            rows.append(("  packages", " ".join(packages)))
        if plan.get("cuda_method") == "nvidia_repo" and plan.get("cuda_repo_url"):
            rows.append(("  repo", str(plan["cuda_repo_url"])))
            rows.append(("  setup", str(plan.get("cuda_repo_setup_url"))))
    else:
        rows.append(("cuda", "-"))
    rows.append(("driver", f"branch {plan['driver_branch']}" if plan.get("driver_branch") else "keep installed"))
    if plan.get("cudnn_action") == "keep":
        rows.append(("cudnn", f"keep {plan['cudnn_version']} (installed)"))
        rows.append(("  why", str(plan.get("cudnn_reason"))))
    elif plan.get("cudnn_version"):
        auto = "" if (plan.get("cudnn_reason") or "pinned").startswith("pinned") else f" ({plan.get('cudnn_reason')})"
        rows.append(("cudnn", f"{plan['cudnn_version']}{auto} via {plan.get('cudnn_method')}"))
        if plan.get("cudnn_packages"):
            rows.append(("  packages", " ".join(plan["cudnn_packages"])))
        if plan.get("cudnn_archive_url"):
            rows.append(("  archive", str(plan["cudnn_archive_url"])))
    else:
        rows.append(("cudnn", "-"))
    if plan.get("rocm_version"):
        rows.append(("rocm", f"{plan['rocm_version']} via amdgpu-install"))
        rows.append(("  installer", str(plan.get("rocm_installer_url"))))
    else:
        rows.append(("rocm", "-"))
    return rows
