"""provisioner.validate: the task-argument checks that took pydantic's place on the controller.

pydantic is still installed (compat.py uses it), so most cases here ask it what it decides for
the same annotation and value, in lax mode, and expect the same coerced value or the same
errors (loc, type, message), in the same order: the first error is the line a user sees. The
controller actions' old pydantic models are kept below as the reference for their ARGS. The
table at the end pins the wording on its own, should pydantic ever leave.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections import deque
from types import MappingProxyType
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from provisioner.actions import check_model_args, check_module_args
from provisioner.errors import Position, UserError
from provisioner.host.runtime import ModuleArgs
from provisioner.modules import host_module, host_modules, validate_args
from provisioner.validate import EXTRAS, ArgsError, alias, arg_fields, as_dict, validate, validate_model


class Sub(str):
    """A str subclass, like the templar's marked-unsafe strings."""


TYPES: list[Any] = [
    str, int, float, bool, type(None), Any, str | None, str | int | None, int | str, bool | str, str | list[str],
    Literal["present", "absent"], Literal["a", "b", "c"], Literal["a", "b"] | int, Literal[1, 2], list[str],
    list[int], list[Literal["deb", "deb-src"]], dict[str, str] | None, dict[str, Any], float | None, bool | None,
    int | None, list[Any], dict, list, tuple[int, ...], tuple[int, str], list[str | int],
    # the spellings of module files that keep to Python 3.7 syntax
    typing.Optional[typing.List[str]], typing.Dict[str, int], typing.Optional[Literal["started", "stopped"]],  # noqa: UP006, UP045
]
TEXTS = ["x", "5", " 5 ", "5.0", "5.5", "1e3", "yes", "no", "True", "YES", " yes", "on", "off", "t", "f", "y", "n",
         "1", "0", "2", "", "-0.0", "+5", "1_000", "1__0", "_1", "1_", "1_0.5", "1_.5", "\xa05", "\x1c5", "5\n",
         "nan", "-inf", "Infinity", "infinit", "٥", "0x10", "5.", ".5", "1e400", "5.00", "5.0_0", "tRuE", "present",
         "PRESENT", "absent", "a", "b", "deb", "started", " ", "+-5"]
VALUES: list[Any] = [
    *TEXTS, *(t.encode() for t in TEXTS[:12]), Sub("sub"), Sub("present"), Sub("5"), b"\xff", bytearray(b"x"),
    5, 0, 1, 2, -1, 10**20, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 10**400, 5.0, 5.5, 0.0, -0.0, 1.0, 2.0,
    float("nan"), float("inf"), 1e20, float(2**63), 9.2e18, True, False, None,
    [], ["a", 1], ["a"], ["deb", "x"], [1, "2", 3.5], {}, {"a": 1}, {"a": "b"}, {1: "b"}, {"a": "1", "b": "x"},
    ("a",), {"a"}, frozenset(["a"]), deque(["a"]), {"a": 1}.keys(), MappingProxyType({"a": "1"}), object,
]


def outcome(fn: Any, value: Any) -> tuple[Any, ...]:
    """("ok", repr, type name) or ("error", [(loc, type, msg)...]) from pydantic or from validate."""
    try:
        result = fn(value)
    except ValidationError as exc:
        return ("error", [(tuple(e["loc"]), e["type"], e["msg"]) for e in exc.errors()])
    except ArgsError as exc:
        return ("error", [(e.loc, e.type, e.msg) for e in exc.errors])
    if isinstance(result, ModuleArgs):
        result = result.as_dict()
    elif dataclasses.is_dataclass(result):
        result = dataclasses.asdict(result)  # type: ignore[arg-type]
    elif isinstance(result, BaseModel):
        result = {**result.model_dump(), **{"__extra__": result.model_extra}}
    return ("ok", repr(result), type(result).__name__)


@pytest.mark.parametrize("tp", TYPES, ids=repr)
def test_every_value_is_decided_as_pydantic_decides(tp: Any) -> None:
    adapter = TypeAdapter(tp)
    differ = [(v, outcome(adapter.validate_python, v), outcome(lambda x: validate(tp, x), v)) for v in VALUES]
    assert [d for d in differ if d[1] != d[2]] == []


