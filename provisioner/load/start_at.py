"""`--start-at-task NAME`: the playbook from the first task whose name matches, as Ansible does.

Plays before the one holding that task are dropped; in it, every task before the match is;
facts are still gathered and handlers kept. The name is matched as Ansible matches it: the
task's own name or its shown name (`role : name`), exactly or as a shell pattern (`Install*`),
among the tasks that --tags/--skip-tags select, inside the includes the loader read ahead (not
inside an include_tasks with a loop or a `when`, resolved only at run time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from fnmatch import fnmatchcase

from provisioner.errors import UserError
from provisioner.load.playbook import Block, Node, Playbook, Task, selected_by_tags


def start_at_task(playbook: Playbook, pattern: str, tags: frozenset[str] = frozenset(),
                  skip_tags: frozenset[str] = frozenset()) -> Playbook:
    """The playbook cut to start at the first task matching `pattern`; a UserError when none does."""

    def matches(task: Task) -> bool:
        if not selected_by_tags(task.tags, tags, skip_tags):
            return False
        names = [n for n in (task.name, task.display_name) if n]
        return any(n == pattern or fnmatchcase(n, pattern) for n in names)

    for i, play in enumerate(playbook.plays):
        sections = [play.pre_tasks, play.tasks, play.post_tasks]
        for k, section in enumerate(sections):
            rest = _nodes_from(section, matches)
            if rest is None:
                continue
            cut: list[list[Node]] = [*([] for _ in range(k)), rest, *sections[k + 1:]]
            first = replace(play, pre_tasks=cut[0], tasks=cut[1], post_tasks=cut[2])
            return replace(playbook, plays=[first, *playbook.plays[i + 1:]])
    raise UserError(f"--start-at-task {pattern!r}: no task of the playbook has that name "
                    "(a name or a pattern such as 'Install*'; tasks of an include_tasks with a loop or `when` are not searched)")


def _nodes_from(nodes: list[Node], matches: Callable[[Task], bool]) -> list[Node] | None:
    """These nodes from the first matching task on (blocks cut inside), or None without a match."""
    for i, node in enumerate(nodes):
        if isinstance(node, Block):
            rest = _nodes_from(node.block, matches)
            if rest is not None:
                return [replace(node, block=rest), *nodes[i + 1:]]
            rest = _nodes_from(node.rescue, matches)
            if rest is not None:  # start inside the rescue: run it as if the block had failed
                return [replace(node, block=rest, rescue=[]), *nodes[i + 1:]]
            rest = _nodes_from(node.always, matches)
            if rest is not None:
                return [*rest, *nodes[i + 1:]]
        elif matches(node):
            return nodes[i:]
    return None
