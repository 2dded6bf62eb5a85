"""stat: report what a path is (existence, type, mode, owner, size, times, checksum), never changing it.

The result is Ansible's `stat` dict, so `register: st` + `when: st.stat.exists` works unchanged.
"""

from __future__ import annotations

import os
import stat as st_mod

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, _group_name, _user_name, new_hash

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

ALIASES = {"dest": "path", "name": "path",
           "checksum": "checksum_algorithm", "checksum_algo": "checksum_algorithm"}
CHECK_MODE = True


class Args(ModuleArgs):
    path: str
    follow: bool = False
    get_checksum: bool = True
    checksum_algorithm: Literal["md5", "sha1", "sha224", "sha256", "sha384", "sha512"] = "sha1"
    get_mime: bool = True        # accepted, not reported: no libmagic in the standard library
    get_attributes: bool = True  # accepted, not reported (lsattr)


def digests(path: str, *algorithms: str) -> list[str]:
    """The file's hex digest by each algorithm, all from one read of it (a large download is read once)."""
    size = os.path.getsize(path)
    hashes = [new_hash(a, size=size) for a in algorithms]
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashes:
                h.update(block)
    return [h.hexdigest() for h in hashes]


def stat_dict(path: str, follow: bool = False) -> dict[str, Any]:
    """Ansible's stat keys for path (`{"exists": False}` when it is missing)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    except OSError as exc:
        raise ModuleError(f"cannot stat {path}: {exc.strerror}")
    m = st.st_mode
    out: dict[str, Any] = {
        "exists": True, "path": path, "mode": f"{st_mod.S_IMODE(m):04o}",
        "isdir": st_mod.S_ISDIR(m), "ischr": st_mod.S_ISCHR(m), "isblk": st_mod.S_ISBLK(m),
        "isreg": st_mod.S_ISREG(m), "isfifo": st_mod.S_ISFIFO(m), "islnk": st_mod.S_ISLNK(m),
        "issock": st_mod.S_ISSOCK(m), "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size,
        "inode": st.st_ino, "dev": st.st_dev, "nlink": st.st_nlink,
        "atime": st.st_atime, "mtime": st.st_mtime, "ctime": st.st_ctime,
        "blocks": st.st_blocks, "block_size": st.st_blksize, "device_type": st.st_rdev,
        "isuid": bool(m & st_mod.S_ISUID), "isgid": bool(m & st_mod.S_ISGID),
        "readable": os.access(path, os.R_OK), "writeable": os.access(path, os.W_OK),
        "executable": os.access(path, os.X_OK),
    }
    for who in ("usr", "grp", "oth"):
        for perm in ("r", "w", "x"):
            out[perm + who] = bool(m & getattr(st_mod, f"S_I{perm.upper()}{who.upper()}"))
    out["pw_name"], out["gr_name"] = _user_name(st.st_uid), _group_name(st.st_gid)
    out["owner"], out["group"] = out["pw_name"], out["gr_name"]
    if os.path.islink(path):
        out["lnk_source"] = os.path.realpath(path)
        out["lnk_target"] = os.readlink(path)
    return out


def plan(args: Args, host: Host) -> Change:
    path = os.path.expanduser(args.path)
    info = stat_dict(path, args.follow)
    if args.get_checksum and info.get("isreg") and info.get("readable"):
        info["checksum"] = digests(path, args.checksum_algorithm)[0]
    return Change(False, data={"stat": info})


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    return {"changed": False}
