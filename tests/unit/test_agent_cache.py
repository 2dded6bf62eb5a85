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
from provisioner.host.agent import BOOT_CODE, BOOT_MARKER, NEED_MARKER


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


# -- the bundle a host keeps (~/.cache/provision/bundle-DIGEST) --------------------------------

def run_named(home: Path, requests: list[dict], digest: str | None = None,
              line: bytes | None = None) -> tuple[bool, list[dict]]:
    """Start the agent as the controller does with a first request: the boot line names the
    bundle; the marker and every request are written at once, the bundle only when the host asks
    for it. Returns (whether the host asked for the bundle, the replies in order)."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", BOOT_CODE, digest or bundle.bundle_digest()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(BOOT_MARKER + b"\n" + b"".join(json.dumps({**r, "id": i}).encode() + b"\n"
                                                   for i, r in enumerate(requests)))
    proc.stdin.flush()
    first = proc.stdout.readline()
    asked = first.rstrip() == NEED_MARKER
    if asked:
        proc.stdin.write(line or bundle.bundle_line())
        proc.stdin.flush()
        first = proc.stdout.readline()
    replies = [json.loads(first)] + [json.loads(proc.stdout.readline()) for _ in requests[1:]]
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    assert [r["id"] for r in replies] == list(range(len(requests)))
    return asked, replies


def kept(home: Path) -> list[Path]:
    return sorted((home / ".cache" / "provision").glob("bundle-*"))


def test_a_host_keeps_the_bundle_and_the_next_run_does_not_send_it(tmp_path: Path) -> None:
    asked, replies = run_named(tmp_path, [{"op": "facts"}, {"op": "run", "module": "stat", "args": {"path": "/"}}])
    assert asked and replies[0]["facts"]["system"] == "Linux" and replies[1]["stat"]["isdir"] is True
    [line] = kept(tmp_path)
    unpacked = zlib.decompress(base64.b64decode(bundle.bundle_line()))
    # unpacked (no base64 or zlib at the next start), then its end mark: a cut file is not run
    assert line.name == "bundle-" + bundle.bundle_digest()
    assert line.read_bytes() == unpacked + b"\n#end " + bundle.bundle_digest().encode()
    assert line.stat().st_mode & 0o777 == 0o600
    asked, replies = run_named(tmp_path, [{"op": "facts"}, {"op": "run", "module": "stat", "args": {"path": "/"}}])
    assert not asked and replies[1]["stat"]["isdir"] is True


def test_the_bundle_is_kept_by_the_second_answer_even_if_the_agent_is_killed_then(tmp_path: Path) -> None:
    """The controller does not wait for an agent to exit: the bundle must be on disk by the time the
    run's second answer arrives, not only once stdin closes. Here the agent is SIGKILLed right after
    that answer (a controller gone, a session torn down), and the next run still starts from it."""
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", BOOT_CODE, bundle.bundle_digest()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(BOOT_MARKER + b"\n" + json.dumps({"op": "facts", "id": 0}).encode() + b"\n")
    proc.stdin.flush()
    assert proc.stdout.readline().rstrip() == NEED_MARKER
    proc.stdin.write(bundle.bundle_line())
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 0
    proc.stdin.write(json.dumps({"op": "run", "module": "stat", "args": {"path": "/"}, "id": 1}).encode() + b"\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["stat"]["isdir"] is True
    [line] = kept(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()
    assert line.name == "bundle-" + bundle.bundle_digest()
    asked, replies = run_named(tmp_path, [{"op": "facts"}])
    assert not asked and replies[0]["facts"]["system"] == "Linux"


def test_a_kept_bundle_others_may_write_or_damaged_or_another_is_not_used(tmp_path: Path) -> None:
    run_named(tmp_path, [{"op": "facts"}])
    [line] = kept(tmp_path)
    good = line.read_bytes()
    line.chmod(0o620)
    assert run_named(tmp_path, [{"op": "facts"}])[0], "a group-writable bundle was used"
    assert line.stat().st_mode & 0o777 == 0o600 and line.read_bytes() == good  # replaced by the one sent
    line.write_bytes(good[: len(good) // 2])
    asked, replies = run_named(tmp_path, [{"op": "facts"}])
    assert asked and replies[0]["facts"]["system"] == "Linux" and line.read_bytes() == good
    # a file named for this digest that holds another bundle is not run
    sources = bundle._host_sources()
    sources["provisioner.host.extra_for_test"] = "X = 1\n"
    line.write_bytes(bundle.pack(sources) + b"\n#end " + bundle.bundle_digest().encode())
    assert run_named(tmp_path, [{"op": "facts"}])[0]


def test_a_new_bundle_replaces_the_kept_one(tmp_path: Path) -> None:
    run_named(tmp_path, [{"op": "facts"}])
    [old] = kept(tmp_path)
    sources = bundle._host_sources()
    sources["provisioner.host.extra_for_test"] = "X = 1\n"
    digest, packed = bundle._pack(sources)
    asked, replies = run_named(tmp_path, [{"op": "facts"}], digest=digest,
                               line=base64.b64encode(zlib.compress(packed)) + b"\n")
    assert asked and replies[0]["facts"]["system"] == "Linux"
    [new] = kept(tmp_path)
    assert new.name == "bundle-" + digest and not old.exists()


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
