"""Variable precedence, pinned: one variable defined in every layer a playbook can write, then the
layers taken away one by one from the top; each time the next layer down must win.

The order is Ansible's (role defaults < inventory < facts < play vars < vars_files < role vars <
block/task vars < set_fact/include_vars < register < role params < -e), with provision's additions
where they have always been: the task's own role above the play's other roles, the magic variables
above register, role_name/role_path and a loop item's variables just below -e. The variables are read
through the real Runner and TaskRunner from a project written to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.executor.context import HostRun, RunOptions
from provisioner.executor.layers import PRECEDENCE, VarLayers
from provisioner.executor.run import Runner
from provisioner.load.inventory import load_inventory
from provisioner.load.playbook import Loader, iter_tasks
from provisioner.output.events import Output

# Top first: the order the layers are taken away in, and the value each one gives `v`.
WRITABLE = [
    "extra_vars",          # -e
    "loop_item",           # the loop's variables (and an include's params)
    "role_params",         # roles: [{role: me, v: ...}]
    "registered",          # register:
    "host_facts",          # set_fact / include_vars
    "task_vars",           # the task's vars:
    "block_vars",          # the enclosing block's vars:
    "me_role_vars",        # the task's own role's vars/main.yml
    "other_role_vars",     # another role of the play (listed after `me`, still below it for me's tasks)
    "vars_files",          # the play's vars_files
    "play_vars",           # the play's vars:
    "inventory",           # host vars in the inventory
    "me_role_defaults",    # the task's own role's defaults
    "other_role_defaults",  # another role's defaults
]


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)


def _only(layer: str, defined: set[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The layer's variables: `v` when the layer is among those that define it, plus `extra`."""
    out = dict(extra or {})
    if layer in defined:
        out["v"] = layer
    return out


