"""What a person sees: run a command on a pseudo-terminal, and replay its bytes as a terminal would."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence

SGR = re.compile(r"\x1b\[[0-9;]*m")


def run_in_pty(argv: Sequence[str], env: Mapping[str, str], cwd: str | None = None, columns: int = 120,
               timeout: float = 300.0) -> tuple[int, str]:
    """(exit code, every byte written to the terminal, decoded): stdin, stdout and stderr are a pty
    of `columns` columns, so the program sees a terminal exactly as in an interactive shell."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd,
                            close_fds=True, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
        rc = proc.wait(timeout=30)
    finally:
        os.close(master)
    return rc, b"".join(chunks).decode(errors="replace")


def screen(raw: str) -> list[str]:
    """The lines left on the terminal: carriage returns move back, ESC [K erases to the line's end
    (what the live view's redraws use); a pty turns \\n into \\r\\n."""
    lines: list[str] = []
    line, col = "", 0
    for token in re.split(r"(\r|\n|\x1b\[K)", SGR.sub("", raw)):
        if token == "\n":
            lines.append(line)
            line, col = "", 0
        elif token == "\r":
            col = 0
        elif token == "\x1b[K":
            line = line[:col]
        elif token:
            line = line[:col] + token + line[col + len(token):]
            col += len(token)
    lines.append(line)
    return lines


def frames(raw: str) -> list[str]:
    """Every state the live line was drawn in (each redraw starts with a carriage return)."""
    return [f.replace("\x1b[K", "") for f in re.split(r"\r", SGR.sub("", raw)) if f.startswith("TASK [")]
