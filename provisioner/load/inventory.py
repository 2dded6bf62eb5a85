"""Ansible's YAML inventory, unchanged: all/hosts/children/vars, host_vars/ and group_vars/.

Also accepted: `-i host1,host2,` lists and no inventory at all (then the target is
this machine, as `localhost` with the local connection).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.errors import Position, UserError
from provisioner.load.yamlsrc import YMap, load_yaml_file, type_name, where

_HOST_NAME = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+$")
_GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_GROUP_KEYS = {"hosts", "children", "vars"}
_CONNECTIONS = ("local", "ssh", "paramiko", "smart")  # what the runner can open
_RANGE = re.compile(r"\[([0-9]+|[a-zA-Z]):([0-9]+|[a-zA-Z])(?::([0-9]+))?\]")


@dataclass
class Host:
    """A managed machine and the variables the inventory gives it."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # from outermost (all) to innermost
    pos: Position | None = None

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", self.vars.get("ansible_ssh_port", 22)))

    @property
    def connection(self) -> str:
        conn = self.vars.get("ansible_connection")
        if conn:
            return str(conn)
        return "local" if self.name in ("localhost", "127.0.0.1") and "ansible_host" not in self.vars else "ssh"


@dataclass
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    dir_vars: dict[str, Any] = field(default_factory=dict)  # group_vars/NAME.yml: above every group's `vars:`
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)


@dataclass
class Inventory:
    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    source: str = "<none>"

    def group_members(self, name: str, seen: set[str] | None = None) -> list[str]:
        seen = seen if seen is not None else set()
        if name in seen or name not in self.groups:
            return []
        seen.add(name)
        group = self.groups[name]
        out = dict.fromkeys(group.hosts)  # ordered and deduplicated in one pass, not `h not in list`
        for child in group.children:
            out.update(dict.fromkeys(self.group_members(child, seen)))
        return list(out)

    def group_names(self, host: str) -> list[str]:
        return sorted(g for g in self.groups if g not in ("all", "ungrouped") and host in self.group_members(g))

    def select(self, pattern: str | list[str], pos: Position | None = None) -> list[str]:
        """Resolve an Ansible host pattern (`all`, groups, globs, `a:b`, `a:&b`, `a:!b`, commas)."""
        parts: list[str] = []
        for item in pattern if isinstance(pattern, list) else [pattern]:
            parts.extend(p.strip() for p in re.split(r"[,:](?![^\[]*\])", str(item)) if p.strip())
        if not parts:
            raise UserError("empty host pattern", pos)
        selected: list[str] = []
        order = list(self.hosts)
        for part in parts:
            op = ""
            if part[0] in "&!":
                op, part = part[0], part[1:]
            matched = self._match(part)
            if not matched and not op and part not in self.groups and not any(c in part for c in "*?[~"):
                raise UserError(f"host pattern {part!r} matches no host or group of {self.source}", pos)
            if op == "&":
                selected = [h for h in selected if h in matched]
            elif op == "!":
                selected = [h for h in selected if h not in matched]
            else:
                selected.extend(h for h in matched if h not in selected)
        return sorted(selected, key=order.index)

    def _match(self, part: str) -> list[str]:
        if part in ("all", "*"):
            return list(self.hosts)
        if part in self.groups:
            return self.group_members(part)
        if part in self.hosts:
            return [part]
        if part.startswith("~"):
            rx = re.compile(part[1:])
            return [h for h in self.hosts if rx.search(h)]
        hits = [h for h in self.hosts if fnmatch.fnmatchcase(h, part)]
        for g in self.groups:
            if fnmatch.fnmatchcase(g, part):
                hits.extend(h for h in self.group_members(g) if h not in hits)
        return hits

    def host_vars(self, name: str) -> dict[str, Any]:
        """Inventory-file group vars from `all` down to the innermost group, then group_vars/ files in the
        same order, then the host's own (Ansible's order)."""
        host = self.hosts[name]
        merged: dict[str, Any] = {}
        order = self._group_order(name)
        for group in order:
            merged.update(self.groups[group].vars)
        for group in order:
            merged.update(self.groups[group].dir_vars)
        merged.update(host.vars)
        return merged

    def _group_order(self, host: str) -> list[str]:
        depth: dict[str, int] = {}

        def walk(group: str, d: int) -> None:
            if depth.get(group, -1) >= d:
                return
            depth[group] = d
            for child in self.groups[group].children:
                walk(child, d + 1)
        if "all" in self.groups:
            walk("all", 0)
        member_of = [g for g in self.groups if host in self.group_members(g)]
        return sorted(member_of, key=lambda g: (depth.get(g, 1), g))