def test_union_members_are_tried_in_their_own_order() -> None:
    # `str | int == int | str`: a cache keyed by the annotation alone would mix them up
    assert validate(list[int | str], ["5"]) == ["5"]
    assert validate(list[str | int], [5.0]) == [5]
    with pytest.raises(ArgsError) as exc:
        validate(list[str | int], [5.5])
    assert [e.loc for e in exc.value.errors] == [(0, "str"), (0, "int")]


@pytest.mark.parametrize(("tp", "value", "expected"), [
    (bool, "yes", True), (bool, "No", False), (bool, "on", True), (bool, "1", True), (bool, 0, False),
    (bool, 1.0, True), (int, "5", 5), (int, " 5 ", 5), (int, "5.0", 5), (int, 5.0, 5), (int, True, 1),
    (float, "1.5", 1.5), (float, 2, 2.0), (str, "x", "x"), (str | int | None, 5, 5), (str | int | None, "5", "5"),
    (list[str], ("a", "b"), ["a", "b"]), (dict[str, Any], {"k": [1]}, {"k": [1]}), (Any, Sub("s"), Sub("s")),
    (Literal["present", "absent"], "absent", "absent"),
])
def test_lax_coercions(tp: Any, value: Any, expected: Any) -> None:
    result = validate(tp, value)
    assert result == expected and type(result) is type(expected)


def test_a_marked_string_comes_back_plain_for_str_and_as_is_for_any() -> None:
    assert type(validate(str, Sub("s"))) is str
    assert type(validate(Any, Sub("s"))) is Sub


@pytest.mark.parametrize(("tp", "value", "loc", "msg"), [
    (str, 5, (), "Input should be a valid string"),
    (str, True, (), "Input should be a valid string"),
    (int, 5.5, (), "Input should be a valid integer, got a number with a fractional part"),
    (int, "5.5", (), "Input should be a valid integer, unable to parse string as an integer"),
    (float, "x", (), "Input should be a valid number, unable to parse string as a number"),
    (bool, "maybe", (), "Input should be a valid boolean, unable to interpret input"),
    (bool, 2, (), "Input should be a valid boolean, unable to interpret input"),
    (bool, None, (), "Input should be a valid boolean"),
    (Literal["present", "absent"], "gone", (), "Input should be 'present' or 'absent'"),
    (Literal["a", "b", "c"], "d", (), "Input should be 'a', 'b' or 'c'"),
    (list[str], "x", (), "Input should be a valid list"),
    (list[str], ["a", 1], (1,), "Input should be a valid string"),
    (dict[str, str], {"a": 1}, ("a",), "Input should be a valid string"),
    (dict[str, str], [], (), "Input should be a valid dictionary"),
    (str | int | None, 5.5, ("str",), "Input should be a valid string"),
    (int, "9" * 5000, (), "Input should be a valid integer, unable to parse string as an integer"),  # not a crash
])
def test_error_wording(tp: Any, value: Any, loc: tuple[Any, ...], msg: str) -> None:
    with pytest.raises(ArgsError) as exc:
        validate(tp, value)
    assert (exc.value.loc, exc.value.msg) == (loc, msg)


@dataclasses.dataclass
class Example:
    path: str
    state: Literal["present", "absent"] | None = None
    names: list[str] = dataclasses.field(default_factory=list)


def test_dataclass_errors_come_in_field_order_then_the_unknown_arguments() -> None:
    with pytest.raises(ArgsError) as exc:
        validate(Example, {"zzz": 1, "state": "gone"})
    assert [(e.loc, e.type, e.msg) for e in exc.value.errors] == [
        (("path",), "missing", "Field required"),
        (("state",), "literal_error", "Input should be 'present' or 'absent'"),
        (("zzz",), "unexpected_keyword_argument", "Unexpected keyword argument"),
    ]
    assert validate(Example, {"path": "p"}) == Example("p")
    assert [(f.name, f.required) for f in arg_fields(Example)] == [("path", True), ("state", False),
                                                                    ("names", False)]

@dataclasses.dataclass
class Options:
    that: Any
    fail_msg: Any = dataclasses.field(default=None, metadata=alias("msg"))
    rest: dict[str, Any] = dataclasses.field(default_factory=dict, metadata=EXTRAS)


