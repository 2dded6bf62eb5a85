"""YAML with positions: every mapping and list remembers where it and its keys came from.

Positions are what make "file:line:col: expected ..." possible for every later check,
long after the text is gone. Duplicate keys are an error (YAML quietly keeps the last).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import Position, UserError


class YMap(dict):  # type: ignore[type-arg]
    """A dict that knows its position and the position of each key."""

    pos: Position
    key_pos: dict[Any, Position]
    holds_secret = False  # a vaulted value is in it, at any depth (see provisioner/vault.py)

    def where(self, key: Any = None) -> Position:
        if key is not None and key in getattr(self, "key_pos", {}):
            return self.key_pos[key]
        return getattr(self, "pos", Position("<unknown>"))


class YList(list):  # type: ignore[type-arg]
    pos: Position
    item_pos: list[Position]
    holds_secret = False

    def where(self, index: int | None = None) -> Position:
        if index is not None and 0 <= index < len(getattr(self, "item_pos", [])):
            return self.item_pos[index]
        return getattr(self, "pos", Position("<unknown>"))


class UnsafeStr(str):
    """A string marked `!unsafe`: never templated."""


def _mark(file: str, mark: Any) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


# libyaml's parser when PyYAML was built with it (it is, in the wheels): 5-10x faster than the
# pure-Python one on a fleet's inventory, with the same nodes, marks and error texts.
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _loader_for(file: str) -> type[yaml.SafeLoader]:
    class Loader(_BASE):  # type: ignore[valid-type,misc]
        saw_vault = False  # a `!vault` value was met: containers then say whether they hold one

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> YMap:
        loader.flatten_mapping(node)
        out = YMap()
        out.pos = _mark(file, node.start_mark)
        out.key_pos = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise UserError("a mapping key must be a plain value", _mark(file, key_node.start_mark))
            if key in out:
                raise UserError(f"duplicate key {key!r} (first at line {out.key_pos[key].line})",
                                _mark(file, key_node.start_mark))
            out[key] = value = loader.construct_object(value_node, deep=True)
            out.key_pos[key] = _mark(file, key_node.start_mark)
            if loader.saw_vault and getattr(value, "holds_secret", False):  # type: ignore[attr-defined]
                out.holds_secret = True
        return out

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> YList:
        out = YList(loader.construct_object(child, deep=True) for child in node.value)
        out.pos = _mark(file, node.start_mark)
        out.item_pos = [_mark(file, child.start_mark) for child in node.value]
        if loader.saw_vault and any(getattr(v, "holds_secret", False) for v in out):  # type: ignore[attr-defined]
            out.holds_secret = True
        return out

    def construct_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> UnsafeStr:
        return UnsafeStr(loader.construct_scalar(node))  # type: ignore[arg-type]

    def construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        from provisioner import vault
        if not isinstance(node, yaml.ScalarNode):
            raise UserError("a `!vault` value must be the vault text (`!vault |` and its lines)",
                            _mark(file, node.start_mark))
        keyring = vault.keyring()
        loader.saw_vault = True  # type: ignore[attr-defined]
        plain = keyring.decrypt(str(node.value), _mark(file, node.start_mark))
        return keyring.remember(_text(plain, _mark(file, node.start_mark)))  # type: ignore[no-any-return]

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("!unsafe", construct_unsafe)
    Loader.add_constructor("!vault", construct_vault)
    return Loader


def _text(data: bytes, pos: Position) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("the decrypted vault data is not UTF-8 text", pos) from None


def load_yaml_text(text: str, file: str) -> Any:
    """The data of a YAML text; a whole-file vault (`$ANSIBLE_VAULT;...`) is decrypted first and
    everything in it is a secret."""
    if text[:64].lstrip().startswith("$ANSIBLE_VAULT"):
        from provisioner import vault
        keyring = vault.keyring()
        plain = _text(keyring.decrypt(text, Position(file, 1, 1)), Position(file, 1, 1))
        return keyring.remember(load_yaml_text(plain, file))
    try:
        return yaml.load(text, Loader=_loader_for(file))
    except UserError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = _mark(file, mark) if mark else Position(file)
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        raise UserError(f"YAML syntax error: {what}", pos) from None
    except yaml.YAMLError as exc:
        raise UserError(f"YAML error: {exc}", Position(file)) from None


def load_yaml_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", Position(str(path))) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read: {exc.__class__.__name__}", Position(str(path))) from None
    return load_yaml_text(text, str(path))


def where(container: Any, key: Any = None) -> Position:
    """Best position for `container[key]` (or the container itself)."""
    if isinstance(container, (YMap, YList)):
        return container.where(key)
    return Position("<unknown>")


def type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 40 else "a string"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {value}"
    return f"{type(value).__name__} {value!r}"
