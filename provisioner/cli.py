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
                        help="hosts worked on at once (default 50, or PROVISION_FORKS: at 200 hosts it ran the no-op "
                             "faster than 25, 100 or 200 and kept the controller near 70 MB; bench/forks.py)")
        sp.add_argument("-v", "--verbose", action="count", default=0)
        sp.add_argument("-K", "--ask-become-pass", action="store_true", help="prompt for the sudo password")
        sp.add_argument("--known-hosts", action="append", default=[], help="an extra known_hosts file to trust")
        sp.add_argument("--accept-new-host-keys", action="store_true",
                        help="record unknown host keys (changed keys are still refused)")
        sp.add_argument("-T", "--timeout", type=float, default=10.0, help="SSH connect timeout in seconds")
        sp.add_argument("--persist", type=float, metavar="SECONDS", default=float(os.environ.get("PROVISION_PERSIST") or 0),
                        help="keep each host's connection and agent that long after the run, for the next run "
                             "(as Ansible's ControlPersist; a per-user daemon holds them). Default 0 (off), or "
                             "PROVISION_PERSIST")
        sp.add_argument("-F", "--ssh-config", metavar="FILE",
                        help="OpenSSH client config to read (default: ~/.ssh/config when it exists)")
        sp.add_argument("--insecure-no-host-key-check", action="store_true",
                        help="honour StrictHostKeyChecking=no: connect without checking host keys")
        vault_options(sp)

    def vault_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--vault-password-file", "--vault-pass-file", action="append", default=[],
                        metavar="FILE", help="vault password file (an executable one is run, its output used)")
        sp.add_argument("--vault-id", action="append", default=[], metavar="LABEL@SOURCE",
                        help="a vault password with its label; SOURCE is a file, an executable or `prompt`")
        sp.add_argument("-J", "--ask-vault-pass", "--ask-vault-password", action="store_true",
                        help="prompt for the vault password")

    for name, helptext in (("apply", "apply a playbook"), ("check", "validate a playbook and inventory, touch nothing"),
                           ("plan", "show per host the GPU stack versions and methods a playbook would use")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("playbook")
        common(sp)
        sp.add_argument("-t", "--tags", action="append", default=[])
        sp.add_argument("--skip-tags", action="append", default=[])
        if name in ("apply", "plan"):
            sp.add_argument("--facts-from", metavar="FILE",
                            help="what-if: these facts (JSON: one host's, or {host: facts}) instead of the "
                                 "gathered ones; plan and apply --check only")
        if name == "apply":
            sp.add_argument("-C", "--check", action="store_true", help="decide and report, change nothing")
            sp.add_argument("-D", "--diff", action="store_true", help="show what changes in files")
            sp.add_argument("--report", help="write the whole run as JSON to this file")
            sp.add_argument("-q", "--quiet", action="store_true", help="only the recap")
            sp.add_argument("--html", metavar="FILE", help="write the GPU fleet page (needs the `report` extra)")
            sp.add_argument("--history", metavar="DB", help="the GPU history file (default: "
                            "$PROVISION_HISTORY or $XDG_STATE_HOME/provision/history.sqlite)")
            sp.add_argument("--output", choices=("compact", "lines"), default=None,
                            help="compact: one live line per task, a line only for changed/failed/unreachable "
                                 "hosts (default on a terminal); lines: a line per host and task, as Ansible "
                                 "(default when piped)")
            _listing_options(sp)
    sp = sub.add_parser("init", help="write a starter lab (inventory, lab.yml, group_vars) into a new directory")
    sp.add_argument("directory")
    sp = sub.add_parser("report", help="write the GPU fleet page (HTML) from a --report JSON")
    sp.add_argument("--from", dest="from_report", required=True, metavar="RUN.json", help="a `apply --report` file")
    sp.add_argument("--history", metavar="DB", help="the GPU history file, for a history line per GPU")
    sp.add_argument("-o", "--output", required=True, metavar="FILE.html")
    sp = sub.add_parser("compat", help="print the version matrix (CUDA, drivers, cuDNN, ROCm) and its sources")
    sp.add_argument("--json", action="store_true", help="the matrix as JSON")
    sp.add_argument("-v", "--verbose", action="count", default=0)
    sp = sub.add_parser("persist", help="the connections --persist keeps: say what is kept, or stop the daemon "
                        "and close them (as `ssh -O exit`)")
    sp.add_argument("action", choices=("status", "stop"), nargs="?", default="status")
    sp = sub.add_parser("facts", help="print hosts' facts as JSON")
    sp.add_argument("hosts", nargs="*", default=["all"])
    common(sp)
    _pull_parsers(sub, common)
    vault_sub = sub.add_parser("vault", help="encrypt, decrypt or view Ansible Vault files and strings")
    actions = vault_sub.add_subparsers(dest="action", required=True)
    for action, helptext in (("encrypt", "encrypt files in place (or to --output)"),
                             ("decrypt", "decrypt files in place (or to --output)"),
                             ("view", "print decrypted files"),
                             ("encrypt_string", "print a `!vault |` value for a string (or stdin)")):
        sp = actions.add_parser(action, help=helptext)
        sp.add_argument("files", nargs="*", metavar="STRING" if action == "encrypt_string" else "FILE")
        if action in ("encrypt", "decrypt"):
            sp.add_argument("--output", help="write here instead of in place (`-` for stdout)")
        if action == "encrypt_string":
            sp.add_argument("-n", "--name", help="the variable name to print before `!vault |`")
        if action in ("encrypt", "encrypt_string"):
            sp.add_argument("--encrypt-vault-id", metavar="LABEL", help="which vault id's password encrypts")
        sp.add_argument("-v", "--verbose", action="count", default=0)
        vault_options(sp)
    return p


def _pull_parsers(sub: Any, common: Any) -> None:
    """`provision pull` (run on a host, by its timer) and `provision status` (the admin's view)."""
    state_dir = "/var/lib/provision/pull"  # provisioner.pull.DEFAULT_STATE_DIR, not imported for every command
    sp = sub.add_parser("pull", help="clone/update a git repository and apply its playbook to this host "
                                     "when it changed (ansible-pull)")
    sp.add_argument("url", help="the git repository (ssh://, git@host:path, https://, a path)")
    sp.add_argument("playbook", nargs="?",
                    help="in the repository (default: <fqdn>.yml, <hostname>.yml, then local.yml)")
    sp.add_argument("-d", "--directory", type=Path, help="the work dir (default: STATE_DIR/<repository name>)")
    sp.add_argument("--state-dir", type=Path, default=Path(state_dir),
                    help=f"state.json, the lock and the default work dir (default {state_dir})")
    sp.add_argument("-C", "--checkout", help="branch, tag or commit (default: the remote's HEAD)")
    sp.add_argument("-o", "--only-if-changed", action="store_true",
                    help="apply only when the commit differs from the last successful run (the default)")
    sp.add_argument("--always", action="store_true", help="apply even when the repository did not change")
    sp.add_argument("-i", "--inventory", help="inventory (default: localhost, ansible_connection local)")
    sp.add_argument("-e", "--extra-vars", action="append", default=[])
    sp.add_argument("-t", "--tags", action="append", default=[])
    sp.add_argument("--check", action="store_true", help="decide and report, change nothing")
    sp.add_argument("--private-key", "--key-file", type=Path, help="the deploy key for an SSH repository")
    sp.add_argument("--accept-host-key", action="store_true",
                    help="record the git server's key when unknown (default: it must be in known_hosts)")
    sp.add_argument("--lock-timeout", type=float, default=300.0,
                    help="seconds to wait for a running pull before giving up with exit code 4 (default 300)")
    sp.add_argument("-v", "--verbose", action="count", default=0)
    sp = sub.add_parser("status", help="every host's last `provision pull` result, over SSH, in one table")
    common(sp)
    sp.add_argument("hosts", nargs="*", default=["all"])
    sp.add_argument("--state-file", default=f"{state_dir}/state.json",
                    help=f"where the hosts keep it (default {state_dir}/state.json; "
                         "or the host variable provision_pull_state_file)")
    sp.add_argument("--json", action="store_true", help="the hosts' state files as one JSON object")


def _listing_options(sp: argparse.ArgumentParser) -> None:
    """ansible-playbook's: list or only check instead of running (no host contacted), or start at a task."""
    sp.add_argument("--list-hosts", action="store_true", help="list each play's hosts, run nothing")
    sp.add_argument("--list-tasks", action="store_true", help="list the tasks that would run, with their tags")
    sp.add_argument("--list-tags", action="store_true", help="list each play's task tags")
    sp.add_argument("--syntax-check", action="store_true", help="validate only, touch nothing (as `provision check`)")
    sp.add_argument("--start-at-task", metavar="NAME",
                    help="start at the first task whose name matches (a name or pattern such as 'Install*')")


def main(argv: list[str] | None = None) -> int:
    from provisioner.vault import redact
    args = _parser().parse_args(argv)
    try:
        if args.command == "vault":
            from provisioner.vault import vault_command
            return vault_command(args)
        if args.command == "pull":
            return _pull(args)
        return _dispatch(args)
    except UserError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        if getattr(args, "verbose", 0) >= 3:
            print(redact(traceback.format_exc()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only with -vvv
        if getattr(args, "verbose", 0) >= 3:
            print(redact(traceback.format_exc()), file=sys.stderr)
        print(redact(f"internal error: {type(exc).__name__}: {exc} (run with -vvv for the traceback)"),
              file=sys.stderr)
        return 3


def _persist(action: str) -> int:
    """`provision persist [status|stop]`: 0, with a line; 1 when no daemon runs."""
    from provisioner.connection import persist
    info = persist.control(action)
    if info is None:
        print("no persist daemon runs for this user (provision apply --persist SECONDS starts one)")
        return 1
    if action == "stop":
        print(f"stopped the persist daemon (pid {info['pid']}): {info['kept']} kept agent(s) closed")
    else:
        print(f"persist daemon pid {info['pid']}: {info['kept']} agent(s) kept, {info['attached']} in a run now")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "compat":
        return _compat(args)
    if args.command == "init":
        return _init(Path(args.directory))
    if args.command == "report":
        return _report(args)
    if args.command == "persist":
        return _persist(args.action)
    from provisioner import vault
    from provisioner.executor.context import RunOptions
    from provisioner.executor.fake_facts import load_facts_file
    from provisioner.load.inventory import load_inventory

    # before anything is loaded: inventories, playbooks and vars files may hold vaulted data
    keyring = vault.Keyring(vault.secrets_from_options(args.vault_id, args.vault_password_file, args.ask_vault_pass))
    vault.install(keyring)
    facts_from = getattr(args, "facts_from", None)
    options = RunOptions(
        check=getattr(args, "check", False) or args.command == "plan",  # plan changes nothing
        diff=getattr(args, "diff", False), forks=max(1, args.forks),
        limit=args.limit, tags=frozenset(_split(getattr(args, "tags", []))),
        skip_tags=frozenset(_split(getattr(args, "skip_tags", []))),
        extra_vars=parse_extra_vars(args.extra_vars), verbosity=args.verbose,
        known_hosts=[Path(k).expanduser() for k in args.known_hosts],
        accept_new_host_keys=args.accept_new_host_keys, connect_timeout=args.timeout,
        persist=max(0.0, args.persist),
        insecure_no_host_key_check=args.insecure_no_host_key_check,
        ssh_config=Path(args.ssh_config).expanduser() if args.ssh_config else None,
        report_path=Path(args.report) if getattr(args, "report", None) else None,
        facts_from=load_facts_file(facts_from) if facts_from else None, use_fake_facts=args.command != "facts",
    )
    if args.ask_become_pass:
        options.become_password = getpass.getpass("BECOME password: ")
    elif os.environ.get("PROVISION_BECOME_PASSWORD"):
        options.become_password = os.environ["PROVISION_BECOME_PASSWORD"]
    if options.become_password:
        keyring.remember(options.become_password)  # as secret as a vaulted one: never shown
    inventory = load_inventory(args.inventory)
    if args.command == "facts":
        _check_connections(inventory, options)
        return _facts(args, inventory, options)
    if args.command == "status":
        _check_connections(inventory, options)
        return _status(args, inventory, options)
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
    _check_connections(inventory, options)
    if args.command == "check" or getattr(args, "syntax_check", False):
        print(f"{path}: ok ({len(playbook.plays)} play(s))")
        return 0
    if getattr(args, "list_hosts", False) or getattr(args, "list_tasks", False) or getattr(args, "list_tags", False):
        from provisioner.output.listing import listing
        print(listing(playbook, inventory, options, hosts=args.list_hosts, tasks=args.list_tasks, tags=args.list_tags))
        return 0
    if getattr(args, "start_at_task", None):
        from provisioner.load.start_at import start_at_task
        playbook = start_at_task(playbook, args.start_at_task, options.tags, options.skip_tags)
    if args.command == "plan":
        from provisioner.plan import show_plan
        return show_plan(playbook, inventory, options, loader)
    if not options.check:  # a real apply acts on the facts it gathers: refused before any host is touched
        from provisioner.executor.fake_facts import refuse_in_real_apply
        names = {n for play in playbook.plays for n in inventory.select(play.hosts, play.pos)}
        if options.limit:
            names &= set(inventory.select(options.limit))
        refuse_in_real_apply(((n, inventory.host_vars(n)) for n in sorted(names)), options.extra_vars, facts_from)
    return _apply(args, playbook, inventory, options, loader)


def _apply(args: argparse.Namespace, playbook: Any, inventory: Any, options: Any, loader: Any) -> int:
    from provisioner.executor.run import Runner
    from provisioner.output.events import Output
    from provisioner.output.report import write_report

    # the live view redraws its line in place: a terminal that can (not TERM=dumb) gets it by default
    live = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    mode = getattr(args, "output", None) or ("compact" if live else "lines")
    output: Output
    if mode == "compact":
        from provisioner.output.live import CompactOutput
        output = CompactOutput(verbosity=options.verbosity, quiet=getattr(args, "quiet", False))
    else:
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
    _gpu_history_and_page(args, runner, elapsed, lambda: output.console)
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



def _gpu_history_and_page(args: argparse.Namespace, runner: Any, elapsed: float, console_of: Any) -> None:
    """Record the GPU results in the history (not in check mode) and write the fleet page if asked.
    A run without GPU results imports neither sqlite3 nor rich (`console_of` makes the console)."""
    from provisioner.output.summary import gpu_results

    found = gpu_results(runner.results)
    flags: list[str] = []
    if not found and not args.html:
        return
    console = console_of()
    if found and not runner.options.check:
        import sqlite3

        from provisioner.output.history import default_path, record_results
        path = Path(args.history) if args.history else default_path()
        try:
            flags = record_results(path, [(h, d["gpu_verify"]) for h, d in found], time.time())
        except (OSError, sqlite3.Error) as exc:  # costs the history, not the run
            console.print(f"GPU history not recorded in {path}: {type(exc).__name__}: {exc}", markup=False)
        for flag in flags:
            console.print(f"GPU history: {flag}", markup=False, style="red")
    if args.html:
        from provisioner.output.fleet_page import write_page
        from provisioner.output.report import build_report
        history = Path(args.history) if args.history else None
        if history is None and found:
            from provisioner.output.history import default_path
            history = default_path()
        report = json.loads(json.dumps(build_report(runner, elapsed), default=str))
        write_page(Path(args.html), report, history, flags)
        console.print(f"GPU fleet page: {args.html}", markup=False)


def _report(args: argparse.Namespace) -> int:
    """`provision report --from run.json [--history DB] -o fleet.html`."""
    from provisioner.output.fleet_page import load_report, write_page

    source = Path(args.from_report)
    if not source.is_file():
        raise UserError("report file not found", Position(str(source)))
    try:
        report = load_report(source)
    except ValueError as exc:
        raise UserError(f"not a JSON report: {exc}", Position(str(source))) from None
    write_page(Path(args.output), report, Path(args.history) if args.history else None)
    print(f"wrote {args.output}")
    return 0


def _init(directory: Path) -> int:
    from provisioner.init import init_lab

    for path in init_lab(directory):
        print(f"wrote {path}")
    print(f"next: provision apply {directory / 'lab.yml'} -i {directory / 'inventory.yml'} --check")
    return 0


def _check_connections(inventory: Any, options: Any) -> None:
    """Every host's SSH settings resolve (ssh options understood, ssh config readable), before any
    host is touched."""
    from provisioner.connection.factory import ConnectionFactory, ConnectionSettingError

    factory = ConnectionFactory(options)
    for name, host in inventory.hosts.items():
        try:
            factory.check_host(name, inventory.host_vars(name), host.connection)
        except ConnectionSettingError as exc:
            raise UserError(f"host {name}: {exc}", Position(str(inventory.source)) if inventory.source
                            else None) from None


def _hosts_runner(args: argparse.Namespace, inventory: Any, options: Any) -> tuple[list[str], Any]:
    """The hosts a `facts`/`status` pattern (and --limit) names, and a runner with no play to reach them."""
    from provisioner.executor.run import Runner
    from provisioner.load.playbook import Playbook
    from provisioner.output.events import Output

    names = inventory.select(args.hosts)
    if options.limit:
        allowed = set(inventory.select(options.limit))
        names = [n for n in names if n in allowed]
    return names, Runner(Playbook(Path("."), []), inventory, options, Output(quiet=True))


def _facts(args: argparse.Namespace, inventory: Any, options: Any) -> int:
    from provisioner.executor.context import HostRun

    names, runner = _hosts_runner(args, inventory, options)
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


def _pull(args: argparse.Namespace) -> int:
    from provisioner.pull import PullOptions, pull

    return pull(PullOptions(
        url=args.url, playbook=args.playbook, directory=args.directory, state_dir=args.state_dir,
        checkout=args.checkout, always=args.always, inventory=args.inventory, extra_vars=args.extra_vars,
        tags=args.tags, check=args.check, private_key=args.private_key, accept_host_key=args.accept_host_key,
        lock_timeout=args.lock_timeout, verbose=args.verbose))


def _status(args: argparse.Namespace, inventory: Any, options: Any) -> int:
    """Exit 0 when every host was read and its last pull exited 0, else 1."""
    from provisioner.pull_status import collect, format_table, healthy, rows

    names, runner = _hosts_runner(args, inventory, options)
    try:
        states = collect(runner, names, args.state_file)
    finally:
        runner.close()
    table = rows(states)
    if args.json:
        print(json.dumps(states, indent=2, sort_keys=True))
    else:
        print(format_table(table))
    return 0 if all(healthy(row) for row in table) else 1


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
