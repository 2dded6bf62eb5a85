"""Check and coerce task arguments against type annotations, without pydantic.

Importing pydantic costs a run ~65 ms of CPU and ~15 MB of memory, and task arguments need
little of it: this module covers the annotations that module `Args` and controller `ARGS`
use (str, int, float, bool, None, Optional/Union, Literal, list, dict, tuple, Any and
dataclasses) and copies pydantic v2's lax-mode decisions and error wording for them, which
the error lines users see are made of (`input should be a valid boolean`, `field required`...).

    validate(tp, value)        -> the coerced value (a dataclass: an instance), or ArgsError
    validate_model(cls, data)  -> the same for a controller action's ARGS (model wording)
    arg_fields(cls)            -> the argument fields of an Args/ARGS class: the one place that
                                  knows how such a class declares them

An argument class is a dataclass. A field with `metadata=alias("msg")` has a second name (either
is accepted; the alias wins, as with pydantic's populate_by_name); one with `metadata=EXTRAS`
collects every argument the class does not name (pydantic's extra="allow"); without one,
unknown arguments are errors (extra="forbid").
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import types
import typing
from collections import deque
from collections.abc import Callable, Iterator, KeysView, Mapping, ValuesView
from dataclasses import MISSING
from functools import cache
from typing import Any, NamedTuple

from provisioner.host.runtime import ModuleArgs, arg_names, class_defaults

Loc = tuple[str | int, ...]


class ErrorDetail(NamedTuple):
    loc: Loc     # where: field name, then list index / dict key / union member...
    type: str    # pydantic's error type: string_type, missing, literal_error...
    msg: str     # pydantic's message: "Input should be a valid string"


class ArgsError(ValueError):
    """Arguments that do not fit their annotations: `errors` in pydantic's order, the first as `loc`/`msg`."""

    def __init__(self, errors: list[ErrorDetail]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e.loc)) or 'value'}: {e.msg}" for e in errors))
        self.errors = errors

    @property
    def loc(self) -> Loc:
        return self.errors[0].loc

    @property
    def msg(self) -> str:
        return self.errors[0].msg

    @property
    def type(self) -> str:
        return self.errors[0].type


def _fail(kind: str, msg: str) -> typing.NoReturn:
    raise ArgsError([ErrorDetail((), kind, msg)])


def _within(exc: ArgsError, *prefix: str | int) -> list[ErrorDetail]:
    return [ErrorDetail((*prefix, *e.loc), e.type, e.msg) for e in exc.errors]


# -- declaring argument classes -------------------------------------------------------------

_ALIAS = "provision_alias"
_EXTRAS = "provision_extras"

# `field(default_factory=dict, metadata=EXTRAS)`: the field that gets every argument the class does not name
EXTRAS: Mapping[str, Any] = {_EXTRAS: True}


def alias(name: str) -> Mapping[str, Any]:
    """`field(default=..., metadata=alias("msg"))`: the argument `msg` also sets this field (and wins
    when both are given)."""
    return {_ALIAS: name}


class ArgField(NamedTuple):
    name: str
    annotation: Any               # resolved: list[str], not "list[str]"
    default: Any                  # MISSING when none
    default_factory: Any          # MISSING when none
    alias: str | None = None      # the other name the argument may be given by
    extras: bool = False          # collects the unnamed arguments

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is MISSING


@cache
def arg_fields(cls: type) -> tuple[ArgField, ...]:
    """The argument fields of an argument class, in declaration order, annotations resolved
    in the class's own module. The one function to change if Args stop being dataclasses."""
    # host modules import typing's names only for type checkers (importing typing costs every
    # host ~1.5 ms a run): the annotations are resolved with typing's names under the module's
    hints = typing.get_type_hints(cls, {**vars(typing), **vars(sys.modules[cls.__module__])})
    if not dataclasses.is_dataclass(cls):  # a host module's ModuleArgs (no dataclass on hosts)
        defaults = class_defaults(cls)
        return tuple(ArgField(name, hints.get(name, Any), defaults.get(name, MISSING), MISSING)
                     for name in arg_names(cls))
    return tuple(
        ArgField(f.name, hints.get(f.name, Any), f.default, f.default_factory,
                 f.metadata.get(_ALIAS), bool(f.metadata.get(_EXTRAS)))
        for f in dataclasses.fields(cls))


