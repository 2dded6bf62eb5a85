"""Fixtures for tests that need real SSH hosts (see tests/fleet/README.md).

Tests outside tests/fleet/ can use these fixtures by importing them into their own
conftest.py:  ``from tests.fleet.conftest import fleet_image, fleet_factory  # noqa: F401``
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.fleet import fleet as fleetmod


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    # Any test using the fleet fixtures is a `fleet` test, marked or not (so -m "not fleet" works).
    for item in items:
        if {"fleet_factory", "fleet_image"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fleet)


@pytest.fixture(scope="session")
def fleet_image():
    """Path of the cached trixie root (built once, ~1-2 min, under a lock); skips when the
    machine cannot run a fleet (not root, no debootstrap/unshare/overlay, no mirror); under
    CI=true that skip fails the run with its reason (tests/conftest.py)."""
    reason = fleetmod.check_requirements()
    if reason:
        pytest.skip("fleet unavailable: " + reason)
    # Leftovers of runs that were killed (only fleets whose owner process is dead).
    fleetmod.reap_stale()
    return fleetmod.ensure_image()


@pytest.fixture
def fleet_factory(fleet_image, request) -> Callable[..., fleetmod.Fleet]:
    """make(n, name=None, **Fleet kwargs) -> a started Fleet; all are torn down after the test."""
    fleets: list[fleetmod.Fleet] = []
    default_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:40] or "test"

    def make(n: int = 1, name: str | None = None, **kwargs: Any) -> fleetmod.Fleet:
        fl = fleetmod.Fleet(n, name=name or default_name, **kwargs)
        fleets.append(fl)
        fl.up()
        return fl

    yield make
    errors = []
    for fl in reversed(fleets):
        try:
            fl.close()
        except Exception as exc:
            errors.append("%s: %s" % (fl.id, exc))
    if errors:
        pytest.fail("fleet teardown failed: " + "; ".join(errors))
