"""What the account modules (user, group) share: finding shadow-utils' tools, /etc/shadow, home directories."""

from __future__ import annotations

import grp
import os
import re

from provisioner.host.runtime import Host, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def find_tool(host: Host, name: str) -> str:
    """The path of a command, also in the sbin directories a non-login PATH may lack (Ansible's get_bin_path)."""
    path = host.which(name) or next((p for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
                                     for p in [os.path.join(d, name)] if os.access(p, os.X_OK)), None)
    if not path:
        raise ModuleError(f"Failed to find required executable \"{name}\" in paths: " + os.environ.get("PATH", ""))
    return path


def group_entry(group: str | int) -> Any:
    """A group by gid (a number) or by name, as Ansible looks it up; None when there is none."""
    try:
        return grp.getgrgid(int(group))
    except (ValueError, KeyError):
        pass
    try:
        return grp.getgrnam(str(group))
    except KeyError:
        return None


def shadow_entry(name: str, path: str = "/etc/shadow") -> list[str] | None:
    """The user's /etc/shadow fields (name, password, lastchg, min, max, warn, inactive, expire, ...)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name:
                    return fields + [""] * (9 - len(fields))
    except OSError:
        return None
    return None


def shadow_int(value: str) -> int:
    """A numeric shadow field as getspnam gives it: -1 when empty."""
    try:
        return int(value)
    except ValueError:
        return -1


def make_home(skeleton: str | None, path: str, uid: int, gid: int) -> None:
    """Ansible's create_homedir: a copy of the skeleton (or an empty directory), mode from login.defs, chowned."""
    import shutil
    skeleton = skeleton or "/etc/skel"
    if not os.path.exists(path):
        if os.path.exists(skeleton) and skeleton != os.devnull:
            shutil.copytree(skeleton, path, symlinks=True)
        else:
            os.makedirs(path)
        mode = 0o755
        try:
            with open("/etc/login.defs") as f:
                for line in f:
                    found = re.match(r"^HOME_MODE\s+(\d+)$", line)
                    if found:
                        mode = int(found.group(1), 8)
                        break
                    found = re.match(r"^UMASK\s+(\d+)$", line)
                    if found:
                        mode = 0o777 & ~int(found.group(1), 8)
        except OSError:
            pass
        os.chmod(path, mode)
    for root, _dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                os.chown(os.path.join(root, name), uid, gid)


def run_with_passphrase(argv: list[str], passphrase: str, timeout: float = 900) -> tuple[int, str]:
    """Run ssh-keygen answering its two passphrase prompts through a pty, so the passphrase never
    appears in the process list (as Ansible does it). Returns (rc, output)."""
    import pty
    import select
    import subprocess
    import time
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    from provisioner.host.proc import Foreign
    guard = Foreign(proc.pid)  # the agent kills it if the controller goes away
    out, answered, deadline = b"", 0, time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                out += os.read(master, 10240)
            except OSError:  # the child closed its side
                break
            prompts = out.count(b"Enter passphrase") + out.count(b"Enter same passphrase again")
            while answered < prompts:
                os.write(master, passphrase.encode() + b"\r")
                answered += 1
        try:  # the pty reads EIO once the child closed it, a moment before the child exits
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return 1, f"Timeout after {timeout} while reading passphrase for SSH key"
        return rc, out.decode("utf-8", "replace")
    finally:
        guard.done()
        os.close(master)
