"""A private Mosquitto on a free loopback port, restartable (for fault tests)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Broker", "TlsBroker", "free_port", "wait_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, up: bool, timeout: float = 10.0) -> None:
    """Wait until the port accepts (``up``) or refuses connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} not {'up' if up else 'down'} after {timeout} s")


class Broker:
    """``mosquitto`` bound to 127.0.0.1 on its own port."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.exe = exe
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 10000\n",
            encoding="utf-8",
        )
        self.log = (workdir / "mosquitto.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=self.log, stderr=self.log
        )
        wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
            wait_port(self.port, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.log.close()


class TlsBroker(Broker):
    """``mosquitto`` with two loopback listeners, as a platform would run it: ``port`` for
    edges and devices (TLS with a certificate from ``ca``, user names and passwords from a
    ``mosquitto_passwd`` file, no anonymous access), ``plain_port`` for the platform's own
    services inside the trust boundary (anonymous, no TLS)."""

    def __init__(self, workdir: Path, cert: Path, key: Path, users: dict[str, str]) -> None:
        super().__init__(workdir)
        self.plain_port = free_port()
        passwd = workdir / "mosquitto.passwd"
        exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        passwd.write_text("", encoding="utf-8")
        for user, password in users.items():
            subprocess.run([exe, "-b", str(passwd), user, password], check=True)
        self.conf.write_text(
            # mosquitto started as root drops to the 'mosquitto' user, who cannot read the
            # test's private directory; stay the user the test runs as
            f"user {getpass.getuser()}\n"
            "per_listener_settings true\npersistence false\nmax_queued_messages 10000\n"
            f"listener {self.port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
            f"allow_anonymous false\npassword_file {passwd}\n"
            f"listener {self.plain_port} 127.0.0.1\nallow_anonymous true\n",
            encoding="utf-8",
        )

    def start(self) -> None:
        super().start()
        wait_port(self.plain_port, up=True)
