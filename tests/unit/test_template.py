"""Templating as an Ansible user expects it, and the variable precedence the engine implements.

The filter and rendering tests drive `Templar` directly; the precedence tests run real
playbooks on this machine (local connection) and read what `debug: var=x` saw from the
`--report` JSON, so they prove the order a user gets, not the order a list claims.
docs/VARIABLES.md states the same order.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cli import main
from provisioner.errors import TaskFailed
from provisioner.load.yamlsrc import load_yaml_text
from provisioner.template import LazyVars, Templar

T = Templar()


def render(source: Any, **variables: Any) -> Any:
    return T.render(source, LazyVars([variables], T))


# -- filters and tests ---------------------------------------------------------------------
@pytest.mark.parametrize(("source", "variables", "expected"), [
    ("{{ missing | default('fallback') }}", {}, "fallback"),
    ("{{ empty | default('fallback', true) }}", {"empty": ""}, "fallback"),
    ("{{ empty | default('fallback') }}", {"empty": ""}, ""),
    ("{{ 'yes' | bool }}", {}, True),
    ("{{ 'off' | bool }}", {}, False),
    ("{{ flag | bool }}", {"flag": "True"}, True),
    ("{{ '42' | int + 1 }}", {}, 43),
    ("{{ 'x' | int }}", {}, 0),
    ("{{ '12.4' is version('12.0', '>=') }}", {}, True),
    ("{{ rustc is version('1.75', '>=') }}", {"rustc": "1.74.1"}, False),
    ("{{ '1.75' is version('1.75.0', '==') }}", {}, True),
    ("{{ '535.104.05' | version('550', 'lt') }}", {}, True),
    ("{{ 'v2.10' is version('2.9', '>') }}", {}, True),
    ("{{ out | regex_search('CUDA Version: ([0-9.]+)', '\\\\1') | first }}",
     {"out": "Driver 550.54  CUDA Version: 12.4 |"}, "12.4"),
    ("{{ 'abc' | regex_search('x') }}", {}, None),
    ("{{ 'ubuntu-22.04' | regex_replace('^ubuntu-(\\\\d+)\\\\.(\\\\d+)$', '\\\\1\\\\2') }}", {}, "2204"),
    ("{{ pkgs | join(' ') }}", {"pkgs": ["curl", "git"]}, "curl git"),
    ("{{ d | to_json }}", {"d": {"a": [1, 2]}}, '{"a": [1, 2]}'),
    ("{{ s | from_json }}", {"s": '{"a": [1, 2]}'}, {"a": [1, 2]}),
    ("{{ a | combine(b) }}", {"a": {"x": 1, "n": {"p": 1}}, "b": {"y": 2, "n": {"q": 2}}},
     {"x": 1, "y": 2, "n": {"q": 2}}),
    ("{{ a | combine(b, recursive=True) }}", {"a": {"n": {"p": 1}}, "b": {"n": {"q": 2}}},
     {"n": {"p": 1, "q": 2}}),
    ("{{ d | dict2items }}", {"d": {"a": 1, "b": 2}}, [{"key": "a", "value": 1}, {"key": "b", "value": 2}]),
    ("{{ '/usr/local/cuda-12.4/bin/nvcc' | basename }}", {}, "nvcc"),
    ("{{ path | quote }}", {"path": "a b; rm -rf /"}, "'a b; rm -rf /'"),
    ("{{ gpu | ternary('nvidia', 'none') }}", {"gpu": True}, "nvidia"),
    ("{{ gpu | ternary('nvidia', 'none') }}", {"gpu": False}, "none"),
    ("{{ nested | flatten }}", {"nested": [1, [2, [3, 4]], []]}, [1, 2, 3, 4]),
    ("{{ nested | flatten(levels=1) }}", {"nested": [1, [2, [3]]]}, [1, 2, [3]]),
])
def test_filter(source: str, variables: dict[str, Any], expected: Any) -> None:
    assert render(source, **variables) == expected


# -- native types, laziness, errors --------------------------------------------------------
def test_a_single_expression_keeps_its_native_type() -> None:
    assert render("{{ pkgs }}", pkgs=["curl", "git"]) == ["curl", "git"]
    assert render("{{ n * 2 }}", n=21) == 42
    assert render("{{ {'a': n} }}", n=1) == {"a": 1}
    assert render("  {{ flag }}  ", flag=True) is True
    assert render("n={{ n }}", n=1) == "n=1", "text around an expression makes a string"


def test_nested_templates_in_vars_resolve_lazily_in_any_layer() -> None:
    low = {"cuda_version": "12.4", "cuda_home": "/usr/local/cuda-{{ cuda_version }}"}
    high = {"nvcc": "{{ cuda_home }}/bin/nvcc", "cuda_version": "12.6"}
    variables = LazyVars([low, high], T)
    assert variables["nvcc"] == "/usr/local/cuda-12.6/bin/nvcc", "the higher layer's version is the one read"


@pytest.mark.parametrize("variables", [
    {"x": "{{ x }}"},
    {"a": "{{ b }}", "b": "{{ c | default('') }}{{ a }}", "c": ""},
])
def test_a_variable_that_refers_to_itself_is_an_error_not_a_hang(variables: dict[str, Any]) -> None:
    with pytest.raises(TaskFailed, match="refers to itself"):
        render("{{ " + next(iter(variables)) + " }}", **variables)


@pytest.mark.parametrize(("source", "name"), [
    ("{{ cuda_verison }}", "cuda_verison"),
    ("cuda-{{ cuda_verison }}", "cuda_verison"),
    ("{{ cuda_verison.major }}", "cuda_verison"),
    ("{{ gpu.memory_mb }}", "memory_mb"),
])
def test_strict_undefined_names_the_variable(source: str, name: str) -> None:
    with pytest.raises(TaskFailed, match=f"undefined variable: '{name}'"):
        render(source, gpu={"model": "H100"})


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ facts.nvidia.driver | default('none') }}", "none"),
    ("{{ missing.deeper['key'] | default('none') }}", "none"),
    ("{{ facts.nvidia.driver is defined }}", False),
    ("{{ missing.deeper is not defined }}", True),
])
def test_default_and_defined_guard_a_whole_chain_of_lookups(source: str, expected: Any) -> None:
    """Ansible's idiom: `a.b.c | default(x)` works when `a` or `a.b` is missing."""
    assert render(source, facts={"os_family": "Debian"}) == expected


