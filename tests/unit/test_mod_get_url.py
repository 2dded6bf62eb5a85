"""get_url against a local http.server on 127.0.0.1 (a thread in the test): every request is counted."""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.unit.modhelp import run_module

PAYLOAD = b"cudnn-archive-bytes\n" * 1000


@dataclass
class Server:
    base: str
    root: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # the server is local: no proxy in between
    root = tmp_path / "www"
    root.mkdir()
    (root / "pkg.tar.xz").write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    (root / "SHA256SUMS").write_text(f"{'0' * 64}  other.tar.xz\n{digest} *pkg.tar.xz\n")
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(root), **kw)

        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path == "/private" and self.headers.get("Authorization") != "Basic dTpw":  # u:p
                self.send_error(401)
                return
            if self.path == "/private":
                self.path = "/pkg.tar.xz"
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_then_no_request_on_second_run(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.xz"
    res = run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), mode="0640")
    assert res["changed"] and not res["failed"] and dest.read_bytes() == PAYLOAD
    assert res["status_code"] == 200 and res["size"] == len(PAYLOAD)
    assert res["checksum_src"] == res["checksum_dest"] == hashlib.sha1(PAYLOAD).hexdigest()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    again = run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), mode="0640")
    assert again["changed"] is False and again["msg"] == "file already exists"
    assert server.requests == ["/pkg.tar.xz"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".provision")] == []


def test_checksum_match_skips_and_mismatch_redownloads(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.xz"
    good = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    assert run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), checksum=good)["changed"]
    assert run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), checksum=good)["changed"] is False
    assert len(server.requests) == 1
    dest.write_bytes(b"corrupted")
    assert run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), checksum=good)["changed"]
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_bad_checksum_fails_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.xz"
    res = run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), checksum="sha1:" + "0" * 40)
    assert res["failed"] and "did not match" in res["msg"]
    assert list(tmp_path.iterdir()) == [server.root]


def test_checksum_from_a_sums_file_url(server: Server, tmp_path: Path) -> None:
    args: dict[str, Any] = {"url": f"{server.base}/pkg.tar.xz", "dest": str(tmp_path),  # a directory: name from the URL
            "checksum": f"sha256:{server.base}/SHA256SUMS"}
    res = run_module("get_url", **args)
    assert res["changed"] and res["dest"] == str(tmp_path / "pkg.tar.xz")
    assert run_module("get_url", **args)["changed"] is False
    assert server.requests == ["/SHA256SUMS", "/pkg.tar.xz", "/SHA256SUMS"]  # the file itself once
    missing = run_module("get_url", url=f"{server.base}/nothere.bin", dest=str(tmp_path),
                         checksum=f"sha256:{server.base}/SHA256SUMS")
    assert missing["failed"] and "Unable to find a checksum" in missing["msg"]


def test_force_downloads_again_but_same_bytes_is_no_change(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "f"
    run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest))
    res = run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(dest), force=True)
    assert res["changed"] is False and len(server.requests) == 2


def test_check_mode_does_not_download(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.xz"
    res = run_module("get_url", check=True, url=f"{server.base}/pkg.tar.xz", dest=str(dest))
    assert res["changed"] and not dest.exists() and server.requests == []


def test_404_fails_with_a_clear_message(server: Server, tmp_path: Path) -> None:
    res = run_module("get_url", url=f"{server.base}/missing.tar", dest=str(tmp_path / "m"))
    assert res["failed"] and res["status_code"] == 404
    assert "HTTP Error 404" in res["msg"] and "/missing.tar" in res["msg"]
    assert not (tmp_path / "m").exists()


def test_basic_auth_and_missing_dest_dir(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "p"
    assert run_module("get_url", url=f"{server.base}/private", dest=str(dest))["status_code"] == 401
    ok = run_module("get_url", url=f"{server.base}/private", dest=str(dest), url_username="u", url_password="p")
    assert ok["changed"] and dest.read_bytes() == PAYLOAD
    nodir = run_module("get_url", url=f"{server.base}/pkg.tar.xz", dest=str(tmp_path / "no" / "f"))
    assert nodir["failed"] and "does not exist" in nodir["msg"]
    assert "format" in run_module("get_url", url=f"{server.base}/x", dest=str(dest), checksum="abc")["msg"]


def test_check_mode_into_a_directory_not_made_yet(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "later" / "pkg.tar.xz"
    res = run_module("get_url", check=True, url=f"{server.base}/pkg.tar.xz", dest=str(dest))
    assert res["changed"] and not res["failed"] and "does not exist yet" in res["msg"]
    assert server.requests == [] and not dest.parent.exists()
