"""mount (ansible.posix.mount): an fstab entry, and the mount itself, as ansible.posix.mount manages them.

States as Ansible's: present (fstab only), mounted (fstab, then mount or remount), unmounted,
absent (fstab line gone, unmounted, mount point removed), absent_from_fstab, remounted, ephemeral
(mounted without fstab). The fstab line is `src path fstype opts dump passno` with spaces, `&` and
`\\` escaped as \\040, \\046, \\134. Where mount(2) is not permitted, `mount`'s own error is
reported ("Error mounting PATH: ...") and the fstab change is undone, as Ansible does.
"""

from __future__ import annotations

import os

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff
from provisioner.modules._accounts import find_tool
from provisioner.modules.copy import backup_local

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"name": "path"}
FIELDS = ("src", "name", "fstype", "opts", "dump", "passno")


class Args(ModuleArgs):
    path: str
    # required by Ansible; checked in plan (a required Literal trips provision.validate's key-error path)
    state: Literal["absent", "absent_from_fstab", "mounted", "present", "unmounted", "remounted", "ephemeral"] | None = None
    src: str | None = None
    fstype: str | None = None
    opts: str | None = None
    dump: str = "0"
    passno: str = "0"
    fstab: str | None = None
    boot: bool = True
    backup: bool = False
    opts_no_log: bool = False


def escape(value: str) -> str:
    return value.replace("\\", "\\134").replace(" ", "\\040").replace("&", "\\046")


def linux_mounts() -> dict[str, str]:
    """Mount point -> source, from /proc/self/mountinfo (a bind mount's source is its directory)."""
    try:
        with open("/proc/self/mountinfo") as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError:
        return {}
    # id -> (parent id, root, mount point, source)
    info = {int(r[0]): (int(r[1]), r[3], r[4], r[-2]) for r in rows}
    mounts = {}
    for parent_id, root, dst, src in info.values():
        parent = info.get(parent_id) if parent_id != 1 else None
        if parent is not None:
            if len(parent[1]) > 1 and root.startswith(parent[1] + "/"):
                root = root[len(parent[1]):]
            src = (parent[2] + root) if parent[2] != "/" else root
        mounts[dst] = src
    return mounts


def fstab_lines(text: str, a: dict[str, Any], remove: bool) -> tuple[list[str], bool]:
    """The fstab with this entry set (or removed), and whether that changes it."""
    out, found, changed = [], False, False
    for line in text.splitlines(True):
        line = line if line.endswith("\n") else line + "\n"
        if not line.strip() or line.strip().startswith("#"):
            out.append(line)
            continue
        fields = (line.split() if remove else line.split("#")[0].split())
        if (len(fields) != 6) if remove else (len(fields) not in (4, 5, 6)):
            out.append(line)
            continue
        ld = dict(zip(FIELDS, fields + ["0"] * (6 - len(fields))))
        if ld["name"] != escape(a["name"]) or (
                a.get("src") is not None and ld["name"] == "none" and ld["fstype"] == "swap" and ld["src"] != a["src"]):
            out.append(line)
            continue
        found = True
        if remove:
            changed = True
            continue
        diff = {k: escape(a[k]) for k in ("src", "fstype", "opts", "dump", "passno") if ld[k] != escape(a[k])}
        if diff:
            ld.update(diff)
            changed = True
            out.append("%(src)s %(name)s %(fstype)s %(opts)s %(dump)s %(passno)s\n" % ld)
        else:
            out.append(line)
    if not found and not remove:
        out.append("%s %s %s %s %s %s\n" % tuple(escape(a[k]) for k in FIELDS))
        changed = True
    return out, changed


def settings(args: Args) -> dict[str, Any]:
    a: dict[str, Any] = {"name": args.path, "opts": args.opts or "defaults", "dump": args.dump, "passno": args.passno,
                         "fstab": args.fstab or "/etc/fstab", "boot": "yes", "warnings": [], "backup_file": ""}
    for key in ("src", "fstype"):
        if getattr(args, key) is not None:
            a[key] = getattr(args, key)
    opts = a["opts"].split(",")
    if args.boot and "noauto" in opts:
        a["warnings"].append("Ignore the 'boot' due to 'opts' contains 'noauto'.")
    elif not args.boot:
        a["boot"] = "no"
        a["opts"] = ",".join(opts + ["noauto"])
    return a