def test_undefined_in_a_condition_names_the_variable() -> None:
    with pytest.raises(TaskFailed, match="'install_cuda'"):
        T.condition("install_cuda | bool", LazyVars([{}], T))


def test_omit_drops_the_argument() -> None:
    args = {"path": "/x", "mode": "{{ mode | default(omit) }}", "owner": "{{ omit }}"}
    assert render(args) == {"path": "/x"}
    assert render(args, mode="0644") == {"path": "/x", "mode": "0644"}
    assert render(["a", "{{ omit }}", "b"]) == ["a", "b"]


def test_unsafe_strings_are_never_templated() -> None:
    data = load_yaml_text('msg: !unsafe "{{ lookup(\'pipe\', \'id\') }} {{ nothing_defines_this }}"\n', "t.yml")
    assert render(data["msg"]) == "{{ lookup('pipe', 'id') }} {{ nothing_defines_this }}"
    assert render("{{ v }}", v=data["msg"]) == data["msg"], "an unsafe value read through a variable stays literal"


def test_lookup_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_TEST_TOKEN", "t0k3n")
    monkeypatch.delenv("PROVISION_TEST_ABSENT", raising=False)
    assert render("{{ lookup('env', 'PROVISION_TEST_TOKEN') }}") == "t0k3n"
    assert render("{{ lookup('env', 'PROVISION_TEST_ABSENT') }}") == ""
    assert render("{{ lookup('env', 'PROVISION_TEST_ABSENT', default='d') }}") == "d"


# -- precedence, end to end ----------------------------------------------------------------
# Lowest first. Each name is both where `x` is set and the value it is set to there.
PRECEDENCE = [
    "role_defaults", "inventory_group_all", "inventory_group_child", "inventory_host", "play_vars",
    "vars_files", "role_vars", "block_vars", "task_vars", "set_fact", "role_params", "extra_vars",
]


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _project(root: Path, levels: set[str]) -> list[str]:
    """A playbook, inventory and role that set `x` at each of `levels`; returns the apply argv."""
    def x(level: str) -> dict[str, str]:
        return {"x": level} if level in levels else {}

    _write(root / "inventory.yml", {"all": {
        "vars": x("inventory_group_all"),
        "children": {"lab": {"vars": x("inventory_group_child"),
                             "hosts": {"h1": {"ansible_connection": "local", **x("inventory_host")}}}}}})
    role = root / "roles" / "r"
    _write(role / "defaults" / "main.yml", x("role_defaults"))
    _write(role / "vars" / "main.yml", x("role_vars"))
    show: dict[str, Any] = {"name": "show", "debug": {"var": "x"}}
    if "task_vars" in levels:
        show["vars"] = x("task_vars")
    block: dict[str, Any] = {"block": [show]}
    if "block_vars" in levels:
        block["vars"] = x("block_vars")
    tasks: list[dict[str, Any]] = [{"set_fact": {"x": "set_fact"}}] if "set_fact" in levels else []
    _write(role / "tasks" / "main.yml", [*tasks, block])
    _write(root / "vf.yml", x("vars_files"))
    play: dict[str, Any] = {"hosts": "all", "gather_facts": False, "vars": x("play_vars"),
                            "vars_files": ["vf.yml"], "roles": [{"role": "r", **x("role_params")}]}
    _write(root / "site.yml", [play])
    argv = ["apply", str(root / "site.yml"), "-i", str(root / "inventory.yml"), "--report", str(root / "r.json")]
    return argv + (["-e", "x=extra_vars"] if "extra_vars" in levels else [])


