"""The command line: parse arguments, then hand over to load → check → run → report."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from provisioner import __version__
from provisioner.errors import Position, UserError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="provision", description="Provision GPU workstations from Ansible-style playbooks.")
    p.add_argument("--version", action="version", version=f"provision {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-i", "--inventory", help="inventory file or directory, or host1,host2, (default: this machine)")
        sp.add_argument("-l", "--limit", help="further limit the hosts (a host pattern)")
        sp.add_argument("-e", "--extra-vars", action="append", default=[],
                        help="k=v pairs, YAML/JSON, or @file (highest precedence)")
        sp.add_argument("-f", "--forks", type=int, default=int(os.environ.get("PROVISION_FORKS", 50)),
                        help="hosts worked on at once (default 50)")
        sp.add_argument("-v", "--verbose", action="count", default=0)
        sp.add_argument("-K", "--ask-become-pass", action="store_true", help="prompt for the sudo password")
        sp.add_argument("--known-hosts", action="append", default=[], help="an extra known_hosts file to trust")
        sp.add_argument("--accept-new-host-keys", action="store_true",
                        help="record unknown host keys (changed keys are still refused)")
        sp.add_argument("-T", "--timeout", type=float, default=10.0, help="SSH connect timeout in seconds")

    for name, helptext in (("apply", "apply a playbook"), ("check", "validate a playbook and inventory, touch nothing"),
                           ("plan", "show per host the GPU stack versions and methods a playbook would use")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("playbook")
        common(sp)
        sp.add_argument("-t", "--tags", action="append", default=[])
        sp.add_argument("--skip-tags", action="append", default=[])
        if name == "apply":
            sp.add_argument("-C", "--check", action="store_true", help="decide and report, change nothing")
            sp.add_argument("-D", "--diff", action="store_true", help="show what changes in files")
            sp.add_argument("--report", help="write the whole run as JSON to this file")
            sp.add_argument("-q", "--quiet", action="store_true", help="only the recap")
    sp = sub.add_parser("compat", help="print the version matrix (CUDA, drivers, cuDNN, ROCm) and its sources")
    sp.add_argument("--json", action="store_true", help="the matrix as JSON")
    sp.add_argument("-v", "--verbose", action="count", default=0)
    sp = sub.add_parser("facts", help="print hosts' facts as JSON")
    sp.add_argument("hosts", nargs="*", default=["all"])
    common(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.verbose >= 3:
            traceback.print_exc()
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only with -vvv
        if args.verbose >= 3:
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc} (run with -vvv for the traceback)", file=sys.stderr)
        return 3


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "compat":
        return _compat(args)
    from provisioner.executor.context import RunOptions
    from provisioner.load.inventory import load_inventory

    options = RunOptions(
        check=getattr(args, "check", False), diff=getattr(args, "diff", False), forks=max(1, args.forks),
        limit=args.limit, tags=frozenset(_split(getattr(args, "tags", []))),
        skip_tags=frozenset(_split(getattr(args, "skip_tags", []))),
        extra_vars=parse_extra_vars(args.extra_vars), verbosity=args.verbose,
        known_hosts=[Path(k).expanduser() for k in args.known_hosts],
        accept_new_host_keys=args.accept_new_host_keys, connect_timeout=args.timeout,
        report_path=Path(args.report) if getattr(args, "report", None) else None,
    )
    if args.ask_become_pass:
        options.become_password = getpass.getpass("BECOME password: ")
    elif os.environ.get("PROVISION_BECOME_PASSWORD"):
        options.become_password = os.environ["PROVISION_BECOME_PASSWORD"]
    inventory = load_inventory(args.inventory)
    if args.command == "facts":
        return _facts(args, inventory, options)
    from provisioner.load.check import check_playbook
    from provisioner.load.inventory import add_playbook_var_dirs
    from provisioner.load.playbook import Loader

    path = Path(args.playbook)
    if not path.is_file():
        raise UserError("playbook not found", Position(str(path)))
    loader = Loader(path)
    playbook = loader.load()
    add_playbook_var_dirs(inventory, path.parent)
    check_playbook(playbook, inventory, options)
    if args.command == "check":
        print(f"{path}: ok ({len(playbook.plays)} play(s))")
        return 0
    if args.command == "plan":
        from provisioner.plan import show_plan
        return show_plan(playbook, inventory, options, loader)
    return _apply(args, playbook, inventory, options, loader)


def _apply(args: argparse.Namespace, playbook: Any, inventory: Any, options: Any, loader: Any) -> int:
    from provisioner.executor.run import Runner
    from provisioner.output.events import Output
    from provisioner.output.report import write_report

    output = Output(verbosity=options.verbosity, quiet=getattr(args, "quiet", False))
    t0 = time.monotonic()
    runner = Runner(playbook, inventory, options, output, loader)
    import gc
    gc.freeze()  # what is loaded now lives for the whole run: keep the collector off it
    ok = runner.run()
    elapsed = time.monotonic() - t0
    stats = {name: hr.stats for name, hr in runner.hosts.items()}
    output.recap(stats, elapsed)
    from provisioner.output.summary import print_summaries
    print_summaries(runner.results, lambda: output.console)
    if options.report_path:
        write_report(options.report_path, runner, elapsed)
    if runner.interrupted.is_set():
        return 130
    return 0 if ok else 1


def _compat(args: argparse.Namespace) -> int:
    from provisioner.compat import MatrixError, load_matrix
    from provisioner.output.compat_table import matrix_json, print_matrix

    try:
        matrix = load_matrix()
    except MatrixError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(matrix_json(matrix), indent=2))
    else:
        from rich.console import Console
        print_matrix(matrix, Console(highlight=False, soft_wrap=True))
    return 0


def _facts(args: argparse.Namespace, inventory: Any, options: Any) -> int:
    from provisioner.executor.context import HostRun
    from provisioner.executor.run import Runner
    from provisioner.load.playbook import Playbook
    from provisioner.output.events import Output

    names = inventory.select(args.hosts)
    if options.limit:
        allowed = set(inventory.select(options.limit))
        names = [n for n in names if n in allowed]
    runner = Runner(Playbook(Path("."), []), inventory, options, Output(quiet=True))
    out: dict[str, Any] = {}
    failed = False
    try:
        hrs = [runner.hosts.setdefault(n, HostRun(inventory.hosts[n])) for n in names]
        for result in runner._parallel(hrs, runner.connect):
            if result.status != "ok":
                out[result.host] = {"unreachable" if result.status == "unreachable" else "failed": result.msg}
                failed = True
            else:
                out[result.host] = runner.hosts[result.host].facts
    finally:
        runner.close()
    print(json.dumps(out, indent=2, sort_keys=True))
    return 1 if failed else 0


def parse_extra_vars(values: list[str]) -> dict[str, Any]:
    import yaml
    out: dict[str, Any] = {}
    for value in values:
        value = value.strip()
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise UserError("extra-vars file not found", Position(str(path)))
            from provisioner.load.yamlsrc import load_yaml_file
            data = load_yaml_file(path)
        elif value.startswith("{"):
            try:
                data = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                raise UserError(f"-e {value!r}: not valid YAML/JSON: {what}") from None
        else:
            import shlex
            data = {}
            for part in shlex.split(value):
                k, eq, v = part.partition("=")
                if not eq or not k.isidentifier():
                    raise UserError(f"-e {part!r}: expected key=value, YAML/JSON or @file")
                data[k] = v
        if not isinstance(data, dict):
            raise UserError(f"-e {value!r}: extra vars must be a mapping")
        out.update(data)
    return out


def _split(values: list[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def run() -> None:
    """The console script: main(), then a quick exit.

    The interpreter's own shutdown walks every object the imports made (0.1-0.15 s of CPU);
    by then the connections are closed and the output is flushed, so skip it.
    """
    _limit_malloc_arenas()
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _limit_malloc_arenas() -> None:
    """glibc gives each thread its own malloc arena; with a thread per host that is most of the
    controller's memory at 50 hosts. Two arenas are plenty for threads that mostly wait."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    run()
