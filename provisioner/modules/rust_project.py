"""rust_project: the chapter's Cargo project in a user's home, for one crate source, never clobbering edits.

Writes Cargo.toml (the dependencies the chosen source can provide), src/main.rs and .cargo/config.toml
(crates.io, or a directory source replacing it: Debian's /usr/share/cargo/registry or a `cargo vendor`
directory), owned by the user. What it wrote is recorded as sha256 sums in .provision-rust-project.json:
a file whose content no longer matches the record was changed by the user and is left as it is (said in
the message and in `kept`). A dependency the source lacks is left out, and so is the form (Cargo feature)
that needs it, with the reason in `left_out`.
"""

from __future__ import annotations

import json
import os
import pwd

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, new_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

RECORD = ".provision-rust-project.json"
SOURCES = ("crates-io", "vendor", "debian")
WHY_MISSING = {"debian": "not packaged by this distribution (no librust-{}-dev in {})",
               "vendor": "not in the vendored directory {1}"}


class Args(ModuleArgs):
    user: str
    path: str = "~/gpu-ml"                 # "~/..." is the user's home
    force_path: bool = False               # allow a path outside the user's home
    name: str = "gpu-ml"
    edition: str = "2021"
    crate_source: str = "crates-io"
    source_dir: Optional[str] = None       # the directory source (debian, vendor)
    dependencies: Dict[str, Any] = {}      # crate -> "version" or {version, features, ...}
    dev_dependencies: Dict[str, Any] = {}
    forms: Dict[str, List[str]] = {}       # Cargo feature -> the crates it needs (made optional)
    profile_release: Dict[str, Any] = {}
    main_rs: str = ""


