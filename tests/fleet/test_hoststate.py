"""The host-state diff that idempotence tests rely on catches what a recap can hide: a file
rewritten with the same bytes, a mode or owner flipped, a package removed, a file added."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.hoststate import assert_unchanged, host_state, state_diff

pytestmark = pytest.mark.fleet


def test_the_diff_names_each_change_on_the_host(fleet_factory: Callable[..., Fleet]) -> None:
    fleet = fleet_factory(1)
    h = fleet.hosts[0]
    before = host_state(fleet, h)
    assert_unchanged(before, host_state(fleet, h), h.name)       # reading a host changes nothing

    rc, _, err = fleet.run(h, "cp -p /etc/hostname /tmp/x && cat /tmp/x > /etc/hostname"  # same bytes
                              " && chmod 0600 /etc/issue && chown admin /etc/motd && touch /root/new"
                              " && mkdir -p /root/.cache/provision && touch /root/.cache/provision/code-x"
                              " && dpkg --purge less")
    assert rc == 0, err
    after = host_state(fleet, h)
    diff = state_diff(before, after)
    assert "modified /etc/hostname: mtime changed (rewritten)" in diff
    assert "modified /etc/issue: mode 0o100644 -> 0o100600" in diff
    assert any(line.startswith("modified /etc/motd: owner 0:0 -> ") for line in diff), diff
    assert "added    /root/new" in diff
    assert not any("/root/.cache" in line for line in diff), diff   # the agent's cache is not state
    assert not any(line.startswith("modified /root:") for line in diff), diff   # its new entry .cache neither
    assert any(line.startswith("package  less:amd64: ") and line.endswith("-> (absent)") for line in diff), diff
    with pytest.raises(AssertionError, match=r"host01: the run changed the host \(\d+ differences\):\n"
                                             r"  (added|modified|removed|package) "):
        assert_unchanged(before, after, h.name)