def test_aliases_and_the_field_that_collects_the_rest() -> None:
    assert validate_model(Options, {"that": 1, "msg": "m", "x": [2]}) == Options(1, "m", {"x": [2]})
    assert validate_model(Options, {"that": 1, "fail_msg": "m"}) == Options(1, "m")
    assert validate_model(Options, {"that": 1, "msg": "a", "fail_msg": "b"}) == Options(1, "a", {"fail_msg": "b"})
    assert [f.name for f in arg_fields(Options) if f.extras] == ["rest"]
    with pytest.raises(ArgsError) as exc:
        validate_model(Options, {"msg": "m"})
    assert (exc.value.loc, exc.value.type) == (("that",), "missing")


# -- host modules: every Args against pydantic's dataclass validation (extra="forbid") -------

FIELD_VALUES: list[Any] = ["x", "yes", "5", "5.5", "0644", "present", "latest", "a,b", "", 5, 5.0, 5.5, 0, True,
                           None, ["a"], ["a", 1], [5], {"a": "b"}, {"a": 1}, Sub("s"), "{{ v }}"]


def _module_cases(args_type: type) -> list[dict[str, Any]]:
    fields = arg_fields(args_type)
    base = {f.name: "x" for f in fields if f.required}
    cases: list[dict[str, Any]] = [{}, base, {**base, "no_such_arg": 1}, {"no_such_arg": 1, **base, "zz": 2},
                                   {1: "x", **base}]
    for f in fields:
        cases += [{**base, f.name: v} for v in FIELD_VALUES]
    cases.append({k: 5.5 for k in [f.name for f in fields]})
    return cases


def _as_dataclass(args_type: type) -> type:
    fields = []
    for f in arg_fields(args_type):
        if f.required:
            fields.append((f.name, f.annotation))
        elif isinstance(f.default, (list, dict)):
            fields.append((f.name, f.annotation, dataclasses.field(default_factory=lambda d=f.default: type(d)(d))))
        else:
            fields.append((f.name, f.annotation, dataclasses.field(default=f.default)))
    made = dataclasses.make_dataclass(args_type.__name__, fields)
    made.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return made


@pytest.mark.parametrize("name", sorted({spec.name for spec in host_modules().values()}))
def test_module_args_are_decided_as_pydantic_decided(name: str) -> None:
    spec = host_module(name)
    assert spec is not None
    # the reference: pydantic on a dataclass with the same fields, as the Args were before they
    # became ModuleArgs (no dataclasses on the hosts)
    adapter = TypeAdapter(_as_dataclass(spec.args_type))
    cases = _module_cases(spec.args_type)
    differ = [(c, outcome(adapter.validate_python, c), outcome(lambda x: validate(spec.args_type, x), c))
              for c in cases]
    assert [d for d in differ if d[1] != d[2]] == []


def test_validate_args_applies_aliases_and_comma_lists_then_checks() -> None:
    spec = host_module("apt")
    assert spec is not None
    args = validate_args(spec, {"pkg": "a, b,,c", "update_cache": "yes"})
    assert (args.name, args.update_cache) == (["a", "b", "c"], True)
    assert as_dict(args)["name"] == ["a", "b", "c"]
    with pytest.raises(ArgsError) as exc:
        validate_args(spec, {"name": "a", "update_cache": "maybe"})
    assert (exc.value.loc, exc.value.msg) == (("update_cache",),
                                              "Input should be a valid boolean, unable to interpret input")


# -- controller actions: the ARGS dataclasses against the pydantic models they replaced ------

class DebugModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    msg: Any = None
    var: str | None = None
    verbosity: int = 0


class FailModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    msg: Any = "Failed as requested from task"


class AssertModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    that: Any
    fail_msg: Any = Field(default=None, alias="msg")
    success_msg: Any = "All assertions passed"
    quiet: bool = False


class IncludeVarsModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str | None = None
    dir: str | None = None
    name: str | None = None
    files_matching: str | None = None
    ignore_unknown_extensions: bool = False


class PauseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 0
    minutes: float = 0
    prompt: str | None = None
    echo: bool = True


class PingModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = "pong"


class RebootModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reboot_timeout: float = 600
    connect_timeout: float | None = None
    pre_reboot_delay: float = 0
    post_reboot_delay: float = 0
    test_command: str = "whoami"
    msg: str = "Reboot initiated by provision"
    reboot_command: str | None = None
    boot_time_command: str = "cat /proc/sys/kernel/random/boot_id"


