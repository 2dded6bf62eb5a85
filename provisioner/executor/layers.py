"""Variable layers by name, with the precedence order written once (docs/VARIABLES.md explains it).

Whoever builds a task's variables sets the layers it has by name; `stack()` lists them lowest
precedence first, as LazyVars reads them. Which layer wins never depends on the order in which
two files appended or inserted theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Literal, get_args

Layer = Mapping[str, Any]

# Lowest precedence first: Ansible's order, with provision's additions (the task's own role above
# the play's other roles; the magic variables; role_name/role_path; a loop item's variables) where
# they have always been. PRECEDENCE is read from here.
LayerName = Literal[
    "role_defaults",       # defaults/ of every role of the play, in play order
    "task_role_defaults",  # the task's own role: its defaults above the other roles'
    "inventory",           # inventory, group_vars, host_vars
    "facts",               # gathered facts: ansible_facts, ansible_*
    "play_vars",
    "vars_files",          # the play's vars_files
    "role_vars",           # vars/ of every role of the play
    "task_role_vars",      # the task's own role's vars/ above the other roles'
    "block_task_vars",     # the enclosing blocks' vars, then the task's own
    "host_facts",          # set_fact, include_vars
    "registered",          # register
    "magic",               # inventory_hostname, groups, hostvars, play_hosts...
    "role_params",         # roles: [{role: x, param: ...}], include_role's vars
    "role_name",           # role_name and role_path
    "task_extra",          # a loop item's variables, an include's params
    "extra_vars",          # -e
]
PRECEDENCE: tuple[LayerName, ...] = get_args(LayerName)
_SLOT = {name: i for i, name in enumerate(PRECEDENCE)}


class VarLayers:
    """A host's variable layers, by name: each name holds a few mappings (lowest first)."""

    __slots__ = ("_groups",)

    def __init__(self, groups: list[Sequence[Layer]] | None = None) -> None:
        self._groups: list[Sequence[Layer]] = groups if groups is not None else [()] * len(PRECEDENCE)

    def set(self, name: LayerName, *layers: Layer) -> VarLayers:
        """Put `layers` (lowest first) in place of what `name` held; returns self."""
        self._groups[_SLOT[name]] = layers
        return self

    def get(self, name: LayerName) -> Sequence[Layer]:
        return self._groups[_SLOT[name]]

    def copy(self) -> VarLayers:
        """Another builder with the same layers (the mappings themselves are shared, not copied)."""
        return VarLayers(self._groups[:])

    def stack(self) -> list[Layer]:
        """Every layer in PRECEDENCE order, lowest first."""
        return list(chain.from_iterable(self._groups))


__all__ = ["PRECEDENCE", "Layer", "LayerName", "VarLayers"]
