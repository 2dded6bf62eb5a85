"""authorized_key (ansible.posix.authorized_key): SSH public keys in a user's authorized_keys.

Ansible's rules: `key` holds one or more keys (lines; `#` lines ignored), or an http(s):// or
file:// URL to read them from; each key is matched by its base64 body; options and comment are
part of what must match; `exclusive` removes every other key. The file is written as Ansible
writes it (`[options ]type body comment`, a trailing space when there is no comment), 0600,
with ~/.ssh 0700, both owned by the user.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff
from provisioner.modules.known_hosts import file_info

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, Tuple

    Key = Tuple[str, str, Any, Any, int]

KEY_TYPES = frozenset(
    ["sk-ecdsa-sha2-nistp256@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", "webauthn-sk-ecdsa-sha2-nistp256@openssh.com", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", "ssh-dss", "ssh-rsa", "ssh-xmss@openssh.com", "ssh-xmss-cert-v01@openssh.com", "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com", "ssh-dss-cert-v01@openssh.com"])

# (body, type or "skipped", options [(name, value|None)], comment, rank)


class Args(ModuleArgs):
    user: str
    key: str
    path: str | None = None
    manage_dir: bool = True
    state: Literal["present", "absent"] = "present"
    key_options: str | None = None
    exclusive: bool = False
    comment: str | None = None
    validate_certs: bool = True
    follow: bool = False


def parse_options(text: str | None) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for part in re.split(r"""((?:[^,"']|"[^"]*"|'[^']*')+)""", text or "")[1:-1]:
        if "=" in part:
            name, value = part.split("=", 1)
            out.append((name, value))
        elif part != ",":
            out.append((part, None))
    return out


def parse_key(raw: str, rank: int) -> Key | None:
    raw = raw.replace(r"\#", "#")
    lex = shlex.shlex(raw)
    lex.quotes, lex.commenters, lex.whitespace_split = "", "", True
    parts = list(lex)
    if parts and parts[0] == "#":
        return (raw, "skipped", None, None, rank)
    at = next((i for i, p in enumerate(parts) if p in KEY_TYPES), None)
    if at is None or at + 1 >= len(parts):
        return None
    options = parse_options(" ".join(parts[:at]) if at > 0 else None)
    return (parts[at + 1], parts[at], options, " ".join(parts[at + 2:]), rank)


def parse_file(text: str) -> dict[str, Key]:
    keys: dict[str, Key] = {}
    for rank, line in enumerate(text.splitlines(True)):
        parsed = parse_key(line, rank)
        keys[parsed[0] if parsed else line] = parsed or (line, "skipped", None, None, rank)
    return keys


def same_key(a: Key, b: Key) -> bool:
    """Equal type, body, comment and options; options compare as Ansible's keydict does (order of names ignored)."""
    def by_name(options: Any) -> dict[str, list[str | None]] | None:
        if options is None:
            return None
        out: dict[str, list[str | None]] = {}
        for name, value in options:
            out.setdefault(name, []).append(value)
        return out
    return a[0] == b[0] and a[1] == b[1] and a[3] == b[3] and by_name(a[2]) == by_name(b[2])


def serialize(keys: dict[str, Key]) -> str:
    lines = []
    for body, kind, options, comment, _ in sorted(keys.values(), key=lambda k: k[4]):
        if kind == "skipped":
            lines.append(body)
            continue
        opts = ",".join(name if value is None else f"{name}={value}" for name, value in options or [])
        lines.append(f"{opts + ' ' if opts else ''}{kind} {body} {comment}\n")
    return "".join(lines)


def key_text(args: Args, host: Host) -> str:
    key = args.key
    if key.startswith("http"):
        import ssl
        import urllib.request
        context = None if args.validate_certs else ssl._create_unverified_context()
        try:
            with urllib.request.urlopen(key, timeout=10, context=context) as resp:
                if resp.status != 200:
                    raise ModuleError(f"Error getting key from: {key}")
                return resp.read().decode("utf-8", "surrogateescape")
        except (OSError, ValueError):
            raise ModuleError(f"Error getting key from: {key}")
    if key.startswith("file"):
        from urllib.parse import urlparse
        path = urlparse(key).path
        if not os.path.exists(path):
            raise ModuleError(f"Path to a key file not found: {path}")
        if not os.path.isfile(path):
            raise ModuleError(f"Path to a key is a directory and must be a file: {path}")
        return host.read_text(path) or ""
    return key


def key_file(args: Args, host: Host) -> tuple[str, Any]:
    path = os.path.expanduser(args.path) if args.path else None
    try:
        entry = pwd.getpwnam(args.user)
    except KeyError as exc:
        if host.check_mode and path is not None:
            return path, None
        if host.check_mode:
            raise ModuleError("Either user must exist or you must provide full path to key file in check mode")
        raise ModuleError(f"Failed to lookup user {args.user}: {exc}")
    return path or os.path.join(entry.pw_dir, ".ssh", "authorized_keys"), entry


def plan(args: Args, host: Host) -> Change:
    path, entry = key_file(args, host)
    data: dict[str, Any] = dict(args.as_dict(), keyfile=path)
    if args.path:
        data.update(file_info(host, path))
    before = (host.read_text(path) or "") if os.path.isfile(path) else ""
    keys = parse_file(before)
    max_rank, wanted, write = len(keys), [], False
    for rank, line in enumerate(s for s in key_text(args, host).splitlines() if s and not s.startswith("#")):
        new: Key | None = parse_key(line, rank)
        if not new or new[1] == "skipped":
            raise ModuleError(f"invalid key specified: {line}")
        if args.key_options is not None:
            new = (new[0], new[1], parse_options(args.key_options), new[3], new[4])
        if args.comment is not None:
            new = (new[0], new[1], new[2], args.comment, new[4])
        old = keys.get(new[0])
        matched = old is not None and (same_key(old, new) or args.state == "absent")
        if args.state == "present":
            wanted.append(new[0])
            if old is not None and not matched:
                del keys[new[0]]
                write = True
            if not matched:
                keys[new[0]] = (new[0], new[1], new[2], new[3], max_rank + new[4])
                write = True
        elif matched:
            del keys[new[0]]
            write = True
    if args.state == "present" and args.exclusive:
        for body in set(keys) - set(wanted):
            del keys[body]
            write = True
    target = os.path.realpath(path) if args.follow else path
    after = serialize(keys)
    return Change(write, diff=text_diff(target, before, after), todo=(target, after, entry), data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    path, text, entry = change.todo
    ssh_dir = os.path.dirname(path)
    if args.manage_dir:
        if not os.path.exists(ssh_dir):
            try:
                os.mkdir(ssh_dir, 0o700)
            except OSError as exc:
                raise ModuleError(f"Failed to create directory {ssh_dir} : {exc}")
        os.chown(ssh_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(ssh_dir, 0o700)
    elif not os.path.isdir(ssh_dir):
        os.makedirs(ssh_dir)
    if not os.path.exists(path):
        open(path, "w").close()
    try:
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, 0o600)
    except OSError:
        pass
    host.write_atomic(path, text.encode("utf-8", "surrogateescape"))
    return file_info(host, path) if args.path else {}
