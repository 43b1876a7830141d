"""A private PostgreSQL cluster for the fault scenarios: ``initdb`` on a temporary directory and
``pg_ctl`` on a free loopback port, so a test can stop and start it without touching the
shared server on 5432. Debian's binaries (``/usr/lib/postgresql/<version>/bin``, installed by
``scripts/services-postgres.sh``). As root, the cluster runs as the ``postgres`` user (the
server refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.edge.broker import free_port, wait_port

__all__ = ["PrivatePostgres"]


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("no /usr/lib/postgresql/*/bin: run scripts/services-postgres.sh")
    return Path(found[-1])


class PrivatePostgres:
    """``url``: the cluster's ``postgres`` database as user ``andon`` (trust on loopback)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="andon-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        self.url = f"postgresql://andon@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "andon", "-A", "trust", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run(
            [*self._as, str(self.bin / tool), *args], capture_output=True, text=True, check=False
        )
        if r.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "start")
        wait_port(self.port, up=True)

    def stop(self) -> None:
        """Stop at once (``immediate``: no checkpoint, as a crash), then wait for the port."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        wait_port(self.port, up=False)

    def close(self) -> None:
        pidfile = self.data / "postmaster.pid"
        try:
            if pidfile.exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (OSError, RuntimeError):  # pg_ctl could not run (no process slots): signal it
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGQUIT)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
