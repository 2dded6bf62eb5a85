"""apt-get's APT::Status-Fd lines, as captured from a real install on a Debian 13 fleet host
(tests/data/apt/install_numpy.status-fd.txt: `apt-get install -o APT::Status-Fd=3 python3-numpy`,
5 files downloaded from Debian's mirror, then dpkg), turned into the progress the live view shows."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from provisioner.host.runtime import Host
from provisioner.modules.apt import StatusReporter, parse_status

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "apt" / "install_numpy.status-fd.txt"


def captured() -> list[str]:
    return CAPTURED.read_text().splitlines()


def test_every_captured_line_parses_as_download_then_install() -> None:
    parsed = [parse_status(line) for line in captured()]
    assert all(p is not None for p in parsed)
    phases = [p[0] for p in parsed if p]
    assert phases == ["download"] * 17 + ["install"] * 32  # all downloads come before dpkg runs
    first, last = parsed[0], parsed[16]
    assert first == ("download", 0.0, "Retrieving file 1 of 5")
    assert last == ("download", 100.0, "Retrieving file 5 of 5")
    assert parsed[17] == ("install", 0.0, "Running dpkg")
    assert parsed[-1] == ("install", 95.2381, "Installed python3-numpy (amd64)")
    for phase in ("download", "install"):   # apt's percentages only grow within a phase
        percents = [p[1] for p in parsed if p and p[0] == phase]
        assert percents == sorted(percents)


def test_lines_that_are_not_progress_are_ignored() -> None:
    # kinds apt documents besides dl/pmstatus (written by hand: a conffile prompt and an error
    # did not occur in the captured install)
    assert parse_status("pmconffile:/etc/foo.conf:/etc/foo.conf.dpkg-new:1") is None
    assert parse_status("media-change:cdrom:Debian 13") is None
    assert parse_status("") is None
    assert parse_status("dlstatus:garbage") is None
    # a package field with an architecture (name:arch) keeps the percent found after it
    assert parse_status("pmstatus:libc6:i386:12.5000:Unpacking libc6:i386") == ("install", 12.5, "Unpacking libc6:i386")


def test_reporter_sends_few_messages_for_the_captured_install() -> None:
    sent: list[dict[str, Any]] = []
    reporter = StatusReporter(Host(progress=sent.append))
    for line in captured():
        reporter(line)
    # the first of each phase goes at once; repeats of a percent never; within 0.25 s no more
    assert [m["phase"] for m in sent] == ["download", "install"]
    assert sent[0] == {"tool": "apt", "phase": "download", "percent": 0.0, "text": "Retrieving file 1 of 5"}
    assert sent[1]["text"] == "Running dpkg"


def test_reporter_follows_a_slow_install() -> None:
    sent: list[dict[str, Any]] = []
    reporter = StatusReporter(Host(progress=sent.append))
    lines = captured()
    for line in lines:
        reporter(line)
        reporter.sent_at -= 1.0  # as if apt took a second per line
    downloads = [m["percent"] for m in sent if m["phase"] == "download"]
    installs = [m["percent"] for m in sent if m["phase"] == "install"]
    assert downloads == [0.0, 5.3, 10.8, 22.5, 23.1, 49.0, 55.9, 100.0]  # one per new whole percent
    assert installs[0] == 0.0 and installs[-1] == 95.2 and len(installs) == 21
    assert not Host().reports_progress and Host(progress=sent.append).reports_progress


def test_run_reporting_streams_status_lines_while_the_command_runs() -> None:
    """A real command writing to the fd it is given, as apt-get does with -o APT::Status-Fd=N."""
    seen: list[tuple[float, str]] = []
    code = ("import os, sys, time\n"
            "fd = int(sys._xoptions['status_fd'])\n"
            "for i in (1, 2, 3):\n"
            "    os.write(fd, b'dlstatus:%d:%d0.0:file %d\\n' % (i, i, i)); time.sleep(0.2)\n"
            "print('done')\n")
    t0 = time.monotonic()
    res = Host().run_reporting([sys.executable, "-c", code], lambda fd: ["-X", f"status_fd={fd}"],
                               lambda line: seen.append((time.monotonic() - t0, line)))
    assert res.rc == 0 and res.stdout == "done\n", res.stderr
    assert [line for _, line in seen] == ["dlstatus:1:10.0:file 1", "dlstatus:2:20.0:file 2", "dlstatus:3:30.0:file 3"]
    assert seen[0][0] < seen[-1][0] - 0.3   # streamed as they came, not at the end
