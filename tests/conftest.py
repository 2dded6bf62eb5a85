"""Suite-wide fixtures and the rules that keep a run honest.

Every test is one of four kinds: `gpu` (marked gpu), `fleet` (real SSH hosts), `ssh` (the local
sshd fixture) or `unit` (the rest). The run ends with one line counting what ran per kind, so a run
that ran no fleet test cannot look green; and under CI (`CI=true`) a skipped test that is not a
GPU test is an error carrying the skip's reason: CI has everything the suite needs (tests/run.sh
installs it), so a skip there means a part of the suite silently did not run.
"""
from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sshd import LocalSshd

KINDS = ("unit", "ssh", "fleet", "gpu")
# Outcomes a test can end with, the worst first: a test counts once, under its worst phase.
OUTCOMES = ("failed", "error", "skipped", "xfailed", "xpassed", "passed")
_KIND_KEY = pytest.StashKey[dict[str, str]]()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[LocalSshd]:
    if not LocalSshd.available():
        pytest.skip("needs root and OpenSSH's sshd (apt-get install openssh-server)")
    server = LocalSshd(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def kind_of(item: pytest.Item) -> str:
    if item.get_closest_marker("gpu"):
        return "gpu"
    names = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker("fleet") or {"fleet_factory", "fleet_image"} & names:
        return "fleet"
    if "sshd" in names:
        return "ssh"
    return "unit"


def _kind_of_path(nodeid: str) -> str:
    """The kind of a module that was skipped whole, before it had items."""
    top = nodeid.replace("\\", "/").split("/")
    return {"gpu": "gpu", "fleet": "fleet"}.get(top[1] if len(top) > 1 and top[0] == "tests" else "", "unit")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ssh: uses the local sshd fixture (set from the fixture)")
    config.stash[_KIND_KEY] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kinds = config.stash[_KIND_KEY]
    for item in items:
        kind = kind_of(item)
        kinds[item.nodeid] = kind
        if kind == "ssh":
            item.add_marker(pytest.mark.ssh)


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_in_ci(report: Any, kind: str) -> None:
    """Under CI, turn a skip of a non-GPU test (or module) into a failure that says why."""
    if not (in_ci() and report.skipped and kind != "gpu" and not hasattr(report, "wasxfail")):
        return
    report.outcome = "failed"
    report.longrepr = (f"{kind} test skipped under CI=true, which counts as a failure: "
                       f"{_skip_reason(report.longrepr)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    _fail_skip_in_ci(report, item.config.stash[_KIND_KEY].get(item.nodeid) or kind_of(item))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if isinstance(collector, pytest.Module):
        _fail_skip_in_ci(report, _kind_of_path(report.nodeid))
    return report


def kind_counts(stats: dict[str, list[Any]], kinds: dict[str, str]) -> dict[str, dict[str, int]]:
    """{kind: {outcome: tests}} from the terminal reporter's stats, each test once at its worst."""
    worst: dict[str, str] = {}
    for outcome in reversed(OUTCOMES):
        for report in stats.get(outcome, ()):
            nodeid = getattr(report, "nodeid", None)
            if nodeid:
                worst[nodeid] = outcome
    counts: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for nodeid, outcome in worst.items():
        kind = kinds.get(nodeid) or _kind_of_path(nodeid)
        counts[kind][outcome] = counts[kind].get(outcome, 0) + 1
    return counts


def summary_line(counts: dict[str, dict[str, int]], skip_reasons: dict[str, list[str]]) -> str:
    parts = []
    for kind in KINDS:
        done = counts[kind]
        if not done:
            parts.append(f"{kind} 0 ran")
            continue
        text = ", ".join(f"{done[o]} {o}" for o in OUTCOMES if done.get(o))
        if kind == "gpu" and done.get("skipped"):
            no_gpu = all(r.startswith("no GPU") for r in skip_reasons.get("gpu", ()))
            text += " (no GPU)" if no_gpu else ""
        parts.append(f"{kind} {text}")
    return "suite: " + ", ".join(parts)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> Iterator[None]:
    yield  # after pytest's short summary: the line sits just above the final count
    if config.option.collectonly:
        return
    kinds = config.stash[_KIND_KEY]
    reasons: dict[str, list[str]] = {}
    for report in terminalreporter.stats.get("skipped", ()):
        kind = kinds.get(report.nodeid) or _kind_of_path(report.nodeid)
        reasons.setdefault(kind, []).append(_skip_reason(report.longrepr))
    terminalreporter.write_line(summary_line(kind_counts(terminalreporter.stats, kinds), reasons))