class SetFactModel(BaseModel):
    model_config = ConfigDict(extra="allow")
    cacheable: bool = False


class SetupModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class TemplateModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    src: str
    dest: str
    mode: Any = None
    owner: str | None = None
    group: str | None = None
    backup: bool = False
    force: bool = True
    validate_cmd: str | None = Field(default=None, alias="validate")
    newline_sequence: str = "\n"
    trim_blocks: bool = True
    lstrip_blocks: bool = False
    output_encoding: str = "utf-8"


class WaitForConnectionModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float = 600
    delay: float = 0
    sleep: float = 1
    connect_timeout: float = 5


class GpuPreflightModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gpu_stack: str | None = None
    cuda_version: Any = None
    cuda_versions: list[Any] | None = None
    cuda_method: str | None = None
    nvidia_driver_branch: Any = None
    cudnn_version: Any = None
    cudnn_method: str | None = None
    rocm_version: Any = None
    gpu_force: bool | None = None


class FetchModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    src: str
    dest: str
    flat: bool = False
    fail_on_missing: bool = True
    validate_checksum: bool = True


class RawModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cmd: str
    executable: str | None = None


MODELS: dict[str, type[BaseModel]] = {
    "debug": DebugModel, "fail": FailModel, "assert": AssertModel, "include_vars": IncludeVarsModel,
    "pause": PauseModel, "ping": PingModel, "reboot": RebootModel, "set_fact": SetFactModel, "setup": SetupModel,
    "template": TemplateModel, "wait_for_connection": WaitForConnectionModel, "gpu_preflight": GpuPreflightModel,
    "fetch": FetchModel, "raw": RawModel,
}


def _action_args(stem: str) -> type:
    return importlib.import_module(f"provisioner.actions.{stem}").ARGS  # type: ignore[no-any-return]


def test_every_action_with_args_has_its_reference_model_here() -> None:
    from pathlib import Path

    import provisioner.actions as actions
    with_args = {p.stem for p in Path(actions.__file__).parent.glob("*.py")
                 if not p.stem.startswith("_") and "\nclass ARGS" in p.read_text()}
    assert with_args == set(MODELS)


def _model_dump(result: Any) -> dict[str, Any]:
    if isinstance(result, BaseModel):
        return {**result.model_dump(), **(result.model_extra or {})}
    data = as_dict(result)
    for f in arg_fields(type(result)):
        if f.extras:
            data.update(data.pop(f.name))
    return data


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_action_args_are_decided_as_their_pydantic_model_decided(stem: str) -> None:
    model, args_type = MODELS[stem], _action_args(stem)
    names = [*model.model_fields, *(f.alias for f in model.model_fields.values() if f.alias)]
    required = {n: "x" for n, f in model.model_fields.items() if f.is_required()}
    cases: list[dict[Any, Any]] = [{}, required, {**required, "unknown": 1, "other": [1]}, {1: 2, **required}]
    for name in names:
        cases += [{**required, name: v} for v in FIELD_VALUES]
    if stem == "assert":
        cases += [{"that": 1, "msg": "a", "fail_msg": "b"}, {"that": 1, "fail_msg": "b", "msg": 5}]
    if stem == "template":
        cases += [{"src": "s", "dest": "d", "validate": "a", "validate_cmd": 5}]

    def old(data: Any) -> Any:
        return _model_dump(model.model_validate(data))

    def new(data: Any) -> Any:
        return _model_dump(validate_model(args_type, data))

    differ = [(c, outcome(old, c), outcome(new, c)) for c in cases]
    assert [d for d in differ if d[1] != d[2]] == []


def test_set_fact_collects_every_other_argument_unchecked() -> None:
    args = validate_model(_action_args("set_fact"), {"cacheable": "yes", "facts": 1, "x": [1]})
    assert (args.cacheable, args.facts) == (True, {"facts": 1, "x": [1]})


def test_an_alias_wins_over_the_name_and_the_name_is_then_extra() -> None:
    args_type = _action_args("assert")
    assert validate_model(args_type, {"that": "x", "fail_msg": "m"}).fail_msg == "m"
    assert validate_model(args_type, {"that": "x", "msg": "m"}).fail_msg == "m"
    with pytest.raises(ArgsError) as exc:
        validate_model(args_type, {"that": "x", "msg": "a", "fail_msg": "b"})
    assert (exc.value.loc, exc.value.msg) == (("fail_msg",), "Extra inputs are not permitted")


