"""known_hosts: one host key per key type for a host in a known_hosts file, added, replaced or removed.

Lines are matched to the host as `ssh-keygen -F` does (plain names and patterns, `[host]:port`,
hashed `|1|salt|hmac` entries), in Python; a whole host goes away through `ssh-keygen -R`, as
in Ansible (which leaves PATH.old beside the file).
"""

from __future__ import annotations

import base64
import hmac
import os
import re

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff
from provisioner.modules.file import path_info

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"host": "name"}


class Args(ModuleArgs):
    name: str
    key: str | None = None
    path: str = "~/.ssh/known_hosts"
    hash_host: bool = False
    state: Literal["present", "absent"] = "present"


def _pattern_matches(pattern: str, host: str) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(rx, host) is not None


def host_matches(field: str, host: str) -> bool:
    """Does a known_hosts host field (comma list, patterns, !negations, or one hashed entry) name host?"""
    if field.startswith("|1|"):
        try:
            _, _, salt, digest = field.split("|", 3)
            mac = hmac.new(base64.b64decode(salt), host.encode(), "sha1").digest()
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(base64.b64encode(mac).decode(), digest)
    matched = False
    for pattern in field.split(","):
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], host):
                return False
        elif _pattern_matches(pattern, host):
            matched = True
    return matched


def split_key(line: str) -> dict[str, str]:
    """A key line as {options (the @marker), host, type, key}; the comment is dropped."""
    parts = line.strip().split()
    if parts and parts[0].startswith("@"):
        return dict(zip(("options", "host", "type", "key"), parts))
    return dict(zip(("host", "type", "key"), parts))


def hash_host_key(host: str, key: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, host.encode(), "sha1").digest()
    parts = key.strip().split()
    parts[1 if parts[0].startswith("@") else 0] = "|1|%s|%s" % (base64.b64encode(salt).decode(),
                                                                 base64.b64encode(digest).decode())
    return " ".join(parts)


def search(lines: list[str], host: str, key: str | None) -> tuple[bool, bool, int | None]:
    """(host found, key must be replaced or added, 1-based line of the entry to replace)."""
    found = [(n, line) for n, line in enumerate(lines, 1)
             if line.strip() and not line.lstrip().startswith("#") and len(split_key(line)) >= 3
             and host_matches(split_key(line)["host"], host)]
    if not found:
        return False, False, None
    if not key:
        return True, False, None
    new = split_key(key)
    for n, line in found:
        old = split_key(line)
        if old.get("options", "")[:1] == "@":
            if new == old:
                return True, False, n
            continue
        if new["host"].startswith("|1|") and old["host"].startswith("|1|"):
            new = dict(new, host=old["host"])  # an already hashed entry keeps its salt
        if new == old:
            return True, False, n
        if new["type"] == old["type"]:
            return True, True, n
    return True, True, None


def file_info(host: Host, path: str) -> dict[str, Any]:
    """Ansible adds the stat of a result's existing `path` (its state becomes the file's: file, link...)."""
    info = path_info(host, path)
    return {} if info["state"] == "absent" else info


def plan(args: Args, host: Host) -> Change:
    name, path = args.name.lower(), os.path.expanduser(args.path)
    key = args.key
    data: dict[str, Any] = {"name": args.name, "key": args.key, "path": path, "hash_host": args.hash_host,
                            "state": args.state}
    data.update(file_info(host, path))
    if not key and args.state != "absent":
        raise ModuleError("No key specified when adding a host")
    if key:
        if re.search(r"\S+(\s+)?,(\s+)?", name):
            raise ModuleError("Comma separated list of names is not supported. "
                              "Please pass a single name to lookup in the known_hosts file.")
        fields = split_key(key)
        if len(fields) < 3 or not host_matches(fields["host"], name):
            raise ModuleError("Host parameter does not match hashed host field in supplied key")
        if args.hash_host:
            key = hash_host_key(name, key)
        key = key if key.endswith("\n") else key + "\n"
    raw = host.read_bytes(path)
    before = "" if raw is None else raw.decode("utf-8", "surrogateescape")
    lines = before.splitlines(True)
    found, replace, line_no = search(lines, name, key)
    if args.state == "absent" and key and not line_no:
        return Change(False, data=data)
    if host.check_mode:
        data = {}  # Ansible's check mode returns only `changed` (and the diff)
    if not (replace or found != (args.state == "present")):
        return Change(False, data=data)
    if args.state == "absent" and not key:
        kept = [ln for ln in lines if not (ln.strip() and not ln.lstrip().startswith("#")
                                           and len(split_key(ln)) >= 3 and host_matches(split_key(ln)["host"], name))]
        return Change(True, diff=text_diff(path, before, "".join(kept)), todo=("remove", name, path), data=data)
    after = [ln for n, ln in enumerate(lines, 1) if not (n == line_no and (replace or args.state == "absent"))]
    if after and not after[-1].endswith("\n"):
        after[-1] += "\n"  # Ansible reads and rewrites line by line; a last line lacking "\n" gets one before the key
    if args.state == "present":
        after.append(key or "")
    text = "".join(after)
    return Change(True, diff=text_diff(path, before, text), todo=("write", text, path), data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    what, value, path = change.todo
    if what == "remove":
        keygen = host.which("ssh-keygen")
        if not keygen:
            raise ModuleError("Failed to find required executable \"ssh-keygen\" in paths: " + os.environ.get("PATH", ""))
        host.run([keygen, "-R", value, "-f", path], check=True)
        return file_info(host, path)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ModuleError(f"Failed to write to file {path!r}.")
    host.write_atomic(path, value.encode("utf-8", "surrogateescape"))
    return file_info(host, path)