def _seen(root: Path, argv: list[str], task: str) -> Any:
    assert main(argv) == 0
    report = json.loads((root / "r.json").read_text())
    [result] = [r for r in report["results"] if r["task"] == task]
    return result["result"]["x"]


def test_precedence_remove_the_winning_level_one_at_a_time(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    present = list(PRECEDENCE)
    while present:
        root = tmp_path / f"{len(present):02d}"
        seen = _seen(root, _project(root, set(present)), "r : show")
        capsys.readouterr()
        assert seen == present[-1], f"with x set at {present}, {present[-1]} must win, got {seen}"
        present.pop()


@pytest.mark.parametrize(("low", "high"), list(itertools.pairwise(PRECEDENCE)))
def test_precedence_each_neighbour_pair_alone(low: str, high: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Neighbours on their own, so a level never wins only because a third one hid the other."""
    assert _seen(tmp_path, _project(tmp_path, {low, high}), "r : show") == high
    capsys.readouterr()


def _run_play(root: Path, play: dict[str, Any], inventory: dict[str, Any] | None = None,
              files: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    _write(root / "inventory.yml", inventory or {"all": {"hosts": {"h1": {"ansible_connection": "local"}}}})
    for name, data in (files or {}).items():
        _write(root / name, data)
    _write(root / "site.yml", [{"hosts": "all", "gather_facts": False, **play}])
    rc = main(["apply", str(root / "site.yml"), "-i", str(root / "inventory.yml"), "--report", str(root / "r.json")])
    assert rc == 0
    return [r for r in json.loads((root / "r.json").read_text())["results"] if r["action"] == "debug"]


def test_register_and_include_vars_beat_task_vars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _run_play(tmp_path, {"vars": {"x": "play", "y": "play"}, "tasks": [
        {"command": "echo registered", "register": "x", "changed_when": False},
        {"include_vars": {"file": "y.yml"}},
        {"name": "show", "debug": {"msg": "{{ x.stdout }} {{ y }}"}, "vars": {"x": "task", "y": "task"}},
    ]}, files={"y.yml": {"y": "included"}})
    capsys.readouterr()
    assert results[0]["result"]["msg"] == "registered included"


def test_facts_beat_inventory_and_lose_to_play_vars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = {"all": {"hosts": {"h1": {"ansible_connection": "local", "ansible_os_family": "FromInventory"}}}}
    results = _run_play(tmp_path / "a", {"tasks": [{"debug": {"var": "ansible_os_family"}}]}, inventory)
    assert results[0]["result"]["ansible_os_family"] not in ("FromInventory", None)
    results = _run_play(tmp_path / "b", {"vars": {"ansible_os_family": "FromPlay"},
                                         "tasks": [{"debug": {"var": "ansible_os_family"}}]}, inventory)
    assert results[0]["result"]["ansible_os_family"] == "FromPlay"
    capsys.readouterr()


def test_group_vars_and_host_vars_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """group_vars/GROUP.yml beats the inventory file's vars of that group; host_vars/HOST.yml its host vars."""
    inventory = {"all": {"vars": {"a": "file_all"}, "children": {"lab": {
        "vars": {"g": "file_lab"}, "hosts": {"h1": {"ansible_connection": "local", "h": "file_host"}}}}}}
    results = _run_play(tmp_path, {"tasks": [{"debug": {"msg": "{{ a }} {{ g }} {{ h }}"}}]}, inventory, files={
        "group_vars/all.yml": {"a": "dir_all"}, "group_vars/lab.yml": {"g": "dir_lab"},
        "host_vars/h1.yml": {"h": "dir_host"}})
    capsys.readouterr()
    assert results[0]["result"]["msg"] == "dir_all dir_lab dir_host"


def test_group_vars_all_file_beats_inventory_file_child_group_vars(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    inventory = {"all": {"children": {"lab": {
        "vars": {"x": "file_lab"}, "hosts": {"h1": {"ansible_connection": "local"}}}}}}
    results = _run_play(tmp_path, {"tasks": [{"debug": {"var": "x"}}]}, inventory,
                        files={"group_vars/all.yml": {"x": "dir_all"}})
    capsys.readouterr()
    assert results[0]["result"]["x"] == "dir_all", "Ansible: every inventory file's group vars, then group_vars/"