# -- the lines users see ---------------------------------------------------------------------

POS = Position("site.yml", 4, 5)


@pytest.mark.parametrize(("module", "raw", "line"), [
    ("apt", {"name": "x", "update_cache": "maybe"},
     "argument 'update_cache' of 'apt': input should be a valid boolean, unable to interpret input (got 'maybe')"),
    ("file", {"path": "p", "state": "bogus"}, "argument 'state' of 'file': input should be 'file', 'directory', "
     "'link', 'hard', 'touch' or 'absent' (got 'bogus')"),
    ("file", {"path": "p", "owner": 5.5}, "argument 'owner' of 'file': input should be a valid string (got 5.5)"),
    ("apt", {"name": ["a", 1]}, "argument 'name' of 'apt': input should be a valid string (got ['a', 1])"),
    ("get_url", {"url": "u", "dest": "d", "timeout": "ten"},
     "argument 'timeout' of 'get_url': input should be a valid number, unable to parse string as a number (got 'ten')"),
    ("lineinfile", {"line": "x"}, "module 'lineinfile' needs argument 'path'"),
    ("apt", {"nmae": "x"}, "module 'apt' has no argument 'nmae' (did you mean 'name'?)"),
    ("file", {"path": "{{ p }}", "state": "{{ s }}", "recurse": "{{ r }}"}, None),
    ("command", {"cmd": "true", "creates": "5"}, None),
])
def test_module_argument_lines(module: str, raw: dict[str, Any], line: str | None) -> None:
    spec = host_module(module)
    assert spec is not None
    if line is None:
        check_module_args(spec, raw, POS, module)
        return
    with pytest.raises(UserError) as exc:
        check_module_args(spec, raw, POS, module)
    assert line in str(exc.value)


@pytest.mark.parametrize(("stem", "raw", "line"), [
    ("debug", {"verbosity": "x"},
     "argument 'verbosity' of 'debug': input should be a valid integer, unable to parse string as an integer"),
    ("debug", {"verbosity": 1.5},
     "argument 'verbosity' of 'debug': input should be a valid integer, got a number with a fractional part"),
    ("debug", {"mgs": "x"}, "module 'debug' has no argument 'mgs'; expected one of: msg, var, verbosity"),
    ("template", {"src": "t.j2"}, "argument 'dest' of 'template': field required"),
    ("template", {"src": 5, "dest": "d"}, "argument 'src' of 'template': input should be a valid string"),
    ("template", {"src": "s", "dest": "d", "validate": 5},
     "argument 'validate' of 'template': input should be a valid string"),
    ("template", {"src": "s", "dest": "d", "validate": "a", "validate_cmd": "b"},
     "argument 'validate_cmd' of 'template': extra inputs are not permitted"),
    ("template", {"src": "s", "dest": "d", "owenr": "x"}, "module 'template' has no argument 'owenr' (did you mean "
     "'owner'?); expected one of: backup, dest, force, group, lstrip_blocks, mode, newline_sequence, "
     "output_encoding, owner, src, trim_blocks, validate_cmd"),
    ("assert", {"msg": "x"}, "argument 'that' of 'assert': field required"),
    ("set_fact", {"a": 1, "cacheable": "maybe"},
     "argument 'cacheable' of 'set_fact': input should be a valid boolean, unable to interpret input"),
    ("pause", {"seconds": "abc"},
     "argument 'seconds' of 'pause': input should be a valid number, unable to parse string as a number"),
    ("wait_for_connection", {"timeout": [1]},
     "argument 'timeout' of 'wait_for_connection': input should be a valid number"),
    ("template", {"src": "{{ s }}", "dest": "{{ d }}"}, None),
    ("set_fact", {"anything": 1, "cacheable": "no"}, None),
    ("assert", {"that": "x", "msg": "m", "quiet": "yes"}, None),
])
def test_action_argument_lines(stem: str, raw: dict[str, Any], line: str | None) -> None:
    args_type = _action_args(stem)
    if line is None:
        check_model_args(args_type, raw, POS, stem, None)
        return
    with pytest.raises(UserError) as exc:
        check_model_args(args_type, raw, POS, stem, None)
    assert line in str(exc.value)
