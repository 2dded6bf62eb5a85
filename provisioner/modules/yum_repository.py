"""yum_repository: one [section] of a /etc/yum.repos.d/<file>.repo ini file, as Ansible writes it.

Keys are sorted, booleans are 1/0, `description` is the repo's `name`; other sections of the
file are kept; the file is rewritten atomically only when the parsed content differs, and
removed when its last section goes. Like Ansible, comments in a rewritten file are not kept.
"""

from __future__ import annotations

import configparser
import io
import os

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, parse_mode, text_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"validate_certs": "sslverify", "ca_cert": "sslcacert", "client_cert": "sslclientcert",
           "client_key": "sslclientkey"}
NOT_INI = ("name", "description", "file", "reposdir", "state", "mode", "owner", "group")


class Args(ModuleArgs):
    name: str                              # the repo id: the [section]
    description: str | None = None         # written as name =
    baseurl: list[str] = []
    mirrorlist: str | None = None
    metalink: str | None = None
    gpgkey: list[str] = []
    gpgcheck: bool | None = None
    repo_gpgcheck: bool | None = None
    enabled: bool | None = None
    priority: str | int | None = None
    cost: str | int | None = None
    exclude: list[str] = []
    includepkgs: list[str] = []
    skip_if_unavailable: bool | None = None
    sslverify: bool | None = None
    sslcacert: str | None = None
    sslclientcert: str | None = None
    sslclientkey: str | None = None
    module_hotfixes: bool | None = None
    countme: bool | None = None
    metadata_expire: str | int | None = None
    timeout: str | int | None = None
    retries: str | int | None = None
    proxy: str | None = None
    proxy_username: str | None = None
    proxy_password: str | None = None
    username: str | None = None
    password: str | None = None
    file: str | None = None                # without .repo; default: the repo id
    reposdir: str = "/etc/yum.repos.d"
    state: Literal["present", "absent"] = "present"
    mode: Any = None
    owner: str | None = None
    group: str | None = None


def section_values(args: Args) -> dict[str, str]:
    values: dict[str, Any] = {k: v for k, v in args.as_dict().items() if k not in NOT_INI}
    values["name"] = args.description
    values["baseurl"] = "\n".join(args.baseurl) or None     # one URL per line, as Ansible
    values["gpgkey"] = "\n".join(args.gpgkey) or None
    values["exclude"] = " ".join(args.exclude) or None
    values["includepkgs"] = " ".join(args.includepkgs) or None
    return {k: str(int(v)) if isinstance(v, bool) else str(v)
            for k, v in sorted(values.items()) if v is not None}


def parse(text: str, path: str) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read_string(text, source=path)
    except configparser.Error as exc:
        raise ModuleError(f"cannot parse {path}: {exc}") from exc
    return ini


def dump(ini: configparser.ConfigParser) -> str:
    out = io.StringIO()
    ini.write(out)
    return out.getvalue()


def plan(args: Args, host: Host) -> Change:
    if args.state == "present" and not args.description:
        raise ModuleError("state is present but all of the following are missing: description")
    if args.state == "present" and not (args.baseurl or args.mirrorlist or args.metalink):
        raise ModuleError("state is present but any of the following are missing: "
                          "baseurl, mirrorlist, metalink")
    if not os.path.isdir(args.reposdir):
        raise ModuleError(f"Repo directory '{args.reposdir}' does not exist.")
    name = args.file or args.name
    if "/" in name:
        raise ModuleError(f"invalid file name: {name!r}")
    dest = os.path.join(args.reposdir, f"{name}.repo")
    before_text = host.read_text(dest)
    ini = parse(before_text or "", dest)
    before = {s: dict(ini.items(s)) for s in ini.sections()}
    if args.state == "present":
        ini.remove_section(args.name)          # Ansible rebuilds the section from the arguments
        ini.add_section(args.name)
        for key, value in section_values(args).items():
            ini.set(args.name, key, value)
    else:
        ini.remove_section(args.name)
    after = {s: dict(ini.items(s)) for s in ini.sections()}
    after_text = dump(ini) if after else None
    mode = parse_mode(args.mode)
    st = host.stat(dest)
    mode_differs = bool(after and st and mode is not None and int(st["mode"], 8) != mode)
    changed = before != after or mode_differs
    data = {"repo": args.name, "state": args.state, "dest": dest}
    if not changed:
        return Change(False, "", data=data)
    return Change(True, ("would " if host.check_mode else "") + ("write " if after else "remove ") + dest,
                  diff=text_diff(dest, before_text, after_text), todo={"text": after_text, "dest": dest},
                  data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    text, dest = change.todo["text"], change.todo["dest"]
    if text is None:
        os.unlink(dest)
    else:
        host.write_atomic(dest, text.encode(), mode=parse_mode(args.mode), owner=args.owner, group=args.group)
    return {"changed": True}