def localhost_inventory() -> Inventory:
    inv = Inventory(source="<implicit localhost>")
    inv.groups["all"] = Group("all", hosts=["localhost"])
    inv.groups["ungrouped"] = Group("ungrouped")
    inv.hosts["localhost"] = Host("localhost", {"ansible_connection": "local"}, ["all"])
    return inv


def load_inventory(source: str | None) -> Inventory:
    if source is None:
        return localhost_inventory()
    if "," in source and not Path(source).exists():
        return _from_list(source)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml"))
        if not files:
            raise UserError("inventory directory holds no .yml file", Position(str(path)))
        inv = Inventory(source=str(path))
        for f in files:
            _merge_file(inv, f)
        _load_var_dirs(inv, path)
        return inv
    inv = Inventory(source=str(path))
    _merge_file(inv, path)
    _load_var_dirs(inv, path.parent)
    return inv


def _from_list(text: str) -> Inventory:
    inv = Inventory(source=f"-i {text}")
    inv.groups["all"] = Group("all")
    inv.groups["ungrouped"] = Group("ungrouped", parents=["all"])
    inv.groups["all"].children.append("ungrouped")
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        host, _, port = name.partition(":") if name.count(":") == 1 else (name, "", "")
        if not _HOST_NAME.match(host):
            raise UserError(f"malformed host name {host!r} in the host list", Position("-i"))
        hvars: dict[str, Any] = {}
        if port:
            hvars["ansible_port"] = _port(port, Position("-i"), host)
        inv.hosts[host] = Host(host, hvars, ["all", "ungrouped"])
        inv.groups["ungrouped"].hosts.append(host)
    return inv


def _merge_file(inv: Inventory, path: Path) -> None:
    if path.suffix not in (".yml", ".yaml", ""):
        raise UserError("only YAML inventories are read (Ansible's YAML format); "
                        "convert INI with `ansible-inventory -i FILE --list -y`", Position(str(path)))
    data = load_yaml_file(path)
    if data is None:
        data = YMap()
    if not isinstance(data, dict):
        raise UserError(f"an inventory must be a mapping of groups (like `all:`), not {type_name(data)}",
                        where(data) if hasattr(data, "pos") else Position(str(path), 1, 1))
    inv.groups.setdefault("all", Group("all"))
    inv.groups.setdefault("ungrouped", Group("ungrouped", parents=["all"]))
    if "ungrouped" not in inv.groups["all"].children:
        inv.groups["all"].children.append("ungrouped")
    for name, body in data.items():
        _load_group(inv, str(name), body, data, parent=None if name == "all" else "all")
    for host in inv.hosts.values():
        grouped = any(host.name in g.hosts for g in inv.groups.values() if g.name != "all")
        if not grouped and host.name not in inv.groups["ungrouped"].hosts:
            inv.groups["ungrouped"].hosts.append(host.name)


def _load_group(inv: Inventory, name: str, body: Any, container: Any, parent: str | None) -> None:
    pos = where(container, name)
    if not _GROUP_NAME.match(name):
        raise UserError(f"malformed group name {name!r}: use letters, digits, _ and -", pos)
    group = inv.groups.setdefault(name, Group(name))
    if parent and (name == parent or name in _ancestors(inv, parent)):
        raise UserError(f"group {name!r} cannot be a child of {parent!r}: it is {parent!r} or one of its parents",
                        pos)
    if parent and parent not in group.parents:
        group.parents.append(parent)
        if name not in inv.groups[parent].children:
            inv.groups[parent].children.append(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise UserError(f"group {name!r} must be a mapping with hosts/children/vars, not {type_name(body)}", pos)
    for key in body:
        if key not in _GROUP_KEYS:
            raise UserError(f"unknown key {key!r} in group {name!r}: expected one of hosts, children, vars "
                            "(a host goes under `hosts:`)", where(body, key))
    gvars = body.get("vars")
    if gvars is not None:
        if not isinstance(gvars, dict):
            raise UserError(f"vars of group {name!r} must be a mapping, not {type_name(gvars)}", where(body, "vars"))
        _check_vars(gvars, f"group {name!r}")
        group.vars.update(gvars)
    hosts = body.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, dict):
            raise UserError(f"hosts of group {name!r} must be a mapping of host names to vars "
                            f"(`host01:` on its own line), not {type_name(hosts)}", where(body, "hosts"))
        for pattern, hvars in hosts.items():
            hpos = where(hosts, pattern)
            for hname in _expand_range(str(pattern), hpos):
                if not _HOST_NAME.match(hname):
                    raise UserError(f"malformed host name {hname!r}", hpos)
                if hvars is not None and not isinstance(hvars, dict):
                    raise UserError(f"host {hname!r} must map to its variables (or nothing), not {type_name(hvars)}",
                                    hpos)
                hvars = hvars or {}
                _check_vars(hvars, f"host {hname!r}")
                for key in _PORT_VARS:
                    if key in hvars:
                        _port(hvars[key], where(hvars, key), hname)
                host = inv.hosts.setdefault(hname, Host(hname, {}, ["all"], hpos))
                host.vars.update(hvars)
                if hname not in group.hosts:
                    group.hosts.append(hname)
    children = body.get("children")
    if children is not None:
        if not isinstance(children, dict):
            raise UserError(f"children of group {name!r} must be a mapping of groups, not {type_name(children)}",
                            where(body, "children"))
        for cname, cbody in children.items():
            _load_group(inv, str(cname), cbody, children, parent=name)
    for key in _PORT_VARS:
        if key in group.vars:
            _port(group.vars[key], where(gvars, key), f"group {name}")