def plan(args: Args, host: Host) -> Change:
    if args.state is None:
        raise ModuleError("missing required arguments: state")
    if args.opts_no_log:
        raise ModuleError("opts_no_log is not supported by provision: set `no_log: true` on the task to hide opts")
    if args.state in ("mounted", "present", "ephemeral") and (args.src is None or args.fstype is None):
        missing = ", ".join(k for k in ("src", "fstype") if getattr(args, k) is None)
        raise ModuleError(f"state is {args.state} but all of the following are missing: {missing}")
    a = settings(args)
    name, fstab = a["name"], a["fstab"]
    text = host.read_text(fstab) or ""
    mounts = linux_mounts()
    mounted = os.path.ismount(name) or name in mounts
    steps: list[str] = []
    after = text
    if args.state in ("present", "mounted", "absent", "absent_from_fstab"):
        lines, changed = fstab_lines(text, a, remove=args.state.startswith("absent"))
        after = "".join(lines)
        steps += ["fstab"] if changed else []
    if args.state == "absent" and steps:
        steps += (["umount"] if mounted else []) + ["rmdir"]
    elif args.state == "unmounted" and mounted:
        steps.append("umount")
    elif args.state == "remounted":
        steps.append("remount")
    elif args.state in ("mounted", "ephemeral"):
        here = os.path.ismount(name) or mounts.get(name) == a["src"]
        if not os.path.exists(name):
            steps.append("mkdir")
        if args.state == "ephemeral" and here:
            if mounts.get(name) != a["src"] and not _mount_v_has(host, a["src"], name):
                raise ModuleError("Ephemeral mount point is already mounted with a different source than the specified "
                                  "one. Failing in order to prevent an unwanted unmount or override operation. Try "
                                  "replacing this command with a \"state: unmounted\" followed by a \"state: ephemeral\", "
                                  "or use a different destination path.")
            steps.append("remount")
        elif here:
            steps += ["remount"] if "fstab" in steps else []
        else:
            steps.append("mount")
    changed = any(s != "mkdir" for s in steps)
    return Change(changed, diff=text_diff(fstab, text, after), todo=(steps, after, text, a), data=dict(a))


def _mount_v_has(host: Host, src: str, path: str) -> bool:
    res = host.run([find_tool(host, "mount"), "-v"])
    return any(f[0] == src and f[2] == path for f in (line.split() for line in res.stdout.splitlines()) if len(f) > 2)


def _mount(host: Host, args: Args, a: dict[str, Any], remount: bool = False) -> tuple[int, str]:
    cmd = [find_tool(host, "mount")]
    if remount:
        cmd += ["-o", "remount," + a["opts"] if args.state == "remounted" and a["opts"] != "defaults" else "remount"]
    if args.state == "ephemeral":
        cmd += ["-t", a["fstype"]] + (["-o", a["opts"]] if a["opts"] != "defaults" else []) + [a["src"]]
    elif a["fstab"] != "/etc/fstab":
        cmd += ["-T", a["fstab"]]
    res = host.run(cmd + [a["name"]])
    return res.rc, ("" if res.rc == 0 else res.stdout + res.stderr)


def _remount(host: Host, args: Args, a: dict[str, Any]) -> tuple[int, str]:
    rc, msg = _mount(host, args, a, remount=True)
    if rc == 0:
        return rc, msg
    if args.state == "remounted" and a["opts"] != "defaults":
        raise ModuleError("Options were specified with remounted, but the remount command failed. Failing in order "
                          "to prevent an unexpected mount result. Try replacing this command with a \"state: unmounted\" "
                          "followed by a \"state: mounted\" using the full desired mount options instead.")
    rc, msg = _umount(host, a["name"])
    return _mount(host, args, a) if rc == 0 else (rc, msg)


def _umount(host: Host, path: str) -> tuple[int, str]:
    res = host.run([find_tool(host, "umount"), path])
    return res.rc, ("" if res.rc == 0 else res.stdout + res.stderr)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    steps, after, before, a = change.todo
    name, fstab = a["name"], a["fstab"]
    out: dict[str, Any] = {}
    made: list[str] = []
    if "mkdir" in steps:
        current = "/" if os.path.isabs(name) else ""
        try:
            for part in name.strip("/").split("/"):
                current = os.path.join(current, part)
                if not os.path.exists(current):
                    os.mkdir(current)
                    made.append(current)
        except OSError as exc:
            raise ModuleError(f"Error making dir {name}: {exc}")
    if not os.path.exists(fstab) and args.state != "ephemeral":
        os.makedirs(os.path.dirname(fstab) or ".", exist_ok=True)
        open(fstab, "a").close()
    if "fstab" in steps:
        if args.backup:
            out["backup_file"] = backup_local(fstab)
        host.write_atomic(fstab, after.encode())
    if "umount" in steps:
        rc, msg = _umount(host, name)
        if rc:
            raise ModuleError(f"Error unmounting {name}: {msg}")
    if "rmdir" in steps and os.path.exists(name):
        try:
            os.rmdir(name)
        except OSError as exc:
            raise ModuleError(f"Error rmdir {name}: {exc}")
    rc, msg = 0, ""
    if "mount" in steps:
        rc, msg = _mount(host, args, a)
    elif "remount" in steps:
        rc, msg = _remount(host, args, a)
    if rc:
        if args.state == "remounted":
            raise ModuleError(f"Error remounting {name}: {msg}")
        if "fstab" in steps:  # a fstab line that cannot mount could break the next boot: undo it
            host.write_atomic(fstab, before.encode())
        for path in reversed(made):
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise ModuleError(f"Error mounting {name}: {msg}")
    return out
