"""A real sshd on 127.0.0.1 for the engine's SSH tests: this machine's own OpenSSH server.

It runs as root with its own host key, config and log in a temp dir, on a free port,
and is stopped by its PID. The fleet (tests/fleet) gives whole separate hosts; this is
the cheap one for testing the connection itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalSshd:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key = workdir / "host_key"
        self.client_key = workdir / "client_key"
        self.known_hosts = workdir / "known_hosts"
        self.log = workdir / "sshd.log"

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and Path("/usr/sbin/sshd").exists() and shutil.which("ssh-keygen") is not None

    def start(self) -> LocalSshd:
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\nPidFile none\n"
            f"AuthorizedKeysFile {self.client_key}.pub\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "LogLevel DEBUG1\nMaxSessions 50\nMaxStartups 200\n")
        pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                         stderr=log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not start: {self.log.read_text()[-500:]}")

    def inventory(self, path: Path, names: tuple[str, ...] = ("s1",), **extra: object) -> Path:
        lines = ["all:", "  hosts:"]
        for n in names:
            lines.append(f"    {n}:")
            for k, v in {"ansible_host": "127.0.0.1", "ansible_port": self.port, "ansible_user": "root",
                         "ansible_ssh_private_key_file": str(self.client_key), **extra}.items():
                lines.append(f"      {k}: {v}")
        path.write_text("\n".join(lines) + "\n")
        return path

    def exec_sessions(self) -> int:
        """Exec requests served since the log began (one line per `exec` channel request)."""
        return sum(1 for line in self.log.read_text(errors="replace").splitlines() if "request exec" in line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