def read_vars(root: Path, defined: set[str], names: tuple[str, ...] = ("v",),
              also: dict[str, dict[str, Any]] | None = None,
              facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a project where `v` is set in the `defined` layers (and `also[layer]` adds more variables to
    a layer), and return `names` as the role task `probe` sees them on host h1."""
    also = also or {}
    root.mkdir(parents=True, exist_ok=True)

    def layer(name: str) -> dict[str, Any]:
        return _only(name, defined, also.get(name))

    _write(root / "inventory.yml", {"all": {"hosts": {"h1": {"ansible_connection": "local",
                                                             **layer("inventory")}}}})
    _write(root / "vars.yml", layer("vars_files"))
    for role in ("me", "other"):
        _write(root / "roles" / role / "defaults" / "main.yml", layer(f"{role}_role_defaults"))
        _write(root / "roles" / role / "vars" / "main.yml", layer(f"{role}_role_vars"))
    _write(root / "roles" / "other" / "tasks" / "main.yml", [{"name": "other task", "debug": {"msg": "x"}}])
    _write(root / "roles" / "me" / "tasks" / "main.yml", [
        {"vars": layer("block_vars"), "block": [
            {"name": "probe", "debug": {"msg": "x"}, "vars": layer("task_vars")}]}])
    _write(root / "site.yml", [{
        "hosts": "all", "gather_facts": False, "name": "the play", "vars": layer("play_vars"),
        "vars_files": ["vars.yml"],
        "roles": [{"role": "me", **layer("role_params")}, "other"]}])
    loader = Loader(root / "site.yml")
    book = loader.load()
    inventory = load_inventory(str(root / "inventory.yml"))
    options = RunOptions(extra_vars=layer("extra_vars"))
    runner = Runner(book, inventory, options, Output(quiet=True), loader)
    try:
        play = book.plays[0]
        runner.play = play
        runner.play_hosts = ["h1"]
        hr = runner.hosts["h1"] = HostRun(inventory.hosts["h1"])
        hr.facts = dict(facts or {})
        hr.host_facts.update(layer("host_facts"))
        hr.registered.update(layer("registered"))
        [probe] = [t for t in iter_tasks(play.tasks) if t.name == "probe"]
        variables = runner.task_runner.variables(hr, probe, layer("loop_item"))
        return {n: variables[n] for n in names if n in variables}
    finally:
        runner.close()


def test_each_layer_wins_over_every_layer_below_it(tmp_path: Path) -> None:
    defined = set(WRITABLE)
    seen: list[str] = []
    for i, top in enumerate(WRITABLE):
        got = read_vars(tmp_path / f"p{i}", defined).get("v")
        seen.append(str(got))
        assert got == top, f"with {sorted(defined)} defining v, {top} should win: got {got}"
        defined.discard(top)
    assert seen == WRITABLE
    assert read_vars(tmp_path / "none", set()) == {}


def test_facts_magic_and_role_name_sit_where_ansible_puts_them(tmp_path: Path) -> None:
    # facts: above inventory, below play vars
    facts = {"v": "facts"}  # -> ansible_v
    got = read_vars(tmp_path / "f1", set(), ("ansible_v",), facts=facts,
                    also={"inventory": {"ansible_v": "inventory"}})
    assert got == {"ansible_v": "facts"}
    got = read_vars(tmp_path / "f2", set(), ("ansible_v",), facts=facts,
                    also={"inventory": {"ansible_v": "inventory"}, "play_vars": {"ansible_v": "play_vars"}})
    assert got == {"ansible_v": "play_vars"}
    # the magic variables: above register, below role params
    got = read_vars(tmp_path / "m1", set(), ("ansible_play_name",),
                    also={"registered": {"ansible_play_name": "registered"}})
    assert got == {"ansible_play_name": "the play"}
    got = read_vars(tmp_path / "m2", set(), ("ansible_play_name",),
                    also={"registered": {"ansible_play_name": "registered"},
                          "role_params": {"ansible_play_name": "role_params"}})
    assert got == {"ansible_play_name": "role_params"}
    # role_name / role_path: above role params, below a loop item's variables
    got = read_vars(tmp_path / "r1", set(), ("role_name",), also={"role_params": {"role_name": "role_params"}})
    assert got == {"role_name": "me"}
    got = read_vars(tmp_path / "r2", set(), ("role_name",),
                    also={"role_params": {"role_name": "role_params"}, "loop_item": {"role_name": "loop"}})
    assert got == {"role_name": "loop"}


@pytest.mark.parametrize("top", ["extra_vars", "registered", "play_vars"])
def test_hostvars_see_the_host_layers_and_extra_vars(tmp_path: Path, top: str) -> None:
    """`hostvars[h]` (Runner.variables_for) reads the host's layers with -e on top, no task layers."""
    defined = set(WRITABLE[WRITABLE.index(top):]) - {"loop_item", "role_params", "task_vars", "block_vars"}
    root = tmp_path / "p"
    read_vars(root, defined)  # writes the project
    loader = Loader(root / "site.yml")
    book = loader.load()
    inventory = load_inventory(str(root / "inventory.yml"))
    extra = {"v": "extra_vars"} if "extra_vars" in defined else {}
    runner = Runner(book, inventory, RunOptions(extra_vars=extra), Output(quiet=True), loader)
    try:
        runner.play = book.plays[0]
        hr = runner.hosts["h1"] = HostRun(inventory.hosts["h1"])
        if "registered" in defined:
            hr.registered["v"] = "registered"
        assert runner.variables_for("h1")["v"] == top
    finally:
        runner.close()



def test_the_precedence_list_is_written_once_in_this_order() -> None:
    assert PRECEDENCE == (
        "role_defaults", "task_role_defaults", "inventory", "facts", "play_vars", "vars_files", "role_vars",
        "task_role_vars", "block_task_vars", "host_facts", "registered", "magic", "role_params", "role_name",
        "task_extra", "extra_vars")
    # set in any order, by name: stacked in precedence order, each name's mappings lowest first
    layers = VarLayers()
    for name in reversed(PRECEDENCE):
        layers.set(name, {"v": f"{name} 1"}, {"v": f"{name} 2"})
    assert [m["v"] for m in layers.stack()] == [f"{n} {i}" for n in PRECEDENCE for i in (1, 2)]
    copied = layers.copy().set("extra_vars")  # a copy is changed alone
    assert len(copied.stack()) == len(layers.stack()) - 2 and layers.get("extra_vars")


def test_a_hosts_kept_layers_follow_new_facts_and_a_new_batch(tmp_path: Path) -> None:
    """The per-host layers are kept between tasks: a reconnect's facts and serial's next batch show."""
    root = tmp_path / "p"
    read_vars(root, set())
    loader = Loader(root / "site.yml")
    book = loader.load()
    inventory = load_inventory(str(root / "inventory.yml"))
    runner = Runner(book, inventory, RunOptions(), Output(quiet=True), loader)
    try:
        play = runner.play = book.plays[0]
        [probe] = [t for t in iter_tasks(play.tasks) if t.name == "probe"]
        runner.play_hosts = ["h1"]
        hr = runner.hosts["h1"] = HostRun(inventory.hosts["h1"])
        hr.facts = {"os_family": "Debian"}
        first = runner.task_runner.variables(hr, probe)
        assert first["ansible_os_family"] == "Debian" and first["play_hosts"] == ["h1"]
        hr.facts = {"os_family": "RedHat"}  # connect() after a reboot
        runner.play_hosts = ["h1", "h2"]    # the next serial batch
        hr.registered["r"] = 1
        again = runner.task_runner.variables(hr, probe)
        assert again["ansible_os_family"] == "RedHat" and again["play_hosts"] == ["h1", "h2"]
        assert again["r"] == 1
    finally:
        runner.close()
