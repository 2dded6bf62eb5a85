"""get_url: download a URL to a file on the host, verified by checksum, renamed into place atomically.

Without force an existing dest whose checksum matches (or when no checksum is given) is
not downloaded again: no request is made. A checksum may name a sums file by URL
("sha256:https://.../SHA256SUMS"); the line for the URL's file name is used.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, parse_mode, text_diff
from provisioner.modules.copy import backup_local
from provisioner.modules.file import attr_ops, attrs_text, current_mode, path_info, run_ops
from provisioner.modules.stat import digests

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ALIASES = {"username": "url_username", "password": "url_password", "thirsty": "force"}


class Args(ModuleArgs):
    url: str
    dest: str
    checksum: str = ""
    force: bool = False
    mode: Any = None
    owner: str | int | None = None
    group: str | int | None = None
    backup: bool = False
    timeout: float = 10
    headers: dict[str, str] | None = None
    url_username: str | None = None
    url_password: str | None = None
    force_basic_auth: bool = False  # basic auth is always sent up front when a username is given
    validate_certs: bool = True
    use_proxy: bool = True
    http_agent: str = "provision-httpget"
    tmp_dest: str | None = None


def url_filename(url: str) -> str:
    return os.path.basename(urllib.parse.urlsplit(url).path) or "index.html"


def _open(args: Args, url: str) -> Any:
    headers = {"User-Agent": args.http_agent}
    headers.update(args.headers or {})
    if args.url_username is not None:
        token = f"{args.url_username}:{args.url_password or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    ctx = ssl.create_default_context()
    if not args.validate_certs:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    handlers: list = [urllib.request.HTTPSHandler(context=ctx)]
    if not args.use_proxy:
        handlers.append(urllib.request.ProxyHandler({}))
    try:
        return urllib.request.build_opener(*handlers).open(urllib.request.Request(url, headers=headers),
                                                           timeout=args.timeout)
    except urllib.error.HTTPError as exc:
        raise ModuleError(f"Request failed: HTTP Error {exc.code}: {exc.reason} ({url})",
                          status_code=exc.code, response=str(exc.reason), url=url)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModuleError(f"Request failed: {reason} ({url})", status_code=-1, response=str(reason), url=url)


def download(args: Args, directory: str | None) -> tuple[str, int]:
    """Stream args.url into a new temp file in directory: (its path, the HTTP status); the caller removes it."""
    fd, tmp = tempfile.mkstemp(prefix=".provision-get_url-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f, _open(args, args.url) as resp:
            shutil.copyfileobj(resp, f, 1 << 20)
            return tmp, getattr(resp, "status", None) or resp.getcode()
    except BaseException:
        os.unlink(tmp)
        raise


def expected_checksum(args: Args) -> tuple[str, str]:
    """(algorithm, hex digest) from `checksum`, fetching a sums file when it is a URL."""
    if not args.checksum:
        return "", ""
    try:
        algorithm, value = args.checksum.split(":", 1)
    except ValueError:
        raise ModuleError("The checksum parameter has to be in format <algorithm>:<checksum>")
    if re.match(r"^(https?|ftp|file)://", value):
        with _open(args, value) as resp:
            lines = [ln.rstrip("\n") for ln in resp.read().decode("utf-8", "replace").splitlines()]
        filename, pairs = url_filename(args.url), []
        if len(lines) == 1 and len(lines[0].split()) == 1:
            pairs.append((lines[0], filename))
        for ln in lines:
            parts = ln.split(" ", 1)
            if len(parts) == 2:
                name = parts[1][1:] if parts[1].startswith((" ", "*")) else parts[1]
                pairs.append((parts[0], name.lstrip("./")))
        found = [s for s, f in pairs if f.strip("./") == filename]
        if not found:
            raise ModuleError(f"Unable to find a checksum for file '{filename}' in '{value}'")
        value = found[0]
    if algorithm.lower() not in hashlib.algorithms_available:
        raise ModuleError(f"unsupported checksum algorithm: {algorithm}")
    value = re.sub(r"\W+", "", value).lower()
    try:
        int(value, 16)
    except ValueError:
        raise ModuleError("The checksum format is invalid")
    return algorithm.lower(), value


def plan(args: Args, host: Host) -> Change:
    dest = os.path.expanduser(args.dest)
    if os.path.isdir(dest):
        dest = os.path.join(dest, url_filename(args.url))
    elif not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        if host.check_mode:  # an earlier task of this run would have made it
            return Change(True, "would download %s to %s (its directory does not exist yet)" % (args.url, dest),
                          data={"dest": dest, "url": args.url})
        raise ModuleError(f"Destination {os.path.dirname(os.path.abspath(dest))} does not exist")
    algorithm, want = expected_checksum(args)
    data: dict[str, Any] = {"dest": dest, "url": args.url}
    if os.path.isfile(dest):
        try:
            sums = digests(dest, "sha1", *([algorithm] if want else []))
        except ValueError:
            raise ModuleError(f"Could not hash file '{dest}' with algorithm '{algorithm}'")
        data["checksum_dest"] = sums[0]  # Ansible's checksum (sha1); apply compares the download with it
        if not args.force and (not want or sums[-1] == want):
            ops, b, a = attr_ops(dest, args.mode, args.owner, args.group)
            msg = "file already exists" + (" but file attributes changed" if ops else "")
            return Change(bool(ops), msg, text_diff(dest, attrs_text(b), attrs_text(a)), todo={"ops": ops},
                          data=dict(data, checksum_src=data["checksum_dest"]))
    msg = f"would download {args.url}" if host.check_mode else ""
    return Change(True, msg, text_diff(dest, "", f"(downloaded from {args.url})\n"),
                  todo={"dest": dest, "algorithm": algorithm, "want": want}, data=data)


def _place(tmp: str, dest: str, args: Args) -> None:
    """Rename the verified download over dest, keeping an existing file's mode and owner."""
    if os.path.dirname(os.path.abspath(tmp)) != os.path.dirname(os.path.abspath(dest)):
        fd, near = tempfile.mkstemp(prefix=".provision-", dir=os.path.dirname(os.path.abspath(dest)))
        os.close(fd)
        shutil.move(tmp, near)  # tmp_dest on another filesystem: the final rename must stay atomic
        tmp = near
    cur = current_mode(dest)
    want = parse_mode(args.mode, cur)
    os.chmod(tmp, want if want is not None else cur & 0o7777)
    if os.path.exists(dest) and os.geteuid() == 0:
        st = os.stat(dest)
        os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, dest)


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    todo = change.todo
    if "ops" in todo:
        run_ops(todo["ops"])
        return {}
    dest = todo["dest"]
    out: dict[str, Any] = {"changed": True}
    tmp, out["status_code"] = download(args, args.tmp_dest or os.path.dirname(dest))
    try:
        sums = digests(tmp, "sha1", *([todo["algorithm"]] if todo["want"] else []))
        out["checksum_src"] = sums[0]
        out["msg"] = f"OK ({os.path.getsize(tmp)} bytes)"
        if todo["want"] and sums[-1] != todo["want"]:
            raise ModuleError(f"The checksum for {dest} did not match {todo['want']}; it was {sums[-1]}.",
                              checksum_src=out["checksum_src"])
        if out["checksum_src"] == change.data.get("checksum_dest"):
            out["changed"] = False
        else:
            if args.backup and os.path.isfile(dest):
                out["backup_file"] = backup_local(dest)
            _place(tmp, dest, args)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    ops = attr_ops(dest, args.mode, args.owner, args.group)[0]
    run_ops(ops)
    out["changed"] = out["changed"] or bool(ops)
    out["checksum_dest"] = out["checksum_src"]  # dest now holds the downloaded bytes, or already did
    out.update({k: v for k, v in path_info(host, dest).items() if k != "path"})
    return out
