"""Jinja2 as Ansible users know it: StrictUndefined, native types, the usual filters and tests.

Variables are resolved lazily: a variable whose value is itself a template is rendered
when a template reads it (with loop detection), so `cuda_home: /usr/local/cuda-{{ v }}`
works in any layer. Variable precedence is documented in `Scope` (lowest first).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import shlex
import threading
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.runtime
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from provisioner.errors import TaskFailed, did_you_mean
from provisioner.load.yamlsrc import UnsafeStr


class Omit:
    """The `omit` placeholder: an argument set to it is dropped."""

    def __repr__(self) -> str:
        return "omit"


OMIT = Omit()
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, UnsafeStr) and any(m in value for m in _TEMPLATE_MARKS)


def mark_unsafe(value: Any) -> Any:
    """Values that must never be rendered again - what a host sent (registered results, facts) and
    what was rendered once already (set_fact, loop items): output that prints
    `{{ lookup('pipe', ...) }}` must not run a command on the controller."""
    if isinstance(value, str):
        return value if isinstance(value, UnsafeStr) else UnsafeStr(value)
    if isinstance(value, Mapping):
        return {mark_unsafe(k): mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mark_unsafe(v) for v in value]
    return value


# -- version comparison ---------------------------------------------------------------
def _version_key(v: Any) -> list[tuple[int, Any]]:
    parts = re.split(r"[.\-+_~]", str(v).strip().lstrip("vV"))
    key: list[tuple[int, Any]] = []
    for p in parts:
        for chunk in re.findall(r"\d+|[A-Za-z]+", p):
            key.append((1, int(chunk)) if chunk.isdigit() else (0, chunk))
    return key


def version_compare(value: Any, other: Any, op: str = "eq", strict: bool = False) -> bool:
    ops = {"eq": "==", "==": "==", "ne": "!=", "!=": "!=", "<>": "!=", "lt": "<", "<": "<",
           "le": "<=", "<=": "<=", "gt": ">", ">": ">", "ge": ">=", ">=": ">="}
    if op not in ops:
        raise TaskFailed(f"version test: unknown operator {op!r}")
    a, b = _version_key(value), _version_key(other)
    # pad with zeros so 12.4 == 12.4.0
    n = max(len(a), len(b))
    a += [(1, 0)] * (n - len(a))
    b += [(1, 0)] * (n - len(b))
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[ops[op]]


# -- filters -----------------------------------------------------------------------------
_BOOL_WORDS = {"1", "0", "yes", "no", "true", "false", "on", "off", "y", "n", "t", "f", ""}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("1", "yes", "true", "on", "y", "t")


def _regex_search(value: Any, pattern: str, *groups: str, ignorecase: bool = False,
                  multiline: bool = False) -> Any:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    m = re.search(pattern, str(value), flags)
    if not m:
        return None
    if not groups:
        return m.group(0)
    out = []
    for g in groups:
        g = g[1:] if g.startswith("\\") else g
        out.append(m.group(int(g) if g.isdigit() else g.strip("<>?P")))
    return out


def _regex_replace(value: Any, pattern: str = "", replacement: str = "", ignorecase: bool = False,
                   multiline: bool = False) -> str:
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    return re.sub(pattern, replacement, str(value), flags=flags)


def _combine(*dicts: Any, recursive: bool = False, list_merge: str = "replace") -> dict[str, Any]:
    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            if recursive and isinstance(out.get(k), dict) and isinstance(v, dict):
                out[k] = merge(out[k], v)
            elif list_merge == "append" and isinstance(out.get(k), list) and isinstance(v, list):
                out[k] = out[k] + v
            else:
                out[k] = v
        return out
    result: dict[str, Any] = {}
    for d in dicts:
        for item in (d if isinstance(d, list) else [d]):
            result = merge(result, dict(item))
    return result


def _flatten(value: Any, levels: int | None = None) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if isinstance(item, (list, tuple)) and (levels is None or levels > 0):
            out.extend(_flatten(item, None if levels is None else levels - 1))
        elif item is not None:
            out.append(item)
    return out


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise TaskFailed(msg or "mandatory variable is not defined")
    return value


def _to_yaml(value: Any, **kw: Any) -> str:
    return yaml.safe_dump(_plain(value), default_flow_style=kw.pop("default_flow_style", None), **kw)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@jinja2.pass_context  # not folded into a constant at compile time: a random salt each call
def _password_hash(ctx: Any, *args: Any, **kw: Any) -> str:
    from provisioner.passwords import password_hash
    return password_hash(*args, **kw)


def _subelements_filter(items: Any, key: str, skip_missing: bool) -> list[Any]:
    from provisioner.lookups import subelements
    return subelements(items, key, skip_missing)


FILTERS: dict[str, Any] = {
    "bool": _bool,
    "version": version_compare,
    "version_compare": version_compare,
    "regex_search": _regex_search,
    "regex_replace": _regex_replace,
    "regex_findall": lambda v, p, ignorecase=False: re.findall(p, str(v), re.I if ignorecase else 0),
    "regex_escape": lambda v: re.escape(str(v)),
    "to_json": lambda v, **kw: json.dumps(_plain(v), **kw),
    "to_nice_json": lambda v, indent=4, **kw: json.dumps(_plain(v), indent=indent, sort_keys=True, **kw),
    "from_json": lambda v: json.loads(v),
    "to_yaml": _to_yaml,
    "to_nice_yaml": lambda v, indent=2, **kw: _to_yaml(v, indent=indent, default_flow_style=False),
    "from_yaml": lambda v: yaml.safe_load(v),
    "basename": lambda v: os.path.basename(str(v)),
    "dirname": lambda v: os.path.dirname(str(v)),
    "expanduser": lambda v: os.path.expanduser(str(v)),
    "realpath": lambda v: os.path.realpath(str(v)),
    "splitext": lambda v: list(os.path.splitext(str(v))),
    "quote": lambda v: shlex.quote(str(v)),
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(),
    "hash": lambda v, algo="sha1": hashlib.new(algo, str(v).encode()).hexdigest(),
    "checksum": lambda v: hashlib.sha1(str(v).encode()).hexdigest(),
    "md5": lambda v: hashlib.md5(str(v).encode()).hexdigest(),
    "sha1": lambda v: hashlib.sha1(str(v).encode()).hexdigest(),
    "combine": _combine,
    "dict2items": lambda d, key_name="key", value_name="value": [
        {key_name: k, value_name: v} for k, v in d.items()],
    "items2dict": lambda items, key_name="key", value_name="value": {
        i[key_name]: i[value_name] for i in items},
    "mandatory": _mandatory,
    "ternary": lambda v, a, b, none_val=None: (none_val if v is None and none_val is not None
                                               else a if v else b),
    "flatten": _flatten,
    "unique": lambda v: list(dict.fromkeys(v)),
    "difference": lambda a, b: [x for x in a if x not in b],
    "intersect": lambda a, b: [x for x in a if x in b],
    "union": lambda a, b: list(dict.fromkeys(list(a) + list(b))),
    "symmetric_difference": lambda a, b: [x for x in a if x not in b] + [x for x in b if x not in a],
    "split": lambda v, sep=None, maxsplit=-1: str(v).split(sep, maxsplit),
    "type_debug": lambda v: type(v).__name__,
    "zip": lambda a, *b: [list(t) for t in zip(a, *b)],
    "password_hash": _password_hash,
    "subelements": lambda items, key, skip_missing=False: _subelements_filter(items, key, skip_missing),
    "product": lambda a, *b, repeat=1: [list(t) for t in itertools.product(a, *b, repeat=repeat)],
    "shuffle": lambda v: list(v),
    "strftime": lambda fmt, t=None: __import__("time").strftime(fmt, __import__("time").localtime(t)),
}


def _test_result(value: Any, key: str) -> bool:
    return isinstance(value, Mapping) and bool(value.get(key))


TESTS: dict[str, Any] = {
    "version": version_compare,
    "version_compare": version_compare,
    "match": lambda v, p, ignorecase=False, multiline=False: re.match(
        p, str(v), (re.I if ignorecase else 0) | (re.M if multiline else 0)) is not None,
    "search": lambda v, p, ignorecase=False, multiline=False: re.search(
        p, str(v), (re.I if ignorecase else 0) | (re.M if multiline else 0)) is not None,
    "regex": lambda v, p, ignorecase=False, multiline=False, match_type="search": getattr(re, match_type)(
        p, str(v), (re.I if ignorecase else 0) | (re.M if multiline else 0)) is not None,
    "failed": lambda v: _test_result(v, "failed"),
    "failure": lambda v: _test_result(v, "failed"),
    "succeeded": lambda v: not _test_result(v, "failed"),
    "success": lambda v: not _test_result(v, "failed"),
    "successful": lambda v: not _test_result(v, "failed"),
    "changed": lambda v: _test_result(v, "changed"),
    "change": lambda v: _test_result(v, "changed"),
    "skipped": lambda v: _test_result(v, "skipped"),
    "skip": lambda v: _test_result(v, "skipped"),
    "file": lambda v: os.path.isfile(str(v)),
    "directory": lambda v: os.path.isdir(str(v)),
    "exists": lambda v: os.path.exists(str(v)),
    "abs": lambda v: os.path.isabs(str(v)),
    "subset": lambda a, b: set(a) <= set(b),
    "superset": lambda a, b: set(a) >= set(b),
    "contains": lambda a, b: b in a,
    "truthy": lambda v: bool(v),
    "falsy": lambda v: not v,
}


def _lookup_context(ctx: jinja2.runtime.Context) -> Any:
    from provisioner.lookups import LookupContext

    parent = ctx.parent
    variables = parent.variables if isinstance(parent, _Context) else parent
    return LookupContext(variables)


@jinja2.pass_context
def _lookup(ctx: jinja2.runtime.Context, name: str, *terms: Any, **kw: Any) -> Any:
    from provisioner.lookups import run_lookup

    return run_lookup(_lookup_context(ctx), name, terms, kw)


@jinja2.pass_context
def _query(ctx: jinja2.runtime.Context, name: str, *terms: Any, **kw: Any) -> Any:
    from provisioner.lookups import run_lookup

    return run_lookup(_lookup_context(ctx), name, terms, {**kw, "wantlist": True})


class _Undefined(jinja2.ChainableUndefined, jinja2.StrictUndefined):
    """Strict when used, but `a.b.c | default(x)` and `a.b is defined` work when `a` is missing, as in Ansible."""


class _Env(ImmutableSandboxedEnvironment):
    """Sandboxed: templates may read variables and call filters, not reach into Python internals."""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = _Env(undefined=_Undefined, keep_trailing_newline=True,
               extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    env.globals.update({
        "lookup": _lookup,
        "query": _query,
        "q": _query,
        "omit": OMIT,
    })
    return env


@lru_cache(maxsize=4096)
def _compiled_template(source: str) -> jinja2.Template:
    return environment().from_string(source)


def file_template(source: str, trim_blocks: bool, lstrip_blocks: bool) -> jinja2.Template:
    """A template file's compiled form, once per run for all hosts (compiling one costs ~5 ms).
    Under a lock: the hosts reach a template task together, and unlocked each of the first few
    compiled it (4 of 50 did)."""
    with _FILE_TEMPLATE_LOCK:
        return _file_template(source, trim_blocks, lstrip_blocks)


_FILE_TEMPLATE_LOCK = threading.Lock()


@lru_cache(maxsize=256)
def _file_template(source: str, trim_blocks: bool, lstrip_blocks: bool) -> jinja2.Template:
    return environment().overlay(trim_blocks=trim_blocks, lstrip_blocks=lstrip_blocks).from_string(source)


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> jinja2.Template:
    return environment().compile_expression(expr)._template  # type: ignore[attr-defined]


_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)


class LazyVars(Mapping[str, Any]):
    """A read-only view of layered variables that renders templated values on access."""

    def __init__(self, layers: list[Mapping[str, Any]], templar: Templar) -> None:
        self._layers = layers  # highest precedence LAST
        self._templar = templar
        self._resolving: set[str] = set()
        self._cache: dict[str, Any] = {}
        self.secret_used = False  # a vaulted value was read: the task that reads it is no_log

    def raw(self, key: str) -> Any:
        for layer in reversed(self._layers):
            if key in layer:
                return layer[key]
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        value = self.raw(key)
        if getattr(value, "holds_secret", False):
            self.secret_used = True
        elif isinstance(value, Mapping) and not isinstance(value, dict):
            value = _Watched(value, self)  # hostvars: a secret read through it is read by this task
        if key in self._resolving:
            raise TaskFailed(f"variable {key!r} refers to itself")
        self._resolving.add(key)
        try:
            value = self._templar.render(value, self)
        finally:
            self._resolving.discard(key)
        self._cache[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer in self._layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in reversed(self._layers):
            for k in layer:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Watched(Mapping[str, Any]):
    """A lazy view (hostvars, one host's variables) that tells `owner` when a vaulted value is read."""

    def __init__(self, inner: Mapping[str, Any], owner: LazyVars) -> None:
        self._inner = inner
        self._owner = owner

    def __getitem__(self, key: str) -> Any:
        value = self._inner[key]
        if getattr(value, "holds_secret", False) or getattr(self._inner, "secret_used", False):
            self._owner.secret_used = True
        if isinstance(value, Mapping) and not isinstance(value, dict):
            return _Watched(value, self._owner)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._inner

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


class _Context(dict):  # type: ignore[type-arg]
    """What Jinja sees: variables first, then the environment's globals."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        super().__init__()
        self.variables = variables

    def __contains__(self, key: object) -> bool:
        return key in self.variables or key in environment().globals

    def __getitem__(self, key: str) -> Any:
        try:
            return self.variables[key]
        except KeyError:  # not a variable: a global (omit, lookup...), as __contains__ says
            return environment().globals[key]


def render_compiled(tmpl: jinja2.Template, variables: Mapping[str, Any]) -> Any:
    """A compiled template's output, its names read from `variables` (a LazyVars renders what is
    read) with the environment's globals behind them."""
    ctx = tmpl.new_context(_Context(variables), shared=True)  # type: ignore[arg-type]
    return tmpl.environment.concat(tmpl.root_render_func(ctx))  # type: ignore[attr-defined]


