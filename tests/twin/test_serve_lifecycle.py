"""``andon serve`` as a real process (issue 17): it stops promptly on SIGTERM even while an
idle TLS keep-alive client stays connected; its twin job workers die with it when it is
killed with ``kill -9``; a second ``andon serve`` on the same metadata database leaves the
first one's running jobs alone, and marks them interrupted once the first one is dead."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.connect.pki import make_ca, tls_leaf
from tests.edge.broker import free_port

SECRET = "s" * 40
DEADLINE_S = 60.0


def _until(what: str, check: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Serve:
    """One ``andon serve --config`` process."""

    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "andon.cli", "serve", "--config", str(self.config)],
                stdout=f,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"andon serve exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        _until("andon serve to listen", up)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _config(tmp: Path, name: str, db_url: str, **extra: Any) -> tuple[Path, int]:
    port = free_port()
    doc = {
        "port": port,
        "database_url": db_url,
        "telemetry_url": f"duckdb://{tmp / f'{name}.duckdb'}",
        "secret_key": SECRET,
        "web": False,
        "monitoring": {"alert_interval_s": 0},
        "limits": {"api_rps": 0, "ingest_points_per_s": 0, "auth_per_s": 0},
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path, port


@pytest.mark.slow
def test_sigterm_stops_serve_promptly_with_an_idle_tls_keep_alive_client(tmp_path: Path) -> None:
    """uvicorn waits for open connections at shutdown; an idle TLS client that never answers
    the close kept ``andon serve`` up for 30 s. The wait is bounded (``shutdown_grace_s``)."""
    ca = make_ca(tmp_path / "pki", "ca")
    leaf = tls_leaf(tmp_path / "pki", ca, "serve")
    config, port = _config(
        tmp_path,
        "tls",
        f"sqlite:///{tmp_path / 'platform.db'}",
        tls={"certfile": str(leaf.cert), "keyfile": str(leaf.key)},
        shutdown_grace_s=2,
    )
    serve = Serve(config, port, tmp_path / "serve.log")
    serve.start()
    try:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(
                b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
            )
            head = tls.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            # idle now, and it never reads again: the server's close is never answered
            t0 = time.monotonic()
            assert serve.proc is not None
            serve.proc.send_signal(signal.SIGTERM)
            code = serve.proc.wait(30)
            took = time.monotonic() - t0
        # uvicorn re-raises the signal it handled once it has stopped
        assert code in (0, -signal.SIGTERM), serve.log.read_text(errors="replace")[-2000:]
        assert took < 6.0, f"andon serve took {took:.1f} s to stop"
    finally:
        serve.close()
