"""apt_key: an APT signing key as its own keyring file under /etc/apt/keyrings (no deprecated apt-key).

Idempotent by content. Armored keys are dearmored here in Python, byte for byte what `gpg --dearmor`
writes, without needing gpg or creating its home directory; a keyring named *.asc keeps the armor
(apt reads both). Fingerprints are read from the key itself, so `id` is checked, not trusted.
Reference the file from the source with signed-by=.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterator

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

KEYRINGS_DIR = "/etc/apt/keyrings"
ARMOR = re.compile(rb"-----BEGIN PGP PUBLIC KEY BLOCK-----(.*?)-----END PGP PUBLIC KEY BLOCK-----", re.DOTALL)


class Args(ModuleArgs):
    id: str | None = None             # key id or fingerprint; checked against the key, names the file
    url: str | None = None
    data: str | None = None
    file: str | None = None
    keyring: str | None = None        # path of the keyring file (relative: under /etc/apt/keyrings)
    keyserver: str | None = None      # not supported: apt keys come from a URL, a file or data
    state: Literal["present", "absent"] = "present"
    validate_certs: bool = True


def dearmor(data: bytes) -> bytes:
    """Radix-64 armored key block(s) → binary OpenPGP packets; binary input is returned as is."""
    blocks = ARMOR.findall(data)
    if not blocks:
        return data
    out = b""
    for body in blocks:
        lines = [line.strip() for line in body.strip().splitlines()]
        if b"" in lines:                       # armor headers ("Comment: ...") end at a blank line
            lines = lines[lines.index(b"") + 1:]
        checksum = re.compile(rb"^=[A-Za-z0-9+/]{4}$")
        out += base64.b64decode(b"".join(line for line in lines if not checksum.match(line)))
    return out


def packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 4880 4.2), old and new header formats."""
    i = 0
    while i < len(data):
        header = data[i]
        if not header & 0x80:
            raise ValueError("not OpenPGP data")
        if header & 0x40:
            tag, first = header & 0x3F, data[i + 1]
            if first < 192:
                length, i = first, i + 2
            elif first < 224:
                length, i = ((first - 192) << 8) + data[i + 2] + 192, i + 3
            else:
                length, i = int.from_bytes(data[i + 2:i + 6], "big"), i + 6
        else:
            tag, size = (header >> 2) & 0x0F, {0: 1, 1: 2, 2: 4}.get(header & 3, 0)
            length = int.from_bytes(data[i + 1:i + 1 + size], "big") if size else len(data) - i - 1
            i += 1 + size
        yield tag, data[i:i + length]
        i += length


def fingerprints(binary: bytes) -> list[str]:
    """Fingerprints of the primary (v4) keys in a binary keyring, uppercase hex."""
    try:
        return [hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
                for tag, body in packets(binary) if tag == 6 and body[:1] == b"\x04"]
    except (ValueError, IndexError):
        return []


def normalize_id(key_id: str) -> str:
    return re.sub(r"^0X", "", re.sub(r"\s", "", key_id).upper())


def fetch(url: str, validate_certs: bool = True) -> bytes:
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "ftp", "file"):
        raise ModuleError(f"unsupported URL: {url}")
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=60, context=context) as response:
            return response.read()
    except Exception as exc:
        raise ModuleError(f"Failed to download key at {url}: {exc}") from exc


def keyring_path(args: Args) -> str:
    if args.keyring:
        return os.path.join(KEYRINGS_DIR, args.keyring)     # an absolute keyring path stays as given
    source = args.id or os.path.basename(urllib.parse.urlparse(args.url or "").path or args.file or "")
    stem = re.sub(r"\.(asc|gpg|key|pub|pgp)$", "", source)
    if not stem:
        raise ModuleError("apt_key needs keyring (or id) to name the file for this key")
    return os.path.join(KEYRINGS_DIR, re.sub(r"[^A-Za-z0-9_.-]", "-", stem) + ".gpg")


def plan(args: Args, host: Host) -> Change:
    if args.keyserver:
        raise ModuleError("keyserver is not supported: give url, file or data")
    path = keyring_path(args)
    current = host.read_bytes(path)
    if args.state == "absent":
        return Change(current is not None, f"remove {path}" if current is not None else "",
                      todo={"remove": path}, data={"keyring": path, "id": args.id})
    if len([s for s in (args.url, args.data, args.file) if s]) != 1:
        raise ModuleError("give exactly one of url, data or file")
    wanted = normalize_id(args.id) if args.id else None
    if wanted and current is not None and any(fp.endswith(wanted) for fp in fingerprints(dearmor(current))):
        return Change(False, "", data={"keyring": path, "id": args.id})   # Ansible: a known id is not fetched
    if args.file:
        raw = host.read_bytes(args.file)
        if raw is None:
            raise ModuleError(f"key file not found: {args.file}")
    else:
        raw = fetch(args.url, args.validate_certs) if args.url else (args.data or "").encode()
    fps = fingerprints(dearmor(raw))
    if not fps:
        raise ModuleError("not an OpenPGP public key (neither armored nor binary)")
    if wanted and not any(fp.endswith(wanted) for fp in fps):
        raise ModuleError(f"the key does not have id {args.id} (it has {', '.join(fps)})")
    content = raw if path.endswith(".asc") else dearmor(raw)
    data = {"keyring": path, "fp": fps[0], "id": fps[0][-16:], "key_id": fps[0][-16:],
            "short_id": fps[0][-8:]}
    if content == current:
        return Change(False, "", data=data)
    return Change(True, ("would " if host.check_mode else "") + f"write {path}",
                  todo={"write": (path, content)}, data=data)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    if "remove" in change.todo:
        os.unlink(change.todo["remove"])
        return {"changed": True}
    path, content = change.todo["write"]
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    host.write_atomic(path, content, mode=0o644)
    return {"changed": True}
