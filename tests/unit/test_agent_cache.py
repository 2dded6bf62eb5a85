"""The agent's bytecode cache on the host (~/.cache/provision/code-<bundle hash>.<python tag>).

Real agents, started as the controller starts them (python3 -I -S -c BOOT_CODE, the bundle on
stdin), with HOME pointing at a temporary directory.
"""

from __future__ import annotations

import base64
import json
import marshal
import os
import subprocess
import sys
import zlib
from pathlib import Path

from provisioner.host import bundle
from provisioner.host.agent import BOOT_CODE, BOOT_MARKER


def run_agent(home: Path, requests: list[dict], line: bytes | None = None) -> list[dict]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    payload = BOOT_MARKER + b"\n" + (line or bundle.bundle_line())
    payload += b"".join(json.dumps({**r, "id": i}).encode() + b"\n" for i, r in enumerate(requests))
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", BOOT_CODE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(payload)
    proc.stdin.flush()
    replies = [json.loads(proc.stdout.readline()) for _ in requests]
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    return replies


def cache_files(home: Path) -> list[Path]:
    return sorted((home / ".cache" / "provision").glob("code-*"))


def test_the_first_run_writes_the_cache_private_to_the_user(tmp_path: Path) -> None:
    replies = run_agent(tmp_path, [{"op": "facts"}, {"op": "run", "module": "stat", "args": {"path": "/"}}])
    assert replies[0]["facts"]["system"] == "Linux" and replies[1]["stat"]["isdir"] is True
    [cache] = cache_files(tmp_path)
    assert cache.name.endswith("." + sys.implementation.cache_tag)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert cache.parent.stat().st_mode & 0o777 == 0o700
    code = marshal.loads(cache.read_bytes())
    # what this run imported is there, compiled; what it did not import is not
    assert {"provisioner.host.agent", "provisioner.host.facts", "provisioner.modules.stat"} <= set(code)
    assert "provisioner.modules.apt" not in code
    # a later run that needs another module adds it
    run_agent(tmp_path, [{"op": "run", "module": "command", "args": {"cmd": "true"}}])
    assert "provisioner.modules.command" in marshal.loads(cache.read_bytes())


def _plant(tmp_path: Path, mode: int) -> Path:
    """Run once, then replace the cached facts module with one that answers a marker."""
    run_agent(tmp_path, [{"op": "facts"}])
    [cache] = cache_files(tmp_path)
    code = marshal.loads(cache.read_bytes())
    code["provisioner.host.facts"] = compile("def gather(host):\n    return {'planted': True}\n",
                                             "<planted>", "exec")
    cache.write_bytes(marshal.dumps(code))
    cache.chmod(mode)
    return cache


def test_the_cache_is_what_the_next_run_executes(tmp_path: Path) -> None:
    _plant(tmp_path, 0o600)
    assert run_agent(tmp_path, [{"op": "facts"}])[0]["facts"] == {"planted": True}


def test_a_cache_others_may_write_is_ignored(tmp_path: Path) -> None:
    _plant(tmp_path, 0o620)
    facts = run_agent(tmp_path, [{"op": "facts"}])[0]["facts"]
    assert "planted" not in facts and facts["system"] == "Linux"


def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path: Path) -> None:
    run_agent(tmp_path, [{"op": "facts"}])
    [cache] = cache_files(tmp_path)
    cache.write_bytes(b"\x00garbage")
    assert run_agent(tmp_path, [{"op": "facts"}])[0]["facts"]["system"] == "Linux"
    assert "provisioner.host.facts" in marshal.loads(cache.read_bytes())


def test_another_bundle_uses_its_own_cache_and_drops_the_old_one(tmp_path: Path) -> None:
    run_agent(tmp_path, [{"op": "facts"}])
    [old] = cache_files(tmp_path)
    sources = bundle._host_sources()
    sources["provisioner.host.extra_for_test"] = "X = 1\n"
    line = base64.b64encode(zlib.compress(bundle.pack(sources))) + b"\n"
    assert run_agent(tmp_path, [{"op": "facts"}], line=line)[0]["facts"]["system"] == "Linux"
    [new] = cache_files(tmp_path)
    assert new != old and not old.exists()


def test_an_unwritable_home_only_costs_the_cache(tmp_path: Path) -> None:
    (tmp_path / ".cache").write_text("a file where the cache directory would go")
    assert run_agent(tmp_path, [{"op": "facts"}])[0]["facts"]["system"] == "Linux"
    assert (tmp_path / ".cache").is_file() and cache_files(tmp_path) == []


def test_everything_shipped_to_hosts_parses_as_python_3_7() -> None:
    """Hosts run their own python3 (>= 3.7): the loader and every shipped source must parse there."""
    import ast
    loader = bundle._LOADER % {"pkgs": set(bundle.HOST_PACKAGES), "hash": "0" * 24}
    ast.parse(loader, feature_version=(3, 7))
    ast.parse(BOOT_CODE, feature_version=(3, 7))
    for name, source in bundle._host_sources().items():
        try:
            ast.parse(source, feature_version=(3, 7))
        except SyntaxError as exc:
            raise AssertionError(f"{name}: {exc}") from None
