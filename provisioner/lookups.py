"""Lookup plugins, run on the controller as in Ansible: `lookup(name, ...)`, `query(name, ...)`.

Each lookup returns a list; `lookup()` then gives what Ansible 2.19 gives: nothing -> [],
one value -> that value, several strings -> joined with commas, else the list. Relative
paths are searched as Ansible does: the role's `<kind>/` and dir, then the playbook's.
"""

from __future__ import annotations

import glob
import os
import random
import string
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from provisioner.errors import TaskFailed, did_you_mean

Lookup = Callable[["LookupContext", list[Any], dict[str, Any]], list[Any]]


class LookupContext:
    """What a lookup may read: the task's variables (rendered when read) and its search paths."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables

    def _get(self, name: str) -> Any:
        try:
            return self.variables.get(name)
        except TaskFailed:
            return None

    @property
    def basedir(self) -> Path:
        """Relative paths of `password` and the cwd of `pipe`/`lines`: the playbook's directory."""
        return Path(str(self._get("playbook_dir") or os.getcwd()))

    def search_dirs(self, kind: str) -> list[Path]:
        bases = [Path(str(p)) for p in (self._get("role_path"), self._get("playbook_dir") or os.getcwd()) if p]
        return [d for base in bases for d in (base / kind, base)]

    def find(self, kind: str, name: str) -> Path | None:
        path = Path(name).expanduser()
        if path.is_absolute():
            return path if path.exists() else None
        for d in self.search_dirs(kind):
            if (d / name).exists():
                return d / name
        return None


def _flat(terms: list[Any]) -> list[Any]:
    out: list[Any] = []
    for t in terms:
        out.extend(t if isinstance(t, list) else [t])
    return out