class Templar:
    """Renders strings, lists and dicts against a variable mapping."""

    def render(self, value: Any, variables: Mapping[str, Any]) -> Any:
        if isinstance(value, str):
            if not is_template(value):
                return value
            return self.render_string(value, variables)
        if isinstance(value, Mapping):
            if not isinstance(value, dict):  # a lazy view (hostvars, a host's variables): renders what is read
                return value
            out = {self.render(k, variables): self.render(v, variables) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not OMIT}
        if isinstance(value, (list, tuple)):
            return [v for v in (self.render(v, variables) for v in value) if v is not OMIT]
        return value

    def render_string(self, source: str, variables: Mapping[str, Any]) -> Any:
        m = _SINGLE_EXPR.match(source)
        try:
            if m:
                value = self._native(self.evaluate(m.group("expr"), variables))
                if isinstance(value, str):  # "{{ name }}\n" keeps its newline, as Jinja's text does
                    value = value.__class__(source[:m.start("expr") - 2] + value + source[m.end("expr") + 2:])
                return value
            return render_compiled(_compiled_template(source), variables)
        except Exception as exc:
            raise _template_error(exc, source) from None

    def evaluate(self, expr: str, variables: Mapping[str, Any]) -> Any:
        """Evaluate a bare Jinja expression (`when:`, `until:`, `changed_when:`) to a value."""
        try:
            tmpl = _compiled_expression(expr.strip())
            ctx = tmpl.new_context(_Context(variables), shared=True)  # type: ignore[arg-type]
            for _ in tmpl.root_render_func(ctx):  # type: ignore[attr-defined]
                pass
            result = ctx.vars["result"]
        except Exception as exc:
            raise _template_error(exc, expr) from None
        if isinstance(result, jinja2.Undefined):
            name = getattr(result, "_undefined_name", None)
            what = f"'{name}'" if name else "value"
            raise TaskFailed(f"undefined variable: {what} in {expr.strip()!r}")
        return result

    def condition(self, expr: Any, variables: Mapping[str, Any]) -> bool:
        if isinstance(expr, bool):
            return expr
        if expr is None:
            return False
        text = str(expr).strip()
        m = _SINGLE_EXPR.match(text)
        if m:  # people write when: "{{ x }}" too
            text = m.group("expr")
        value = self.evaluate(text, variables)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _bool(value)
        if value is None or isinstance(value, (int, float)):
            return bool(value)
        # as Ansible 2.19 does: a string or a list is no answer to "when"
        raise TaskFailed(f"conditional {text!r} gave {type(value).__name__} {str(value)[:60]!r}, not true or "
                            "false: compare it (== ...), or test it (is defined, | length > 0)")

    @staticmethod
    def _native(value: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            raise TaskFailed("undefined value")
        if isinstance(value, (LazyVars, _Watched)):
            return dict(value)
        return value


_USER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError)


