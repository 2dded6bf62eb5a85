"""The local connection: this machine, through subprocesses (no SSH)."""

from __future__ import annotations

import subprocess

from provisioner.connection.base import Unreachable


class LocalStream:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise Unreachable(f"local agent is gone: {self._why()}") from exc

    def readline(self) -> bytes:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise Unreachable(f"local agent exited: {self._why()}")
        return line

    def _why(self) -> str:
        try:
            self.proc.wait(timeout=2)
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        except Exception:
            err = ""
        return err.strip()[-500:] or f"exit code {self.proc.returncode}"

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


class LocalConnection:
    def __init__(self, name: str = "localhost") -> None:
        self.name = name
        self._streams: list[LocalStream] = []

    def open(self) -> None:
        return None

    def start(self, argv: list[str]) -> LocalStream:
        stream = LocalStream(argv)
        self._streams.append(stream)
        return stream

    def run_raw(self, command: str, stdin: bytes = b"", timeout: float | None = None,
                pty: bool = False) -> tuple[int, bytes, bytes]:
        """`command` through /bin/sh, no agent (the `raw` module): (exit status, stdout, stderr).
        No terminal here (`pty` is the SSH side's): the output is the same bar stderr's place."""
        try:
            proc = subprocess.run(command, shell=True, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise Unreachable(f"raw command timed out after {timeout}s") from exc
        return proc.returncode, proc.stdout, proc.stderr

    def close(self) -> None:
        for s in self._streams:
            s.close()
        self._streams.clear()