def _build(cls: type, values: dict[str, Any]) -> Any:
    return cls(**values)


# -- scalars, as pydantic's lax mode has them -------------------------------------------------

I64 = 2 ** 63
# what Rust's str::trim strips (Unicode White_Space); Python's str.strip() also takes \x1c-\x1f
_WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
               "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_INT_TEXT = re.compile(r"[+-]?([0-9_]+)(?:\.0+)?", re.ASCII)
_TRUE = frozenset(("1", "on", "t", "true", "y", "yes"))
_FALSE = frozenset(("0", "off", "f", "false", "n", "no"))

STRING_TYPE = "Input should be a valid string"
INT_TYPE = "Input should be a valid integer"
INT_PARSING = "Input should be a valid integer, unable to parse string as an integer"
FLOAT_TYPE = "Input should be a valid number"
FLOAT_PARSING = "Input should be a valid number, unable to parse string as a number"
BOOL_TYPE = "Input should be a valid boolean"
BOOL_PARSING = "Input should be a valid boolean, unable to interpret input"


def _underscores_ok(digits: str) -> bool:
    return not (digits.startswith("_") or digits.endswith("_") or "__" in digits)


def _text(value: str | bytes | bytearray, kind: str, msg: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode()
    except UnicodeDecodeError:
        _fail(kind, msg)


def v_str(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)   # a plain str, as pydantic gives (e.g. for a marked-unsafe string)
    if isinstance(value, (bytes, bytearray)):
        return _text(value, "string_unicode",
                     "Input should be a valid string, unable to parse raw data as a unicode string")
    _fail("string_type", STRING_TYPE)


def v_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail("finite_number", "Input should be a finite number")
        if not value.is_integer():
            _fail("int_from_float", "Input should be a valid integer, got a number with a fractional part")
        if not -I64 < value < I64:
            _fail("int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size")
        return int(value)
    if isinstance(value, (str, bytes)):
        text = _text(value, "int_parsing", INT_PARSING).strip(_WHITESPACE)
        m = _INT_TEXT.fullmatch(text)
        if m is None or not _underscores_ok(m.group(1)):
            _fail("int_parsing", INT_PARSING)
        try:
            return int(text.split(".", 1)[0].replace("_", ""))
        except ValueError:  # over Python's 4300-digit limit for int(str)
            _fail("int_parsing", INT_PARSING)
    _fail("int_type", INT_TYPE)


def v_float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            _fail("float_type", FLOAT_TYPE)
    if isinstance(value, (str, bytes)):
        text = _text(value, "float_parsing", FLOAT_PARSING).strip(_WHITESPACE)
        if not text.isascii() or not _underscores_ok(text):
            _fail("float_parsing", FLOAT_PARSING)
        try:
            return float(text.replace("_", ""))
        except ValueError:
            _fail("float_parsing", FLOAT_PARSING)
    _fail("float_type", FLOAT_TYPE)


def v_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, (str, bytes)):
        text = _text(value, "bool_parsing", BOOL_PARSING).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        _fail("bool_parsing", BOOL_PARSING)
    if isinstance(value, (int, float)):
        if value == 0 or value == 1:
            return bool(value)
        if isinstance(value, int) and -I64 <= value < I64:
            _fail("bool_parsing", BOOL_PARSING)
        if isinstance(value, float) and value.is_integer() and -I64 < value < I64:
            _fail("bool_parsing", BOOL_PARSING)
    _fail("bool_type", BOOL_TYPE)


def v_none(value: Any) -> None:
    if value is not None:
        _fail("none_required", "Input should be None")


def v_any(value: Any) -> Any:
    return value


# -- building a validator for an annotation -----------------------------------------------------

Validator = Callable[[Any], Any]
_SCALARS: dict[Any, Validator] = {str: v_str, int: v_int, float: v_float, bool: v_bool,
                                  type(None): v_none, None: v_none, Any: v_any, object: v_any}
_EXACT: dict[Any, Callable[[Any], bool]] = {
    str: lambda v: isinstance(v, str),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, float),
    bool: lambda v: isinstance(v, bool),
}
_LIST_LIKE = (list, tuple, set, frozenset, deque, KeysView, ValuesView, Iterator)


def validator(tp: Any) -> Validator:
    """The validator of an annotation (built once per annotation)."""
    try:
        return _validator_cached(tp, False)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _make(tp, False)


