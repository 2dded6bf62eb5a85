from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import LocalSshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[LocalSshd]:
    if not LocalSshd.available():
        pytest.skip("needs root and OpenSSH's sshd (apt-get install openssh-server)")
    server = LocalSshd(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