def toml_value(value: Any) -> str:
    """A TOML value for the few shapes a Cargo.toml uses here: str, bool, int, list, inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join("%s = %s" % (k, toml_value(v)) for k, v in value.items()) + " }"
    raise ModuleError("rust_project: cannot write %r in Cargo.toml" % (value,))


def available_crates(source_dir: str) -> Dict[str, str]:
    """crate name -> version directory, from a directory source ('rayon-1.10.0' or a plain 'rayon')."""
    out: Dict[str, str] = {}
    for entry in sorted(os.listdir(source_dir)):
        manifest = os.path.join(source_dir, entry, "Cargo.toml")
        if not os.path.isfile(manifest):
            continue
        head, _, tail = entry.rpartition("-")
        name = head if head and tail[:1].isdigit() else entry
        out.setdefault(name, entry)
    return out


def resolve(args: Args) -> Tuple[pwd.struct_passwd, str]:
    """The user's passwd entry and the project's absolute path; a bad user or path is one line."""
    if args.crate_source not in SOURCES:
        raise ModuleError("rust_project: unknown crate source %r (use one of: auto, %s)"
                          % (args.crate_source, ", ".join(SOURCES)))
    try:
        user = pwd.getpwnam(args.user)
    except KeyError:
        raise ModuleError("rust_project: user %r does not exist on this host" % args.user)
    home = os.path.realpath(user.pw_dir)
    path = args.path
    if path == "~" or path.startswith("~/"):
        path = home + path[1:]
    path = os.path.normpath(path if os.path.isabs(path) else os.path.join(home, path))
    inside = os.path.realpath(path) + os.sep
    if not inside.startswith(home + os.sep) and not args.force_path:
        raise ModuleError("rust_project: %s is outside %s's home %s; set rust_project_force_path to use it"
                          % (path, args.user, home))
    return user, path


def cargo_files(args: Args, host: Host) -> Tuple[Dict[str, str], List[str], Dict[str, str]]:
    """{relative path: content}, the forms built and {form or crate left out: why}."""
    missing: Dict[str, str] = {}
    if args.crate_source != "crates-io":
        if not args.source_dir or not os.path.isdir(args.source_dir):
            raise ModuleError("rust_project: crate source %s needs its directory, %s is not one"
                              % (args.crate_source, args.source_dir))
        have = available_crates(args.source_dir)
        for crate in list(args.dependencies) + list(args.dev_dependencies):
            if crate not in have:
                why = WHY_MISSING[args.crate_source].format(crate.replace("_", "-"), args.source_dir)
                missing[crate] = why
    optional = {crate for crates in args.forms.values() for crate in crates}
    forms = [form for form, crates in args.forms.items() if not any(c in missing for c in crates)]
    left_out = {form: "needs %s: %s" % (", ".join(c for c in crates if c in missing),
                                        "; ".join(missing[c] for c in crates if c in missing))
                for form, crates in args.forms.items() if form not in forms}
    left_out.update({crate: why for crate, why in missing.items() if crate not in optional})

    lines = ["# Written by provision's rust_project role (crate source: %s)." % args.crate_source,
             "# Edit it freely: provision leaves a file you changed as it is.",
             "[package]", 'name = %s' % toml_value(args.name), 'version = "0.1.0"',
             'edition = %s' % toml_value(args.edition), ""]
    for table, deps in (("dependencies", args.dependencies), ("dev-dependencies", args.dev_dependencies)):
        kept = [(c, s) for c, s in deps.items() if c not in missing]
        if not kept:
            continue
        lines.append("[%s]" % table)
        for crate, spec in kept:
            spec = dict(spec) if isinstance(spec, dict) else {"version": str(spec)}
            if crate in optional:
                spec["optional"] = True
            lines.append("%s = %s" % (crate, toml_value(spec["version"]) if list(spec) == ["version"]
                                      else toml_value(spec)))
        lines.append("")
    lines += ["[features]", "default = %s" % toml_value(forms)]
    lines += ["%s = %s" % (form, toml_value(["dep:" + c for c in args.forms[form]])) for form in forms]
    lines.append("")
    if args.profile_release:
        lines += ["[profile.release]"] + ["%s = %s" % (k, toml_value(v)) for k, v in args.profile_release.items()]
    files = {"Cargo.toml": "\n".join(lines).rstrip("\n") + "\n", "src/main.rs": args.main_rs.rstrip("\n") + "\n"}
    config = ["# Where cargo takes crates from (written by provision, crate source: %s)." % args.crate_source]
    if args.crate_source == "crates-io":
        config += ["# crates.io itself: nothing to replace."]
    else:
        config += ["[source.crates-io]", 'replace-with = "provision-%s"' % args.crate_source, "",
                   "[source.provision-%s]" % args.crate_source, "directory = %s" % toml_value(args.source_dir),
                   "", "[net]", "offline = true"]
    files[".cargo/config.toml"] = "\n".join(config) + "\n"
    return files, forms, left_out


def sha256(data: bytes) -> str:
    return str(new_hash("sha256", data).hexdigest())


def plan(args: Args, host: Host) -> Change:
    user, path = resolve(args)
    if host.check_mode and args.crate_source != "crates-io" and not (args.source_dir and os.path.isdir(args.source_dir)):
        return Change(True, "would write %s for %s once %s exists (installed or unpacked by the tasks before)"
                      % (path, args.user, args.source_dir), data={"path": path, "user": args.user})
    files, forms, left_out = cargo_files(args, host)
    record_text = host.read_text(os.path.join(path, RECORD))
    try:
        record = json.loads(record_text) if record_text else {}
    except ValueError:
        record = {}
    write: Dict[str, str] = {}
    kept: List[str] = []
    for rel, content in files.items():
        current = host.read_bytes(os.path.join(path, rel))
        if current is None:
            write[rel] = content
        elif current != content.encode("utf-8"):
            if record.get(rel) == sha256(current):
                write[rel] = content      # still what provision wrote last time: update it
            else:
                kept.append(rel)          # the user's own version
    wanted_record = {rel: sha256(files[rel].encode("utf-8")) if rel not in kept else record.get(rel)
                     for rel in files}
    data: Dict[str, Any] = {"path": path, "user": args.user, "crate_source": args.crate_source,
                            "forms": forms, "left_out": left_out, "kept": kept, "features": forms}
    msg = "%s for %s: forms %s" % (path, args.user, ", ".join(["plain"] + forms))
    if left_out:
        msg += "; left out: " + "; ".join("%s (%s)" % kv for kv in left_out.items())
    if kept:
        msg += "; changed by the user, left as they are: " + ", ".join(kept)
    changed = bool(write) or wanted_record != record
    todo = {"uid": user.pw_uid, "gid": user.pw_gid, "path": path, "write": write, "record": wanted_record}
    data["written"] = sorted(write)
    diff = {"path": path, "before": "", "after": "".join("--- %s\n%s" % kv for kv in sorted(write.items()))}
    return Change(changed, msg, diff=diff, todo=todo, data=data)


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    todo = change.todo
    uid, gid, path = todo["uid"], todo["gid"], todo["path"]
    missing: List[str] = []
    directory = path
    while not os.path.isdir(directory):
        missing.insert(0, directory)
        directory = os.path.dirname(directory)
    for directory in missing + [os.path.join(path, "src"), os.path.join(path, ".cargo")]:
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o755)
            if os.geteuid() == 0:  # the user's project, not root's: every directory made here is theirs
                os.chown(directory, uid, gid)
    owner = str(uid) if os.geteuid() == 0 else None
    for rel, content in todo["write"].items():
        host.write_atomic(os.path.join(path, rel), content.encode("utf-8"), mode=0o644, owner=owner,
                          group=str(gid) if owner else None)
    record = json.dumps(todo["record"], indent=1, sort_keys=True) + "\n"
    host.write_atomic(os.path.join(path, RECORD), record.encode("utf-8"), mode=0o644, owner=owner,
                      group=str(gid) if owner else None)
    return {"changed": True}
