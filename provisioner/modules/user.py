"""user: a local account present (uid, groups, shell, home, password hash, expiry, ssh key) or absent.

Ansible's Linux user module in the plan/apply contract: the plan is the useradd/usermod/userdel argv
Ansible would run, then the follow-up steps (a missing home directory, an ssh key, chage); apply
runs the command and re-checks the follow-ups against the account it created. Options for other
platforms or libuser (local, seuser, login_class, hidden, profile, authorization, role) are refused.
"""

from __future__ import annotations

import os
import pwd
import socket
import time

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules._accounts import (
    find_tool,
    group_entry,
    make_home,
    run_with_passphrase,
    shadow_entry,
    shadow_int,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Literal

ALIASES = {"user": "name", "createhome": "create_home"}
REFUSED = ("local", "seuser", "login_class", "hidden", "profile", "authorization", "role")


class Args(ModuleArgs):
    name: str
    state: Literal["present", "absent"] = "present"
    uid: int | None = None
    non_unique: bool = False
    group: str | None = None
    groups: List[str] | None = None
    append: bool = False
    comment: str | None = None
    home: str | None = None
    shell: str | None = None
    password: str | None = None
    update_password: Literal["always", "on_create"] = "always"
    password_lock: bool | None = None
    create_home: bool = True
    move_home: bool = False
    skeleton: str | None = None
    system: bool = False
    force: bool = False
    remove: bool = False
    generate_ssh_key: bool | None = None
    ssh_key_bits: int = 0
    ssh_key_type: str = "rsa"
    ssh_key_file: str | None = None
    ssh_key_comment: str | None = None
    expires: float | None = None
    password_expire_max: int | None = None
    password_expire_min: int | None = None
    password_expire_warn: int | None = None
    password_expire_account_disable: int | None = None
    umask: str | None = None
    uid_min: int | None = None
    uid_max: int | None = None
    local: Any = None
    seuser: Any = None
    login_class: Any = None
    hidden: Any = None
    profile: Any = None
    authorization: Any = None
    role: Any = None
    ssh_key_passphrase: str | None = None


def account(name: str) -> Any:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def need_group(group: str) -> Any:
    entry = group_entry(group)
    if entry is None:
        raise ModuleError(f"Group {group} does not exist")
    return entry


def expires_arg(args: Args) -> str:
    return "" if args.expires is None or args.expires < 0 else time.strftime("%Y-%m-%d", time.gmtime(args.expires))


def useradd(args: Args, host: Host) -> list[str]:
    cmd = [find_tool(host, "useradd")]
    if args.uid is not None:
        cmd += ["-u", str(args.uid)] + (["-o"] if args.non_unique else [])
    if args.group is not None:
        cmd += ["-g", need_group(args.group).gr_name if not args.group.isdigit() else args.group]
    elif group_entry(args.name) is not None:
        cmd.append("-N")  # a group named like the user exists: useradd must not try to create it
    if args.groups:
        cmd += ["-G", ",".join(need_group(g) and g for g in dict.fromkeys(args.groups))]
    for flag, value in (("-c", args.comment), ("-d", args.home), ("-s", args.shell)):
        if value is not None:
            cmd += [flag, value]
    if args.expires is not None:
        cmd += ["-e", expires_arg(args)]
    if args.password_expire_account_disable is not None:
        cmd += ["-f", str(args.password_expire_account_disable)]
    if args.password is not None:
        cmd += ["-p", ("!" if args.password_lock else "") + args.password]
    if args.create_home:
        cmd.append("-m")
        cmd += ["-k", args.skeleton] if args.skeleton is not None else []
        cmd += ["-K", "UMASK=" + args.umask] if args.umask is not None else []
    else:
        cmd.append("-M")
    cmd += ["-r"] if args.system else []
    for key, limit in (("UID_MIN", args.uid_min), ("UID_MAX", args.uid_max)):
        cmd += ["-K", f"{key}={limit}"] if limit is not None else []
    return cmd + [args.name]


def usermod(args: Args, host: Host, pw: Any) -> list[str]:
    shadow = shadow_entry(args.name) or [""] * 9
    password = pw.pw_passwd if len(pw.pw_passwd) > 1 else shadow[1]
    cmd = [find_tool(host, "usermod")]
    if args.uid is not None and pw.pw_uid != args.uid:
        cmd += ["-u", str(args.uid)] + (["-o"] if args.non_unique else [])
    if args.group is not None and need_group(args.group).gr_gid != pw.pw_gid:
        cmd += ["-g", str(need_group(args.group).gr_gid)]
    if args.groups is not None:
        import grp
        members = {g.gr_name for g in grp.getgrall() if args.name in g.gr_mem}
        wanted = {need_group(g).gr_name for g in args.groups}
        if not wanted:
            if members and not args.append:
                cmd += ["-G", ""]
        elif members ^ wanted and (not args.append or wanted - members):
            cmd += (["-a"] if args.append else []) + ["-G", ",".join(sorted(wanted))]
    for flag, wanted_value, now in (("-c", args.comment, pw.pw_gecos), ("-d", args.home, pw.pw_dir),
                                    ("-s", args.shell, pw.pw_shell)):
        if wanted_value is not None and wanted_value != now:
            cmd += [flag, wanted_value] + (["-m"] if flag == "-d" and args.move_home else [])
    if args.expires is not None:
        current = shadow_int(shadow[7])
        if args.expires < 0:
            cmd += ["-e", ""] if current >= 0 else []
        elif current < 0 or time.gmtime(current * 86400)[:3] != time.gmtime(args.expires)[:3]:
            cmd += ["-e", expires_arg(args)]
    if args.password_expire_account_disable is not None and \
            shadow_int(shadow[6]) != args.password_expire_account_disable:
        cmd += ["-f", str(args.password_expire_account_disable)]
    if args.password_lock and not password.startswith("!"):
        cmd.append("-L")
    elif args.password_lock is False and password.startswith("!"):
        cmd.append("-U")
    if args.update_password == "always" and args.password is not None and \
            password.lstrip("!") != args.password.lstrip("!"):
        cmd = [c for c in cmd if c not in ("-U", "-L")]
        cmd += ["-p", ("!" if args.password_lock else "") + args.password]
    return cmd + [args.name] if len(cmd) > 1 else []


def key_path(args: Args, home: str) -> str:
    path = os.path.expanduser(args.ssh_key_file) if args.ssh_key_file else os.path.join(".ssh", f"id_{args.ssh_key_type}")
    return path if os.path.isabs(path) else os.path.join(home, path)


def follow_ups(args: Args, pw: Any, host: Host) -> list[str]:
    """What must still happen to an existing account: home directory, ssh key, chage."""
    steps = []
    home = args.home or pw.pw_dir
    if args.create_home and not os.path.exists(home):
        steps.append("home")
    if args.generate_ssh_key:
        key = key_path(args, home)
        if args.force or not (os.path.exists(key) or os.path.exists(key + ".pub")):
            steps.append("ssh_key")
    shadow = shadow_entry(args.name) or [""] * 9
    if any(want is not None and want != shadow_int(shadow[i]) for i, want in
           ((3, args.password_expire_min), (4, args.password_expire_max), (5, args.password_expire_warn))):
        steps.append("chage")
    return steps


def run_follow_ups(args: Args, host: Host, steps: list[str], out: dict[str, Any]) -> None:
    pw = account(args.name)
    home = args.home or pw.pw_dir
    if "home" in steps:
        make_home(args.skeleton, home, pw.pw_uid, pw.pw_gid)
    if "ssh_key" in steps:
        key = key_path(args, home)
        if not os.path.isdir(os.path.dirname(key)):
            if not os.path.exists(home):
                raise ModuleError(f"User {args.name} home directory does not exist", name=args.name, rc=1)
            os.mkdir(os.path.dirname(key), 0o700)
            os.chown(os.path.dirname(key), pw.pw_uid, pw.pw_gid)
        if os.path.exists(key + ".pub"):
            os.unlink(key + ".pub")
        comment = args.ssh_key_comment or f"ansible-generated on {socket.gethostname()}"
        cmd = [find_tool(host, "ssh-keygen"), "-t", args.ssh_key_type] + (
            ["-b", str(args.ssh_key_bits)] if args.ssh_key_bits > 0 else []) + ["-C", comment, "-f", key]
        if os.path.exists(key):
            os.unlink(key)  # force: overwrite (Ansible answers ssh-keygen's "Overwrite (y/n)?" with y)
        if args.ssh_key_passphrase is not None:
            rc, err = run_with_passphrase(cmd, args.ssh_key_passphrase)
        else:
            res = host.run(cmd + ["-N", ""])
            rc, err = res.rc, res.stderr
        if rc != 0:
            raise ModuleError(err, name=args.name, rc=rc)
        for path in (key, key + ".pub"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    if "chage" in steps:
        cmd = [find_tool(host, "chage")]
        for flag, value in (("-m", args.password_expire_min), ("-M", args.password_expire_max),
                            ("-W", args.password_expire_warn)):
            cmd += [flag, str(value)] if value is not None else []
        res = host.run(cmd + [args.name])
        if res.rc != 0:
            raise ModuleError(res.stderr, name=args.name, rc=res.rc)


def describe(args: Args, host: Host, out: dict[str, Any]) -> None:
    """The result fields Ansible reports for a present account."""
    pw = account(args.name)
    if pw is None:
        return
    out.update(uid=pw.pw_uid, group=pw.pw_gid, comment=pw.pw_gecos, home=pw.pw_dir, shell=pw.pw_shell)
    if args.groups is not None:
        out["groups"] = ",".join(args.groups)
    if args.generate_ssh_key:
        key = key_path(args, args.home or pw.pw_dir)
        res = host.run([find_tool(host, "ssh-keygen"), "-l", "-f", key]) if os.path.exists(key) else None
        out["ssh_fingerprint"] = res.stdout.strip() if res and res.rc == 0 else \
            (res.stderr.strip() if res else f"SSH Key file {key} does not exist")
        out["ssh_key_file"] = key
        pub = host.read_text(key + ".pub")
        out["ssh_public_key"] = pub.strip() if pub is not None else None


def plan(args: Args, host: Host) -> Change:
    for name in REFUSED:
        if getattr(args, name) is not None:
            raise ModuleError(f"user: {name} is not supported by provision (Linux shadow-utils accounts only)")
    pw = account(args.name)
    data: dict[str, Any] = {"name": args.name, "state": args.state}
    if args.state == "absent":
        if pw is None:
            return Change(False, data=data)
        cmd = [find_tool(host, "userdel")] + (["-f"] if args.force else []) + (["-r"] if args.remove else [])
        data.update(force=args.force, remove=args.remove)
        return Change(True, todo=(cmd + [args.name], []), diff={"path": "/etc/passwd", "before": f"user {args.name}\n", "after": ""},
                      data={} if host.check_mode else data)  # Ansible's check mode reports only `changed` here
    if args.password is not None:
        data["password"] = "NOT_LOGGING_PASSWORD"
    if pw is None:
        data.update(system=args.system, create_home=args.create_home)
        # like Ansible, check mode says "would create" without checking the groups: a task before it may make them
        argv = [] if host.check_mode else useradd(args, host)
        return Change(True, todo=(argv, ["new"]), diff={"path": "/etc/passwd", "before": "", "after": f"user {args.name}\n"},
                      data={} if host.check_mode else data)
    data.update(append=args.append, move_home=args.move_home)
    cmd, steps = usermod(args, host, pw), follow_ups(args, pw, host)
    describe(args, host, data)
    diff = {"path": f"user {args.name}", "before": "", "after": " ".join(cmd[1:-1] + steps) + "\n"}
    return Change(bool(cmd or steps), todo=(cmd, steps), diff=diff, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    cmd, steps = change.todo
    out: dict[str, Any] = {}
    parent_made = False
    if steps == ["new"] and args.home and args.create_home and not os.path.isdir(os.path.dirname(args.home)):
        os.makedirs(os.path.dirname(args.home))  # useradd -m makes only the last level
        parent_made = True
    if cmd:
        res = host.run(cmd)
        if res.rc != 0:
            raise ModuleError(res.stderr, name=args.name, rc=res.rc)
        out.update({k: v for k, v in (("stdout", res.stdout), ("stderr", res.stderr)) if v})
    if args.state == "present":
        pw = account(args.name)
        if parent_made:
            make_home(args.skeleton, args.home or pw.pw_dir, pw.pw_uid, pw.pw_gid)
        run_follow_ups(args, host, follow_ups(args, pw, host) if steps == ["new"] else steps, out)
        describe(args, host, out)
    return out
