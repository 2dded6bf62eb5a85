"""Commands on the host without `subprocess` (provisioner/host/proc.py), JSON lines without `json`
(provisioner/host/wire.py), and what the agent imports on a no-op.

Real commands and real agents, started as the controller starts them. These two files replaced
`subprocess` and `json` in the agent: importing those cost each host ~7 ms and ~5 ms of CPU on
every run (python3 -X importtime and 50-run CPU means on a Debian 13 fleet host).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from provisioner.host import proc, wire
from provisioner.host.runtime import Host, glob_paths
from tests.unit.test_agent_cache import run_agent

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not reaped by its parent yet) is gone for our purpose
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_output_exit_code_and_stdin() -> None:
    p = proc.Proc(["sh", "-c", "read x; echo out:$x; echo err >&2; exit 3"], ENV, stdin_pipe=True)
    rc, out, err = p.communicate(b"hello\n")
    assert (rc, out, err) == (3, b"out:hello\n", b"err\n")
    assert p.pid not in proc.RUNNING


def test_large_input_and_output_at_once_do_not_deadlock() -> None:
    data = os.urandom(3 * 2**20)  # far beyond a pipe's 64 KiB, both ways at once
    p = proc.Proc(["cat"], ENV, stdin_pipe=True)
    rc, out, _ = p.communicate(data, timeout=60)
    assert rc == 0 and out == data


def test_a_command_that_stops_reading_its_input_is_not_an_error() -> None:
    p = proc.Proc(["sh", "-c", "head -c 10 >/dev/null; echo done"], ENV, stdin_pipe=True)
    rc, out, _ = p.communicate(b"x" * 2**20, timeout=30)
    assert (rc, out) == (0, b"done\n")


def test_timeout_kills_the_whole_process_group() -> None:
    p = proc.Proc(["sh", "-c", "sleep 30 & echo $!; wait"], ENV)
    assert p.stdout is not None
    child = int(os.read(p.stdout, 100).decode())
    t0 = time.monotonic()
    with pytest.raises(proc.Timeout):
        p.communicate(timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert p.returncode == -9 and p.pid not in proc.RUNNING
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the grandchild in the command's group survived"


def test_each_command_runs_in_a_session_of_its_own() -> None:
    p = proc.Proc(["sh", "-c", "ps -o sid= -p $$"], ENV)
    rc, out, _ = p.communicate()
    assert rc == 0 and int(out) == p.pid != os.getsid(0)


def test_sigpipe_is_back_to_its_default_in_the_command() -> None:
    # Python ignores SIGPIPE; a shell pipeline whose reader quits must end its writer quietly
    p = proc.Proc(["sh", "-c", "yes | head -n 2; echo status=$?"], ENV)
    rc, out, err = p.communicate(timeout=10)
    assert (rc, out, err) == (0, b"y\ny\nstatus=0\n", b"")


def test_the_program_is_found_on_the_commands_own_path(tmp_path: Path) -> None:
    tool = tmp_path / "only-here"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    rc, out, _ = proc.Proc(["only-here"], {"PATH": str(tmp_path)}).communicate()
    assert (rc, out) == (0, b"found\n")
    with pytest.raises(FileNotFoundError):
        proc.Proc(["only-here"], ENV)


def test_an_extra_descriptor_reaches_the_command_under_its_announced_number() -> None:
    r, w = os.pipe()
    try:
        p = proc.Proc(["sh", "-c", "echo status >&%d" % proc.child_fd(w)], ENV, pass_fd=w)
    finally:
        os.close(w)
    rc, _, err = p.communicate(timeout=10)
    assert (rc, err) == (0, b"")
    with os.fdopen(r, "rb") as status:
        assert status.read() == b"status\n"


def test_kill_from_another_thread_ends_a_running_command() -> None:
    import threading
    p = proc.Proc(["sleep", "30"], ENV)
    threading.Timer(0.3, lambda: [c.kill() for c in list(proc.RUNNING.values())]).start()
    rc, _, _ = p.communicate(timeout=20)
    assert rc == -9


def test_host_run_keeps_its_contract(tmp_path: Path) -> None:
    host = Host(env={"GREETING": "hi"})
    res = host.run(["sh", "-c", 'printf "%s\\r\\n" "$GREETING"; pwd'], cwd=str(tmp_path))
    assert (res.rc, res.stdout) == (0, "hi\n%s\n" % tmp_path)  # universal newlines, as subprocess's text mode
    assert host.run("echo $((1+2)) | tr 3 4", shell=True).stdout == "4\n"
    missing = host.run(["no-such-program-here"])
    assert missing.rc == 127 and "no-such-program-here" in missing.stderr
    assert host.run(["sleep", "5"], timeout=0.3).rc == 124
    assert host.run(["cat"], stdin="é\n").stdout == "é\n"
    assert host.run(["pwd"], cwd=str(tmp_path / "absent")).rc != 0


def test_glob_paths_matches_glob(tmp_path: Path) -> None:
    import glob
    for name in ("a1/x.conf", "a2/y.conf", "b/x.conf", ".hidden/x.conf", "a3"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    for pattern in ("a*/*.conf", "*/x.conf", ".*/x.conf", "a?", "a[12]/*", "nothing*/x", "a1/x.conf", "a3/x"):
        full = str(tmp_path / pattern)
        assert sorted(glob_paths(full)) == sorted(glob.glob(full)), pattern


@pytest.mark.parametrize("value", [
    {}, [], "", {"a": [1, -2, 2.5, 1e300, None, True, False]}, {"é": "\u2603\n\t\"\\"}, [[[{"x": {}}]]],
])
def test_wire_is_json(value: object) -> None:
    text = wire.dumps(value)
    assert text == json.dumps(value)
    assert wire.loads(text) == json.loads(text) == value
    assert wire.loads("  " + text + "\n") == value


def test_wire_edge_cases() -> None:
    assert wire.dumps({"t": (1, 2), "p": Path("/x")}) == '{"t": [1, 2], "p": "/x"}'  # default=str
    assert math.isinf(wire.loads('{"v": Infinity}')["v"])
    for bad in ('{"a": 1} x', '{"a": ', "", "[1,]"):
        with pytest.raises(ValueError):
            wire.loads(bad)


def test_a_no_op_agent_imports_neither_json_nor_subprocess_nor_typing(tmp_path: Path) -> None:
    target = tmp_path / "motd"
    target.write_text("hello\n")
    replies = run_agent(tmp_path, [
        {"op": "facts"},
        {"op": "run", "module": "copy", "args": {"dest": str(target), "content": "hello\n"}},
        {"op": "run", "module": "file", "args": {"path": str(tmp_path), "state": "directory"}},
        {"op": "run", "module": "command", "args": {"cmd": "true", "creates": str(tmp_path / "*")}},
        {"op": "run", "module": "apt", "args": {"name": ["coreutils"]}} if os.path.exists("/usr/bin/dpkg-query")
        else {"op": "hello"},
        {"op": "hello", "modules": True},
    ])
    assert all(not r.get("failed") for r in replies), replies
    assert replies[1]["changed"] is False
    imported = set(replies[-1]["modules"])
    assert {"provisioner.modules.copy", "provisioner.host.facts"} <= imported
    assert not imported & {"json", "subprocess", "typing", "socket", "glob", "selectors", "base64", "threading",
                           "signal", "contextlib"}, sorted(imported)
