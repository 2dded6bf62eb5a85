"""Each case of tests/compat/cases/ run by ansible-playbook and by provision on fresh fleet hosts:
the same task results, the same files, and a second run with changed=0 (tests/compat/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat import harness, tools

pytestmark = [pytest.mark.compat, pytest.mark.fleet]


@pytest.fixture(scope="session")
def ansible_playbook(fleet_image) -> Path:
    return tools.ensure_ansible()


@pytest.mark.parametrize("name", harness.list_cases())
def test_case(name: str, ansible_playbook: Path, fleet_factory, tmp_path: Path) -> None:
    case = harness.load_case(name)
    ansible, provision = harness.run_case(case, fleet_factory, tmp_path)
    report = harness.compare(case, ansible, provision)
    assert not report, report