def _template_error(exc: Exception, source: str) -> Exception:
    """The sentence for what went wrong in a template; a bug elsewhere keeps its own exception."""
    where = f"in {source.strip()!r}"
    if isinstance(exc, TaskFailed):
        return exc
    if isinstance(exc, jinja2.UndefinedError):
        return TaskFailed(f"undefined variable: {_undefined_msg(exc)} {where}")
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TaskFailed(f"template syntax error: {exc.message} {where}")
    if isinstance(exc, _USER_ERRORS):
        return TaskFailed(f"template error: {exc.__class__.__name__}: {exc} {where}")
    return exc


def _undefined_msg(exc: jinja2.UndefinedError) -> str:
    msg = str(exc.message or exc)
    m = re.match(r"'(\w+)' is undefined", msg)
    return f"'{m.group(1)}'" if m else msg


# -- static analysis: which variables a template needs -------------------------------------
_GUARD_FILTERS = {"default", "d", "mandatory"}
_GUARD_TESTS = {"defined", "undefined", "none"}


@lru_cache(maxsize=8192)
def referenced_names(source: str, expression: bool = False) -> frozenset[str]:
    """Top-level variable names a template or expression reads without a default/defined guard."""
    env = environment()
    text = "{{ " + source + " }}" if expression else source
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TaskFailed(f"template syntax error: {exc.message} in {source.strip()!r}") from None
    for node in ast.find_all((jinja2.nodes.Filter, jinja2.nodes.Test)):
        kind, known = ("filter", env.filters) if isinstance(node, jinja2.nodes.Filter) else ("test", env.tests)
        if node.name not in known:
            raise TaskFailed(f"unknown {kind} {node.name!r}{did_you_mean(node.name, known)} in {source.strip()!r}")
    declared = {n.name for n in ast.find_all(jinja2.nodes.Name) if n.ctx in ("store", "param")}
    guarded: set[int] = set()
    for node in ast.find_all((jinja2.nodes.Filter, jinja2.nodes.Test)):
        if node.name in (_GUARD_FILTERS if isinstance(node, jinja2.nodes.Filter) else _GUARD_TESTS):
            for inner in node.node.find_all(jinja2.nodes.Name) if node.node is not None else []:
                guarded.add(id(inner))
            if isinstance(node.node, jinja2.nodes.Name):
                guarded.add(id(node.node))
    names = set()
    for n in ast.find_all(jinja2.nodes.Name):
        if n.ctx == "load" and id(n) not in guarded and n.name not in declared:
            names.add(n.name)
    return frozenset(names - set(env.globals))