def _env(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    return [os.environ.get(str(t), kw.get("default", "")) for t in _flat(terms)]


def _file(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    out = []
    for t in _flat(terms):
        path = ctx.find("files", str(t))
        if path is None:
            raise TaskFailed(f"lookup('file'): could not find {t!r} (searched {_shown(ctx, 'files')})")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TaskFailed(f"lookup('file'): cannot read {path}: {exc.strerror}") from None
        if kw.get("lstrip"):
            text = text.lstrip()
        out.append(text.rstrip() if kw.get("rstrip", True) else text)
    return out


def _shown(ctx: LookupContext, kind: str) -> str:
    return ", ".join(str(d) for d in ctx.search_dirs(kind))


def _fileglob(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    """Files (not directories) matching each pattern; a relative pattern is tried in each search
    directory in turn and the first that matches anything wins, as in Ansible."""
    out: list[str] = []
    for t in _flat(terms):
        pattern = os.path.expanduser(str(t))
        if os.path.isabs(pattern):
            dirs = [Path(os.path.dirname(pattern))]
        elif os.path.dirname(pattern):
            found = ctx.find("files", os.path.dirname(pattern))
            dirs = [found] if found is not None else []
        else:
            dirs = ctx.search_dirs("files")
        for d in dirs:
            # glob's order, unsorted, as Ansible's
            hits = [p for p in glob.glob(os.path.join(str(d), os.path.basename(pattern))) if os.path.isfile(p)]
            if hits:
                out.extend(hits)
                break
    return out


def _first_found(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    files: list[str] = []
    paths: list[str] = []
    for t in _flat(terms):
        if isinstance(t, Mapping):
            files.extend(str(f) for f in t.get("files", []))
            paths.extend(str(p) for p in t.get("paths", []))
        else:
            files.append(str(t))
    files += [str(f) for f in kw.get("files", [])]
    paths += [str(p) for p in kw.get("paths", [])]
    candidates = [os.path.join(p, f) for p in paths for f in files] if paths else files
    for c in candidates:
        found = ctx.find("files", c)
        if found is not None:
            return [str(found)]
    if kw.get("skip"):
        return []
    raise TaskFailed(f"lookup('first_found'): none of {candidates} was found")


def _items(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    return _flat(terms)


def _shell_lines(name: str, ctx: LookupContext, terms: list[Any]) -> list[str]:
    out = []
    for t in _flat(terms):
        proc = subprocess.run(str(t), shell=True, cwd=ctx.basedir, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise TaskFailed(f"lookup('{name}'): {t!r} returned {proc.returncode}: {proc.stderr.strip()[:200]}")
        out.append(proc.stdout)
    return out


def _pipe(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    return [o.rstrip() for o in _shell_lines("pipe", ctx, terms)]


def _lines(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    return [ln for o in _shell_lines("lines", ctx, terms) for ln in o.splitlines()]


def _vars(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    out = []
    for t in _flat(terms):
        name = str(t)
        if name in ctx.variables:
            out.append(ctx.variables[name])
        elif "default" in kw:
            out.append(kw["default"])
        else:
            raise TaskFailed(f"lookup('vars'): no variable named {name!r}"
                                f"{did_you_mean(name, set(ctx.variables))}")
    return out


def _dict(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for t in terms:
        if not isinstance(t, Mapping):
            raise TaskFailed(f"lookup('dict') needs a mapping, got {type(t).__name__}")
        out.extend({"key": k, "value": v} for k, v in t.items())
    return out


def _template(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    from provisioner.template import file_template, render_compiled

    out = []
    extra = kw.get("template_vars") or {}
    for t in _flat(terms):
        path = ctx.find("templates", str(t))
        if path is None:
            raise TaskFailed(f"lookup('template'): could not find {t!r} (searched {_shown(ctx, 'templates')})")
        tmpl = file_template(path.read_text(encoding="utf-8"), bool(kw.get("trim_blocks", True)),
                             bool(kw.get("lstrip_blocks", False)))
        variables: Mapping[str, Any] = ctx.variables
        if extra:
            variables = _Overlay(extra, ctx.variables)
        out.append(render_compiled(tmpl, variables))
    return out


class _Overlay(Mapping[str, Any]):
    def __init__(self, top: Mapping[str, Any], below: Mapping[str, Any]) -> None:
        self.top, self.below = top, below

    def __getitem__(self, key: str) -> Any:
        return self.top[key] if key in self.top else self.below[key]

    def __contains__(self, key: object) -> bool:
        return key in self.top or key in self.below

    def __iter__(self) -> Any:
        yield from self.top
        yield from (k for k in self.below if k not in self.top)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _iterable(term: Any) -> list[Any]:
    """A term as Ansible's nested/together iterate it: a list, or a string's characters."""
    return list(term) if isinstance(term, (list, str)) else [term]


def _nested(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    import itertools

    lists = [_iterable(t) for t in terms]
    if not lists:
        raise TaskFailed("with_nested/lookup('nested') needs at least one list")
    return [list(combo) for combo in itertools.product(*lists)]


def _together(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    import itertools

    lists = [_iterable(t) for t in terms]
    return [list(combo) for combo in itertools.zip_longest(*lists, fillvalue=None)]


def _indexed_items(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    return [[i, v] for i, v in enumerate(_flat(terms))]


def _subelements(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    if len(terms) not in (2, 3) or not isinstance(terms[1], str):
        raise TaskFailed("subelements needs a list (or dict) of items, a key, and optionally {skip_missing: true}")
    flags = terms[2] if len(terms) == 3 and isinstance(terms[2], Mapping) else {}
    return subelements(terms[0], terms[1], bool(flags.get("skip_missing")))


def subelements(items: Any, key: str, skip_missing: bool = False) -> list[Any]:
    """[parent, child] for each child in the list under `key` (dotted) of each parent, as Ansible's
    with_subelements and `subelements` filter."""
    if isinstance(items, Mapping):
        items = list(items.values())
    out: list[Any] = []
    for parent in items:
        if not isinstance(parent, Mapping):
            raise TaskFailed(f"subelements: {parent!r} is not a mapping")
        node: Any = parent
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if skip_missing:
                    node = None
                    break
                raise TaskFailed(f"could not find {key!r} key in iterated item {dict(parent)!r}")
            node = node[part]
        if node is None:
            continue
        if not isinstance(node, list):
            raise TaskFailed(f"the key {key!r} should point to a list, got {node!r}")
        out.extend([parent, child] for child in node)
    return out


PASSWORD_PARAMS = ("length", "chars", "seed", "encrypt", "ident")


def _password(ctx: LookupContext, terms: list[Any], kw: dict[str, Any]) -> list[Any]:
    """A generated secret stored where Ansible stores it: the path given (relative: to the
    playbook's directory), created 0600 in a 0700 directory, read back on later runs; /dev/null
    generates a new one each time and stores nothing."""
    out = []
    for t in _flat(terms):
        path_text, _, rest = str(t).partition(" ")
        params: dict[str, Any] = {}
        for part in rest.split():
            key, sep, value = part.partition("=")
            if not sep:
                raise TaskFailed(f"lookup('password'): unrecognized value {part!r} after the path")
            params[key] = value
        params.update(kw)
        unknown = sorted(set(params) - set(PASSWORD_PARAMS))
        if unknown:
            raise TaskFailed(f"lookup('password'): unrecognized parameter(s) {', '.join(unknown)} "
                                f"(known: {', '.join(PASSWORD_PARAMS)})")
        if params.get("encrypt") or params.get("ident"):
            raise TaskFailed("lookup('password'): encrypt/ident are not supported here; take the plain "
                                "password (the file keeps it in clear, as Ansible's does) and hash it where needed")
        length = int(params.get("length", 20))
        chars = _password_chars(params.get("chars", ["ascii_letters", "digits", ".,:-_"]))
        path = Path(path_text).expanduser()
        if not path.is_absolute():
            path = ctx.basedir / path
        if str(path) != "/dev/null" and path.exists():
            content = path.read_text(encoding="utf-8").rstrip()
            out.append(content.rsplit(" salt=", 1)[0])
            continue
        rng: random.Random = random.SystemRandom() if params.get("seed") is None else random.Random(
            str(params["seed"]))
        secret = "".join(rng.choice(chars) for _ in range(length))
        if str(path) != "/dev/null":
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(secret + "\n")
        out.append(secret)
    return out


def _password_chars(spec: Any) -> str:
    if isinstance(spec, str):  # "ascii_letters,digits" ; ",," stands for a comma
        parts = ([","] if ",," in spec else []) + [c for c in spec.replace(",,", ",").split(",") if c]
    else:
        parts = [str(c) for c in spec]
    chars = "".join(str(getattr(string, p, p)) for p in parts)
    return chars.replace('"', "").replace("'", "")


LOOKUPS: dict[str, Lookup] = {
    "env": _env, "file": _file, "fileglob": _fileglob, "first_found": _first_found, "items": _items,
    "list": _items, "pipe": _pipe, "lines": _lines, "vars": _vars, "dict": _dict, "template": _template,
    "password": _password, "nested": _nested, "together": _together, "indexed_items": _indexed_items,
    "subelements": _subelements,
}
# `with_<name>` loops that are a lookup's list (with_items, with_dict, with_sequence... have their own rules)
LOOP_LOOKUPS = ("nested", "together", "subelements", "indexed_items", "lines", "file", "first_found", "template")


def run_lookup(ctx: LookupContext, name: str, terms: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    short = name
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if short.startswith(prefix):
            short = short[len(prefix):]
    plugin = LOOKUPS.get(short)
    if plugin is None:
        raise TaskFailed(f"unknown lookup plugin {name!r}{did_you_mean(short, set(LOOKUPS))} "
                            f"(known: {', '.join(sorted(LOOKUPS))})")
    wantlist = bool(kw.pop("wantlist", False))
    errors = kw.pop("errors", "strict")
    try:
        values = plugin(ctx, list(terms), kw)
    except TaskFailed:
        if errors in ("warn", "ignore"):
            return [] if wantlist else None
        raise
    if wantlist:
        return values
    if not values:
        return []
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, str) for v in values):
        return ",".join(values)
    return values
