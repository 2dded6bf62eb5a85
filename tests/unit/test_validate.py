"""provisioner.validate: the task-argument checks that took pydantic's place on the controller.

pydantic is still installed (compat.py uses it), so most cases here ask it what it decides for
the same annotation and value, in lax mode, and expect the same coerced value or the same
errors (loc, type, message), in the same order: the first error is the line a user sees. The
controller actions' old pydantic models are kept below as the reference for their ARGS. The
table at the end pins the wording on its own, should pydantic ever leave.
"""

from __future__ import annotations

import dataclasses
import typing
from collections import deque
from types import MappingProxyType
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from provisioner.modules import host_module, host_modules
from provisioner.validate import EXTRAS, ArgsError, alias, arg_fields, validate, validate_model


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
    if dataclasses.is_dataclass(result):
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


@pytest.mark.parametrize("name", sorted({spec.name for spec in host_modules().values()}))
def test_module_args_are_decided_as_pydantic_decided(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = host_module(name)
    assert spec is not None
    monkeypatch.setattr(spec.args_type, "__pydantic_config__", ConfigDict(extra="forbid"), raising=False)
    adapter = TypeAdapter(spec.args_type)
    cases = _module_cases(spec.args_type)
    differ = [(c, outcome(adapter.validate_python, c), outcome(lambda x: validate(spec.args_type, x), c))
              for c in cases]
    assert [d for d in differ if d[1] != d[2]] == []
