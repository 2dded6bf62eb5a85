"""rpm_key: a GPG key in the RPM database, imported only when its key id is not already there.

The key id is read from the key itself (OpenPGP fingerprint, as apt_key does), so a converged host
costs one `rpm -q gpg-pubkey` and, for a URL, one download; nothing is imported twice.
"""

from __future__ import annotations

import os
import re
import tempfile

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError
from provisioner.modules.apt_key import dearmor, fetch, fingerprints, normalize_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

KEY_ID = re.compile(r"^(0x)?([0-9a-fA-F]{8}|[0-9a-fA-F]{16})$")


class Args(ModuleArgs):
    key: str                                   # URL, path on the host, or key id (absent / already there)
    state: Literal["present", "absent"] = "present"
    validate_certs: bool = True
    fingerprint: list[str] = []   # the key must have (one of) these


def imported_ids(host: Host) -> set[str]:
    """Short key ids (8 lowercase hex, rpm's gpg-pubkey VERSION) already in the rpm database."""
    res = host.run(["rpm", "-q", "gpg-pubkey", "--qf", "%{VERSION}\n"])
    if res.rc != 0 and "is not installed" not in res.stdout + res.stderr:
        raise ModuleError(f"rpm -q gpg-pubkey failed: {(res.stderr or res.stdout).strip()}")
    words = (line.strip().lower() for line in res.stdout.splitlines())
    return {w for w in words if re.match(r"^[0-9a-f]{8}$", w)}


def key_material(args: Args, host: Host) -> bytes:
    if re.match(r"^(https?|ftp|file)://", args.key):
        return fetch(args.key, args.validate_certs)
    data = host.read_bytes(args.key)
    if data is None:
        raise ModuleError(f"key not found: {args.key} (give a URL, a file, or the id of an imported key)")
    return data


def plan(args: Args, host: Host) -> Change:
    have = imported_ids(host)
    if KEY_ID.match(args.key):
        wanted = {normalize_id(args.key)[-8:].lower()}
        binary = None
    else:
        binary = dearmor(key_material(args, host))
        fps = fingerprints(binary)
        if not fps:
            raise ModuleError(f"{args.key} is not an OpenPGP public key")
        expected = [normalize_id(f) for f in args.fingerprint]
        if expected and not any(fp in expected for fp in fps):
            raise ModuleError(f"the key fingerprint {', '.join(fps)} does not match "
                              f"{', '.join(args.fingerprint)}")
        wanted = {fp[-8:].lower() for fp in fps}
    data = {"key_ids": sorted(wanted)}
    if args.state == "absent":
        doomed = sorted(wanted & have)
        would = "would " if host.check_mode else ""
        msg = f"{would}remove gpg-pubkey-{' '.join(doomed)}" if doomed else ""
        return Change(bool(doomed), msg, todo={"remove": doomed}, data=data)
    if wanted <= have:
        return Change(False, "", data=data)
    if binary is None:
        raise ModuleError(f"key id {args.key} is not imported; give the key's URL or file to import it")
    return Change(True, ("would " if host.check_mode else "") + f"import {args.key}",
                  todo={"import": binary}, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    if "remove" in change.todo:
        for key_id in change.todo["remove"]:
            host.run(["rpm", "-e", "--allmatches", f"gpg-pubkey-{key_id}"], check=True)
        return {"changed": True}
    path = args.key
    if not os.path.isfile(path):              # a downloaded key goes through a private temp file
        fd, path = tempfile.mkstemp(prefix="provision-rpm-key-", suffix=".gpg", dir=host.tmpdir)
        with os.fdopen(fd, "wb") as f:
            f.write(change.todo["import"])
    try:
        host.run(["rpm", "--import", path], check=True)
    finally:
        if path != args.key:
            os.unlink(path)
    return {"changed": True}
