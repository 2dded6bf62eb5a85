"""ansible-playbook's `--list-hosts`, `--list-tasks` and `--list-tags`, in its output shape.

    playbook: lab.yml

      play #1 (all): GPU workstations	TAGS: []
        pattern: ['all']
        hosts (1):
          localhost
        tasks:
          rust : Install Rust	TAGS: [rust]
          TASK TAGS: [always, rust]

Tasks are those --tags/--skip-tags select, with their inherited tags; handlers are not listed.
"""

from __future__ import annotations

from collections.abc import Iterable

from provisioner.executor.context import RunOptions
from provisioner.load.inventory import Inventory
from provisioner.load.playbook import Play, Playbook, iter_tasks, selected_by_tags


def listing(playbook: Playbook, inventory: Inventory, options: RunOptions, hosts: bool = False,
            tasks: bool = False, tags: bool = False) -> str:
    lines = ["", f"playbook: {playbook.path}"]
    for number, play in enumerate(playbook.plays, 1):
        pattern = play.hosts if isinstance(play.hosts, list) else [play.hosts]
        lines += ["", f"  play #{number} ({','.join(map(str, pattern))}): {play.name}\tTAGS: {_tags(play.tags)}"]
        every = iter_tasks(play.pre_tasks + play.tasks + play.post_tasks, includes=False)
        selected = [t for t in every if selected_by_tags(t.tags, options.tags, options.skip_tags)]
        if hosts:
            names = _play_hosts(play, inventory, options)
            lines += [f"    pattern: {pattern!r}", f"    hosts ({len(names)}):"]
            lines += [f"      {name}" for name in names]
        if tasks:
            lines.append("    tasks:")
            lines += [f"      {t.display_name}\tTAGS: {_tags(t.tags)}" for t in selected]
        if tags:
            # Ansible lists every task's tags unless --tags or --skip-tags narrow them
            shown = selected if options.tags or options.skip_tags else every
            lines.append(f"      TASK TAGS: {_tags(t for task in shown for t in task.tags)}")
    return "\n".join(lines)


def _play_hosts(play: Play, inventory: Inventory, options: RunOptions) -> list[str]:
    names = inventory.select(play.hosts, play.pos)
    if options.limit:
        allowed = set(inventory.select(options.limit))
        names = [n for n in names if n in allowed]
    return names


def _tags(tags: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(set(tags))) + "]"