def _validator_cached(tp: Any, model: bool) -> Validator:
    # keyed by repr too: `str | int == int | str`, but pydantic tries the members in their order
    return _validator_keyed(tp, repr(tp), model)


@cache
def _validator_keyed(tp: Any, key: str, model: bool) -> Validator:
    return _make(tp, model)


def _make(tp: Any, model: bool) -> Validator:
    scalar = _SCALARS.get(tp) if _hashable(tp) else None
    if scalar is not None:
        return scalar
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union(args)
    if origin is typing.Literal:
        return _literal(args)
    if tp is list or origin is list:
        return _list(validator(args[0]) if args else v_any)
    if tp is dict or origin is dict:
        return _dict(validator(args[0]) if args else v_any, validator(args[1]) if args else v_any)
    if tp is tuple or origin is tuple:
        return _tuple(args)
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, ModuleArgs)):
        return _object(tp, model)
    raise TypeError(f"provisioner.validate cannot check values of type {tp!r}")


def _hashable(tp: Any) -> bool:
    try:
        hash(tp)
    except TypeError:
        return False
    return True


def _tag(tp: Any) -> str:
    """How pydantic names a union member in an error's loc: 'str', 'list[str]', "literal['a','b']"."""
    if typing.get_origin(tp) is typing.Literal:
        return "literal[" + ",".join(repr(v) for v in typing.get_args(tp)) + "]"
    args = typing.get_args(tp)
    if args:
        return f"{_tag(typing.get_origin(tp))}[{','.join(_tag(a) for a in args)}]"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", repr(tp))


def _union(members: tuple[Any, ...]) -> Validator:
    nullable = type(None) in members
    members = tuple(m for m in members if m is not type(None))
    if len(members) == 1:
        inner = validator(members[0])
    else:
        inner = _smart_union(members)
    if not nullable:
        return inner

    def optional(value: Any) -> Any:
        return None if value is None else inner(value)
    return optional


def _smart_union(members: tuple[Any, ...]) -> Validator:
    """pydantic's smart mode: a member the value is exactly an instance of wins; then the
    first member that accepts it, in order; failing all, every member's errors."""
    checks = [(_exact_check(m), validator(m)) for m in members]
    tagged = [(_tag(m), validator(m)) for m in members]

    def union(value: Any) -> Any:
        for exact, check in checks:
            if exact is not None and exact(value):
                return check(value)
        errors: list[ErrorDetail] = []
        for tag, check in tagged:
            try:
                return check(value)
            except ArgsError as exc:
                errors += _within(exc, tag)
        raise ArgsError(errors)
    return union


def _exact_check(tp: Any) -> Callable[[Any], bool] | None:
    if _hashable(tp) and tp in _EXACT:
        return _EXACT[tp]
    if typing.get_origin(tp) is typing.Literal:
        allowed = typing.get_args(tp)
        return lambda v: any(type(v) is type(a) and v == a for a in allowed)
    return None


def _literal(allowed: tuple[Any, ...]) -> Validator:
    shown = [repr(a) for a in allowed]
    expected = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    msg = f"Input should be {expected}"
    texts = {a: a for a in allowed if isinstance(a, str)}
    others = [a for a in allowed if not isinstance(a, (str, bytes))]

    def literal(value: Any) -> Any:
        if isinstance(value, str):
            if value in texts:
                return texts[value]
        elif not isinstance(value, bytes):
            if isinstance(value, int) and not -I64 <= value < I64 and any(type(a) is int for a in others):
                _fail("int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size")
            for a in others:
                if value == a:
                    return a
        _fail("literal_error", msg)
    return literal


def _list(item: Validator) -> Validator:
    def list_(value: Any) -> list[Any]:
        if not isinstance(value, _LIST_LIKE) or isinstance(value, (str, bytes, Mapping)):
            _fail("list_type", "Input should be a valid list")
        out: list[Any] = []
        errors: list[ErrorDetail] = []
        for i, x in enumerate(value):
            try:
                out.append(item(x))
            except ArgsError as exc:
                errors += _within(exc, i)
        if errors:
            raise ArgsError(errors)
        return out
    return list_


