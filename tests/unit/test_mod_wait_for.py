"""wait_for: real sockets on 127.0.0.1 and real files; each wait ends when the condition comes true,
or fails after `timeout` with Ansible's message."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from tests.unit.modhelp import run_module


def _later(seconds: float, fn) -> threading.Thread:  # type: ignore[no-untyped-def]
    t = threading.Timer(seconds, fn)
    t.start()
    return t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_started_then_stopped() -> None:
    port = _free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _later(0.6, lambda: (srv.bind(("127.0.0.1", port)), srv.listen()))
    t0 = time.monotonic()
    out = run_module("wait_for", port=port, timeout=10, sleep=0.2)
    assert out["failed"] is False and out["changed"] is False and out["port"] == port
    assert 0.5 < time.monotonic() - t0 < 5 and out["elapsed"] == 0
    _later(0.5, srv.close)
    out = run_module("wait_for", port=port, state="stopped", timeout=10, sleep=0.2)
    assert out["failed"] is False


def test_port_timeout_message_and_msg() -> None:
    port = _free_port()
    out = run_module("wait_for", host="127.0.0.1", port=port, timeout=1, sleep=0.2)
    assert out["failed"] and out["msg"] == f"Timeout when waiting for 127.0.0.1:{port}"
    out = run_module("wait_for", port=port, timeout=0.5, sleep=0.2, msg="db never came up")
    assert out["msg"] == "db never came up"


def test_port_search_regex_reads_banner() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.9 hello\r\n")
        time.sleep(0.3)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    out = run_module("wait_for", port=port, search_regex=r"OpenSSH_(\d+)", timeout=5)
    srv.close()
    assert out["failed"] is False and out["match_groups"] == ["9"]


def test_path_present_regex_and_absent(tmp_path: Path) -> None:
    f = tmp_path / "ready"
    _later(0.4, lambda: f.write_text("booting\nstatus=ready pid=42\n"))
    out = run_module("wait_for", path=str(f), search_regex=r"pid=(?P<pid>\d+)", timeout=10, sleep=0.1)
    assert out["failed"] is False and out["match_groupdict"] == {"pid": "42"}
    _later(0.4, f.unlink)
    assert run_module("wait_for", path=str(f), state="absent", timeout=10, sleep=0.1)["failed"] is False
    out = run_module("wait_for", path=str(f), timeout=0.3, sleep=0.1)
    assert out["failed"] and out["msg"] == f"Timeout when waiting for file {f}"
    f.write_text("x")
    out = run_module("wait_for", path=str(f), state="absent", timeout=0.3, sleep=0.1)
    assert out["msg"] == f"Timeout when waiting for {f} to be absent."


def test_drained_counts_live_connections() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    out = run_module("wait_for", port=port, state="drained", timeout=0.5, sleep=0.1)
    assert out["failed"] and out["msg"] == f"Timeout when waiting for 127.0.0.1:{port} to drain"
    out = run_module("wait_for", port=port, state="drained", timeout=0.5, sleep=0.1, exclude_hosts=["127.0.0.1"])
    assert out["failed"] is False
    for s in (client, conn, srv):
        s.close()


def test_skipped_in_check_mode_and_bad_combinations(tmp_path: Path) -> None:
    out = run_module("wait_for", check=True, port=1, timeout=100)
    assert out["skipped"] is True
    assert "can not both" in run_module("wait_for", port=1, path=str(tmp_path))["msg"]
    out = run_module("wait_for", timeout=0.2)
    assert out["failed"] is False and out["elapsed"] == 0
