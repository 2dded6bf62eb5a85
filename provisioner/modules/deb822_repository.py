"""deb822_repository: one APT source as /etc/apt/sources.list.d/<name>.sources, as Ansible writes it.

Fields come out in Ansible's order and format, so a host converged by Ansible stays unchanged.
A signed_by URL is fetched only while its keyring file is missing; inline key text goes into the
file itself. Like Ansible, this does not update the apt cache (use apt with update_cache).
"""

from __future__ import annotations

import os
import re
import textwrap
import urllib.request

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, parse_mode, text_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

SOURCES_DIR = "/etc/apt/sources.list.d"
KEYRINGS_DIR = "/etc/apt/keyrings"
ALIASES: dict[str, str] = {}
DEB822_FIELDS = ("allow_downgrade_to_insecure", "allow_insecure", "allow_weak", "architectures", "by_hash",
                 "check_date", "check_valid_until", "components", "date_max_future", "enabled", "exclude",
                 "include", "inrelease_path", "languages", "name", "pdiffs", "signed_by", "suites", "targets",
                 "trusted", "types", "uris")


class Args(ModuleArgs):
    name: str
    types: list[Literal["deb", "deb-src"]] = ["deb"]
    uris: list[str] = []
    suites: list[str] = []
    components: list[str] = []
    signed_by: str | None = None          # keyring path, inline armored key, or URL of a key
    architectures: list[str] = []
    enabled: bool | None = None
    allow_downgrade_to_insecure: bool | None = None
    allow_insecure: bool | None = None
    allow_weak: bool | None = None
    by_hash: bool | None = None
    check_date: bool | None = None
    check_valid_until: bool | None = None
    date_max_future: int | None = None
    exclude: list[str] = []
    include: list[str] = []
    inrelease_path: str | None = None
    languages: list[str] = []
    pdiffs: bool | None = None
    targets: list[str] = []
    trusted: bool | None = None
    install_python_debian: bool = False   # accepted for compatibility; nothing to install here
    mode: Any = "0644"
    state: Literal["present", "absent"] = "present"


def slug_for(name: str) -> str:
    """Ansible's file name: the legacy normalized slug if such a file exists, else spaces → dashes."""
    legacy = re.sub(r"[^a-z0-9-]+", "", re.sub(r"[_\s]+", "-", name.lower()))
    slug = legacy if os.path.exists(sources_path(legacy)) else name.replace(" ", "-")
    if not slug or "/" in slug or slug.startswith("."):
        raise ModuleError(f"invalid repository name for a file name: {name!r}")
    return slug


def sources_path(slug: str) -> str:
    return os.path.join(SOURCES_DIR, f"{slug}.sources")


def key_path(slug: str, ext: str) -> str:
    return os.path.join(KEYRINGS_DIR, f"{slug}.{ext}")


def field_name(key: str) -> str:
    return {"name": "X-Repolib-Name", "uris": "URIs"}.get(key) or key.replace("_", "-").title()


def render(args: Args, signed_by: str | None) -> str:
    """The .sources text, as python-debian's Deb822.dump() writes Ansible's sorted fields."""
    lines = []
    for key in DEB822_FIELDS:
        value = signed_by if key == "signed_by" else getattr(args, key)
        if value is None or value == []:
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, list):
            value = " ".join(value)
        value = str(value)
        if "\n" in value:         # a continuation line per line; "." stands for an empty one
            body = "\n".join(line.strip() or "." for line in value.strip().splitlines())
            lines.append(f"{field_name(key)}:\n" + textwrap.indent(body, "    "))
        else:
            lines.append(f"{field_name(key)}: {value}")
    return "\n".join(lines) + "\n"


def resolve_key(value: str, slug: str) -> tuple[str, str | None, bytes | None]:
    """(Signed-By value, key file, key bytes to write): a URL's key lands in /etc/apt/keyrings."""
    if os.path.isfile(value):
        return value, value, None
    if not re.match(r"^(https?|ftp|file)://", value):
        return value, None, None          # inline key text (or a path that is not there yet)
    for ext in ("asc", "gpg"):
        if os.path.exists(key_path(slug, ext)):
            return key_path(slug, ext), key_path(slug, ext), None
    try:
        with urllib.request.urlopen(value, timeout=60) as response:  # scheme checked above
            data = response.read()
    except Exception as exc:
        raise ModuleError(f"Could not fetch signed_by key: {exc}") from exc
    path = key_path(slug, "asc" if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data else "gpg")
    return path, path, data


def plan(args: Args, host: Host) -> Change:
    slug = slug_for(args.name)
    dest = sources_path(slug)
    before = host.read_text(dest)
    if args.state == "absent":
        doomed = [p for p in (dest, key_path(slug, "asc"), key_path(slug, "gpg")) if os.path.exists(p)]
        keys = [p for p in doomed if p != dest]
        data = {"repo": None, "dest": dest, "key_filename": keys[0] if keys else None}
        return Change(bool(doomed), f"remove {' '.join(doomed)}" if doomed else "",
                      diff=text_diff(dest, before, None), todo={"remove": doomed}, data=data)
    signed_by, key_file, key_bytes = (None, None, None)
    if args.signed_by:
        signed_by, key_file, key_bytes = resolve_key(args.signed_by, slug)
    content = render(args, signed_by)
    mode = parse_mode(args.mode)
    st = host.stat(dest)
    mode_differs = st is not None and mode is not None and int(st["mode"], 8) != mode
    todo = {"content": content if content != before else None, "key": (key_file, key_bytes), "mode": mode}
    changed = content != before or key_bytes is not None or mode_differs
    msg = ("would " if host.check_mode else "") + f"write {dest}" if changed else ""
    return Change(changed, msg, diff=text_diff(dest, before, content), todo=todo,
                  data={"repo": content, "dest": dest, "key_filename": key_file})


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    if "remove" in todo:
        for path in todo["remove"]:
            os.unlink(path)
        return {"changed": True}
    key_file, key_bytes = todo["key"]
    if key_bytes is not None:
        os.makedirs(KEYRINGS_DIR, mode=0o755, exist_ok=True)
        host.write_atomic(key_file, key_bytes, mode=0o644)
    dest = change.data["dest"]
    if todo["content"] is not None:
        os.makedirs(SOURCES_DIR, mode=0o755, exist_ok=True)
        host.write_atomic(dest, todo["content"].encode(), mode=todo["mode"])
    elif todo["mode"] is not None:
        os.chmod(dest, todo["mode"])
    return {"changed": True}