def _dict(key: Validator, val: Validator) -> Validator:
    def dict_(value: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            _fail("dict_type", "Input should be a valid dictionary")
        out: dict[Any, Any] = {}
        errors: list[ErrorDetail] = []
        for k, x in value.items():
            try:
                kk = key(k)
            except ArgsError as exc:
                errors += _within(exc, k, "[key]")
            try:
                vv = val(x)
            except ArgsError as exc:
                errors += _within(exc, k)
            if not errors:
                out[kk] = vv
        if errors:
            raise ArgsError(errors)
        return out
    return dict_


def _tuple(args: tuple[Any, ...]) -> Validator:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        items = _list(validator(args[0]) if args else v_any)

        def variadic(value: Any) -> tuple[Any, ...]:
            try:
                return tuple(items(value))
            except ArgsError as exc:
                if exc.type == "list_type":
                    _fail("tuple_type", "Input should be a valid tuple")
                raise
        return variadic
    checks = [validator(a) for a in args]

    def fixed(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, _LIST_LIKE) or isinstance(value, (str, bytes, Mapping)):
            _fail("tuple_type", "Input should be a valid tuple")
        given = list(value)
        if len(given) > len(checks):
            _fail("too_long",
                  f"Tuple should have at most {len(checks)} items after validation, not {len(given)}")
        out: list[Any] = []
        errors: list[ErrorDetail] = []
        for i, check in enumerate(checks):
            if i >= len(given):
                errors.append(ErrorDetail((i,), "missing", "Field required"))
                continue
            try:
                out.append(check(given[i]))
            except ArgsError as exc:
                errors += _within(exc, i)
        if errors:
            raise ArgsError(errors)
        return tuple(out)
    return fixed


def _object(cls: type, model: bool) -> Validator:
    """A dataclass from a dict: fields in order (missing ones are errors), then the arguments it
    does not name (collected by its extras() field, or errors: pydantic's "unexpected keyword
    argument" for a dataclass, "extra inputs are not permitted" for a model)."""
    specs = []
    collect: str | None = None
    for f in arg_fields(cls):
        if f.extras:
            collect = f.name
        else:
            specs.append((f.name, f.alias, f.required, validator(f.annotation)))
    if model:
        not_dict = f"Input should be a valid dictionary or instance of {cls.__name__}"
        extra = ("extra_forbidden", "Extra inputs are not permitted")
    else:
        not_dict = f"Input should be a dictionary or an instance of {cls.__name__}"
        extra = ("unexpected_keyword_argument", "Unexpected keyword argument")

    def object_(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            _fail("model_type" if model else "dataclass_type", not_dict)
        bad_keys = [ErrorDetail((k,), "invalid_key", "Keys should be strings") for k in value
                    if not isinstance(k, str)]
        values: dict[str, Any] = {}
        errors: list[ErrorDetail] = []
        used: set[str] = set()
        for name, other, required, check in specs:
            key = other if other is not None and other in value else name
            if key not in value:
                if required:
                    errors.append(ErrorDetail((other or name,), "missing", "Field required"))
                continue
            used.add(key)
            try:
                values[name] = check(value[key])
            except ArgsError as exc:
                errors += _within(exc, key)
        if bad_keys:  # as pydantic: the fields' own errors first, then the keys that are not strings
            raise ArgsError(errors + bad_keys)
        unnamed = {k: v for k, v in value.items() if k not in used} if len(used) < len(value) else {}
        if collect is not None:
            values[collect] = unnamed
        else:
            errors += [ErrorDetail((k,), *extra) for k in unnamed]
        if errors:
            raise ArgsError(errors)
        return _build(cls, values)
    return object_


# -- the entry points -------------------------------------------------------------------------

def validate(tp: Any, value: Any) -> Any:
    """`value` checked and coerced as `tp` says (a dataclass: an instance of it), or ArgsError."""
    return validator(tp)(value)


def validate_model(cls: type, data: Any) -> Any:
    """A controller action's ARGS from its arguments: as validate(), in the wording of a pydantic
    model (which these classes were): "extra inputs are not permitted" for an unknown argument."""
    return _validator_cached(cls, True)(data)


def as_dict(args: Any) -> dict[str, Any]:
    """An argument class instance as plain data (what goes to the host)."""
    return args.as_dict() if isinstance(args, ModuleArgs) else dataclasses.asdict(args)


__all__ = ["EXTRAS", "ArgField", "ArgsError", "ErrorDetail", "alias", "arg_fields", "as_dict",
           "validate", "validate_model", "validator"]
