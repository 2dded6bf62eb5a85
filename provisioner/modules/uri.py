"""uri: make an HTTP(S) request from the host and return Ansible's result (status, headers as keys,
json, content, ...); fail when the status is not one of `status_code`.

Like Ansible's it is skipped in check mode and reports changed only when `dest` is written.
`creates`/`removes` make it run only when needed.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, new_hash, parse_mode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Literal, Optional

CHECK_MODE = False
ALIASES = {"user": "url_username", "password": "url_password"}


class Args(ModuleArgs):
    url: str
    method: str = "GET"
    body: Any = None
    body_format: Literal["raw", "json", "form-urlencoded", "form-multipart"] = "raw"
    headers: Dict[str, Any] = {}
    status_code: Any = [200]  # a list, a comma-separated string or one number, as Ansible takes it
    return_content: bool = False
    dest: Optional[str] = None
    creates: Optional[str] = None
    removes: Optional[str] = None
    follow_redirects: Literal["all", "none", "safe", "urllib2", "yes", "no"] = "safe"
    timeout: float = 30
    validate_certs: bool = True
    ca_path: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    url_username: Optional[str] = None
    url_password: Optional[str] = None
    force_basic_auth: bool = False
    http_agent: str = "ansible-httpget"
    use_proxy: bool = True
    src: Optional[str] = None
    remote_src: bool = False
    mode: Any = None
    owner: Optional[str] = None
    group: Optional[str] = None


class _Redirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, policy: str) -> None:
        self.policy = {"yes": "all", "no": "none"}.get(policy, policy)

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if self.policy == "none" or (self.policy == "safe" and req.get_method() not in ("GET", "HEAD")):
            return None  # urllib then raises HTTPError with the 3xx status: reported as is
        if self.policy == "all" and req.get_method() not in ("GET", "HEAD") and code in (307, 308):
            return urllib.request.Request(newurl, data=req.data, headers=dict(req.header_items()),
                                          method=req.get_method())
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _body(args: Args, headers: Dict[str, str]) -> Optional[bytes]:
    if args.src is not None:
        with open(os.path.expanduser(args.src), "rb") as f:
            return f.read()
    if args.body is None:
        return None
    lower = {k.lower() for k in headers}
    if args.body_format == "json":
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
        text = args.body if isinstance(args.body, str) else json.dumps(args.body)
        return text.encode()
    if args.body_format == "form-urlencoded":
        if "content-type" not in lower:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if isinstance(args.body, str):
            return args.body.encode()
        pairs = args.body.items() if isinstance(args.body, dict) else args.body
        return urllib.parse.urlencode(list(pairs)).encode()
    return args.body.encode() if isinstance(args.body, str) else json.dumps(args.body).encode()


def _opener(args: Args) -> Any:
    ctx = ssl.create_default_context(cafile=args.ca_path) if args.ca_path else ssl.create_default_context()
    if not args.validate_certs:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if args.client_cert:
        ctx.load_cert_chain(args.client_cert, args.client_key)
    handlers: List[Any] = [urllib.request.HTTPSHandler(context=ctx), _Redirects(args.follow_redirects)]
    if not args.use_proxy:
        handlers.append(urllib.request.ProxyHandler({}))
    if args.url_username is not None and not args.force_basic_auth:
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, args.url, args.url_username, args.url_password or "")
        handlers.append(urllib.request.HTTPBasicAuthHandler(mgr))
    return urllib.request.build_opener(*handlers)


def _request(args: Args) -> Dict[str, Any]:
    headers = {"User-Agent": args.http_agent}
    headers.update({str(k): str(v) for k, v in args.headers.items()})
    if args.url_username is not None and args.force_basic_auth:
        token = "%s:%s" % (args.url_username, args.url_password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    data = _body(args, headers)
    req = urllib.request.Request(args.url, data=data, headers=headers, method=args.method.upper())
    start = time.monotonic()
    out: Dict[str, Any] = {"url": args.url, "redirected": False}
    try:
        resp = _opener(args).open(req, timeout=args.timeout)
        out["status"] = resp.status
        out["url"] = resp.geturl()
        out["redirected"] = out["url"] != args.url
        reason = "OK"
    except urllib.error.HTTPError as exc:
        resp = exc
        out["status"] = exc.code
        reason = "HTTP Error %s: %s" % (exc.code, exc.reason)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        out.update(status=-1, elapsed=int(time.monotonic() - start))
        out["msg"] = "Request failed: %s" % exc
        return out
    with resp:
        content = resp.read()
        for key, value in resp.headers.items():
            out[key.replace("-", "_").lower()] = value
        cookies = [c.split(";", 1)[0].strip() for c in resp.headers.get_all("Set-Cookie") or []]
    out["cookies"] = dict(c.split("=", 1) for c in cookies if "=" in c)
    out["cookies_string"] = "; ".join(cookies)
    size = out.get("content_length", "unknown")
    out["msg"] = "%s (%s bytes)" % (reason, size) if reason == "OK" else reason
    out["elapsed"] = int(time.monotonic() - start)
    out["_content"] = content
    return out


def _codes(value: Any) -> List[int]:
    items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else [value]
    try:
        return [int(str(v).strip()) for v in items]
    except ValueError:
        raise ModuleError("status_code must be a list of integers, not %r" % (value,))


def plan(args: Args, host: Host) -> Change:
    args.status_code = _codes(args.status_code)
    if args.body_format == "form-multipart":
        raise ModuleError("body_format: form-multipart is not supported by provision; send a file with "
                          "src (remote_src: true) or body_format: raw and your own Content-Type")
    if args.src is not None and not args.remote_src:
        raise ModuleError("src from the controller is not supported by provision: put the file on the host "
                          "first and use remote_src: true, or pass it as body")
    if args.body is not None and args.src is not None:
        raise ModuleError("parameters are mutually exclusive: body|src")
    if args.creates and os.path.exists(os.path.expanduser(args.creates)):
        return Change(False, "skipped, since '%s' exists" % args.creates,
                      data={"stdout": "skipped, since '%s' exists" % args.creates, "skipped": False})
    if args.removes and not os.path.exists(os.path.expanduser(args.removes)):
        return Change(False, "skipped, since '%s' does not exist" % args.removes,
                      data={"stdout": "skipped, since '%s' does not exist" % args.removes})
    return Change(True)  # a request is made in apply (never in check mode: the module is skipped there)


def _write_dest(args: Args, content: bytes, url: str) -> Dict[str, Any]:
    dest = os.path.expanduser(args.dest or "")
    if os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(urllib.parse.urlsplit(url).path) or "index.html")
    old = None
    try:
        with open(dest, "rb") as f:
            old = new_hash("sha1", f.read()).hexdigest()
    except FileNotFoundError:
        pass
    host = Host()
    changed = old != new_hash("sha1", content).hexdigest()
    if changed:
        host.write_atomic(dest, content, mode=parse_mode(args.mode), owner=args.owner, group=args.group)
    elif args.mode is not None or args.owner or args.group:
        from provisioner.modules.file import attr_ops, run_ops
        ops = attr_ops(dest, args.mode, args.owner, args.group)[0]
        run_ops(ops)
        changed = bool(ops)
    return {"path": dest, "changed": changed}


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    args.status_code = _codes(args.status_code)
    out = _request(args)
    content: bytes = out.pop("_content", b"")
    text = content.decode("utf-8", "replace")
    if "json" in str(out.get("content_type", "")):
        try:
            out["json"] = json.loads(text)
        except ValueError:
            pass
    if args.return_content or out["status"] not in args.status_code:
        out["content"] = text
    out["changed"] = False
    if out["status"] not in args.status_code:
        detail = out.pop("msg")
        raise ModuleError("Status code was %s and not %s: %s" % (out["status"], args.status_code, detail), **out)
    if args.dest and out["status"] in (200, 201, 203, 206):
        out.update(_write_dest(args, content, out["url"]))
    return out