def _port(value: Any, pos: Position, who: str) -> int:
    text = str(value)
    if "{{" in text:
        return 0
    try:
        port = int(text)
    except ValueError:
        raise UserError(f"port of {who} must be a number 1-65535, not {value!r}", pos) from None
    if not 1 <= port <= 65535:
        raise UserError(f"port of {who} is out of range: {port} (expected 1-65535)", pos)
    return port


def _ancestors(inv: Inventory, group: str) -> set[str]:
    out: set[str] = set()
    todo = [group]
    while todo:
        current = inv.groups.get(todo.pop())
        for parent in current.parents if current else []:
            if parent not in out:
                out.add(parent)
                todo.append(parent)
    return out


def _expand_range(name: str, pos: Position) -> list[str]:
    """Ansible's host ranges: `ws[01:40]`, `node[a:f]`, `gpu[0:10:2]` (zero padding kept)."""
    m = _RANGE.search(name)
    if not m:
        return [name]
    start, end, stride = m.group(1), m.group(2), int(m.group(3) or 1)
    if start.isdigit() != end.isdigit() or stride < 1:
        raise UserError(f"bad host range in {name!r}", pos)
    if start.isdigit():
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, stride)]
    else:
        items = [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    if not items:
        raise UserError(f"empty host range in {name!r}", pos)
    return [h for item in items for h in _expand_range(name[:m.start()] + item + name[m.end():], pos)]


def _check_vars(variables: dict[str, Any], who: str) -> None:
    conn = variables.get("ansible_connection")
    if isinstance(conn, str) and "{{" not in conn and conn not in _CONNECTIONS:
        raise UserError(f"ansible_connection {conn!r} of {who} is not one of {', '.join(_CONNECTIONS)}",
                        where(variables, "ansible_connection"))
    for key in variables:
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise UserError(f"variable name {key!r} of {who} is not a valid identifier", where(variables, key))


def _load_var_dirs(inv: Inventory, base: Path) -> None:
    for kind in ("group_vars", "host_vars"):
        d = base / kind
        if not d.is_dir():
            continue
        for entry in sorted(d.iterdir()):
            name = entry.stem if entry.is_file() else entry.name
            files = [entry] if entry.is_file() else sorted(entry.glob("*.y*ml"))
            for f in files:
                if f.suffix not in (".yml", ".yaml"):
                    continue
                data = load_yaml_file(f) or {}
                if not isinstance(data, dict):
                    raise UserError(f"{kind} file must be a mapping of variables, not {type_name(data)}",
                                    Position(str(f), 1, 1))
                _check_vars(data, str(f))
                if kind == "group_vars":
                    inv.groups.setdefault(name, Group(name)).dir_vars.update(data)
                elif name in inv.hosts:
                    inv.hosts[name].vars.update(data)


def add_playbook_var_dirs(inv: Inventory, playbook_dir: Path) -> None:
    """group_vars/ and host_vars/ beside the playbook apply too (above the inventory's)."""
    if playbook_dir.resolve() != Path(inv.source).resolve().parent:
        _load_var_dirs(inv, playbook_dir)
