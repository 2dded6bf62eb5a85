"""uri: requests to a real http.server on 127.0.0.1 started by the test (json, forms, auth,
redirects, status codes, dest, creates), as a playbook would make them."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.modhelp import run_module


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/api":
            self._send(200, b'{"ok": true, "n": 3}', Set_Cookie="sid=abc; Path=/")
        elif self.path == "/text":
            self._send(200, b"plain words\n", "text/plain")
        elif self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/text")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/secret":
            want = "Basic " + base64.b64encode(b"alice:pw").decode()
            if self.headers.get("Authorization") == want:
                self._send(200, b'{"user": "alice"}')
            else:
                self._send(401, b"no", "text/plain", WWW_Authenticate='Basic realm="lab"')
        else:
            self._send(404, b"missing", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        echo = {"ctype": self.headers.get("Content-Type"), "body": body, "agent": self.headers.get("User-Agent"),
                "x": self.headers.get("X-Token")}
        self._send(201, json.dumps(echo).encode())


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_get_json_headers_cookies(server: str) -> None:
    out = run_module("uri", url=f"{server}/api")
    assert out["failed"] is False and out["changed"] is False and out["status"] == 200
    assert out["json"] == {"ok": True, "n": 3} and "content" not in out
    assert out["content_type"] == "application/json" and out["content_length"] == "20"
    assert out["cookies"] == {"sid": "abc"} and out["msg"] == "OK (20 bytes)"
    text = run_module("uri", url=f"{server}/text", return_content=True)
    assert text["content"] == "plain words\n" and "json" not in text


def test_post_json_form_and_headers(server: str) -> None:
    out = run_module("uri", url=f"{server}/post", method="POST", body={"a": [1, 2]}, body_format="json",
                     status_code=[201], headers={"X-Token": "t1"})
    assert out["status"] == 201 and out["json"]["ctype"] == "application/json"
    assert json.loads(out["json"]["body"]) == {"a": [1, 2]} and out["json"]["x"] == "t1"
    assert out["json"]["agent"] == "ansible-httpget"
    form = run_module("uri", url=f"{server}/post", method="POST", body={"name": "a b", "n": 1},
                      body_format="form-urlencoded", status_code="200,201")
    assert form["json"]["body"] == "name=a+b&n=1"
    assert form["json"]["ctype"] == "application/x-www-form-urlencoded"


def test_status_mismatch_fails_with_content(server: str) -> None:
    out = run_module("uri", url=f"{server}/nothing")
    assert out["failed"] and out["status"] == 404
    assert out["msg"] == "Status code was 404 and not [200]: HTTP Error 404: Not Found"
    assert out["content"] == "missing"
    assert run_module("uri", url=f"{server}/nothing", status_code=[200, 404])["failed"] is False
    assert run_module("uri", url=f"{server}/nothing", status_code=404)["status"] == 404  # one number
    assert "list of integers" in run_module("uri", url=f"{server}/nothing", status_code="x")["msg"]
    down = run_module("uri", url="http://127.0.0.1:1/x", timeout=2)
    assert down["failed"] and down["status"] == -1 and "Status code was -1 and not [200]: Request failed" in down["msg"]


def test_basic_auth_challenge_and_forced(server: str) -> None:
    assert run_module("uri", url=f"{server}/secret", status_code=[401])["status"] == 401
    out = run_module("uri", url=f"{server}/secret", url_username="alice", url_password="pw")
    assert out["status"] == 200 and out["json"] == {"user": "alice"}
    out = run_module("uri", url=f"{server}/secret", user="alice", password="pw", force_basic_auth=True)
    assert out["status"] == 200


def test_redirects_followed_or_not(server: str) -> None:
    out = run_module("uri", url=f"{server}/old", return_content=True)
    assert out["status"] == 200 and out["redirected"] is True and out["url"] == f"{server}/text"
    out = run_module("uri", url=f"{server}/old", follow_redirects="none", status_code=[301])
    assert out["status"] == 301 and out["location"] == "/text"


def test_dest_written_once_creates_and_check_mode(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "t.txt"
    first = run_module("uri", url=f"{server}/text", dest=str(dest), mode="0640")
    assert first["changed"] is True and dest.read_text() == "plain words\n" and first["path"] == str(dest)
    assert oct(dest.stat().st_mode & 0o777) == "0o640"
    assert run_module("uri", url=f"{server}/text", dest=str(dest), mode="0640")["changed"] is False
    skipped = run_module("uri", url=f"{server}/nothing", creates=str(dest))
    assert skipped["failed"] is False and skipped["changed"] is False and "exists" in skipped["msg"]
    assert run_module("uri", check=True, url=f"{server}/nothing")["skipped"] is True


def test_refused_edges(server: str) -> None:
    out = run_module("uri", url=f"{server}/post", method="POST", body_format="form-multipart", body={"a": 1})
    assert out["failed"] and "form-multipart is not supported" in out["msg"]
    out = run_module("uri", url=f"{server}/post", method="POST", src="local.bin")
    assert out["failed"] and "remote_src" in out["msg"]


def test_https_validate_certs(tmp_path: Path) -> None:
    """A real TLS server with a self-signed certificate: refused unless validate_certs is false or
    ca_path names the certificate."""
    import ssl
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_address[1]}/api"
    try:
        refused = run_module("uri", url=url, timeout=5)
        assert refused["failed"] and refused["status"] == -1 and "CERTIFICATE_VERIFY_FAILED" in refused["msg"]
        assert run_module("uri", url=url, validate_certs=False)["json"] == {"ok": True, "n": 3}
        assert run_module("uri", url=url, ca_path=str(cert))["status"] == 200
    finally:
        srv.shutdown()
        srv.server_close()
