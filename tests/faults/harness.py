"""The fault harness: a real edge process (``andon edge``), a real Mosquitto and the real ingest
gateway (with its MQTT receiver and a DuckDB store), a source whose every value is known
(point ``k`` has value ``k``), and one injected fault per scenario.

``Run.verdict`` checks what every scenario must hold: nothing lost that was not counted as
dropped (so nothing acknowledged is lost), nothing stored twice, every drop counted once, and
recovery within the scenario's bound; it prints one line per scenario (and appends it to
``.andon/faults.txt``)::

    fault kill9: sent=60000 stored=60000 lost=0 dup=0 dropped=0 recovery_s=1.32
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from andon.edge.agent import read_status
from tests.edge.broker import Broker
from tests.edge.helpers import KEY, Platform, signals, spawn_edge, until

__all__ = [
    "NAMES",
    "START",
    "AclBroker",
    "Edge",
    "Run",
    "Verdict",
    "edge_config",
    "judge",
    "report",
]

NAMES = signals(6)
START = 1_767_225_600_000_000
EXAMPLE_ACL = Path(__file__).resolve().parents[2] / "examples" / "mosquitto" / "acl"
"""The Mosquitto ACL file the docs ship (``andon broker acl`` prints the same)."""
REPORT = EXAMPLE_ACL.parents[2] / ".andon" / "faults.txt"
"""Each scenario's line is appended here (pytest -n hides prints)."""


def edge_config(
    tmp: Path,
    port: int,
    total: int,
    rate: float,
    data_dir: Path | None = None,
    buffer: dict[str, Any] | None = None,
    names: list[str] | None = None,
    key: str = KEY,
) -> Path:
    """A site file: one synthetic, sequence-numbered source of ``total`` points (point ``k``
    has value ``k``, under ``names[k % len(names)]``; default ``NAMES``)."""
    doc = {
        "edge": {"id": "edge-1"},
        "data_dir": str(data_dir or tmp / "edge"),
        "status_interval_s": 0.1,
        "buffer": buffer or {},
        "uplink": {
            "host": "127.0.0.1",
            "port": port,
            "key": key,
            "window": 8,
            "ack_timeout_s": 1.0,
        },
        "connectors": [
            {
                "type": "synthetic",
                "name": "gen",
                "signals": names or NAMES,
                "batch_points": 2_000,
                "total_points": total,
                "rate_points_s": rate,
                "start_us": START,
            }
        ],
    }
    path = tmp / "site.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return path


class AclBroker(Broker):
    """Mosquitto with logins from a password file and the shipped ACL file
    (``examples/mosquitto/acl``), as a platform's broker runs; no TLS (loopback)."""

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        super().__init__(workdir)
        passwd = workdir / "mosquitto.passwd"
        passwd.write_text("", encoding="utf-8")
        exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        for user, password in users.items():
            subprocess.run([exe, "-b", str(passwd), user, password], check=True)
        self.conf.write_text(
            f"user {getpass.getuser()}\npersistence false\nmax_queued_messages 10000\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {passwd}\nacl_file {EXAMPLE_ACL}\n",
            encoding="utf-8",
        )


@dataclass
class Verdict:
    name: str
    sent: int
    stored: int
    lost: int
    dup: int
    dropped: int
    recovery_s: float
    status: dict[str, Any] = field(repr=False)

    def line(self) -> str:
        return (
            f"fault {self.name}: sent={self.sent} stored={self.stored} lost={self.lost} "
            f"dup={self.dup} dropped={self.dropped} recovery_s={self.recovery_s:.2f}"
        )


JSON_REPORT_ENV = "ANDON_FAULTS_JSON"
"""When set, a file each scenario's figures are appended to as one JSON object per line
(``benchmarks/faults.py`` sets it)."""


def report(v: Verdict) -> None:
    """Print a scenario's line and append it to ``REPORT`` (pytest -n hides prints), and to
    the JSON file named by ``$ANDON_FAULTS_JSON`` when set."""
    print(v.line())
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {v.line()}\n")
    target = os.environ.get(JSON_REPORT_ENV)
    if target:
        doc = {
            "scenario": v.name,
            "sent": v.sent,
            "stored": v.stored,
            "lost": v.lost,
            "dup": v.dup,
            "dropped": v.dropped,
            "recovery_s": round(v.recovery_s, 2),
        }
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")


class Edge:
    """The edge agent process of a scenario (``andon edge --config cfg``) and its files."""

    def __init__(self, tmp: Path, cfg: Path) -> None:
        self.tmp = tmp
        self.cfg = cfg
        self.data_dir = Path(json.loads(cfg.read_text())["data_dir"])
        self.log = tmp / "edge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start_edge(self) -> None:
        self.proc = spawn_edge(self.cfg, self.log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any] | None:
        try:
            return read_status(self.data_dir)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def acked(self) -> int:
        """Points the edge reports acknowledged (-1 before its first status)."""
        st = self.status()
        return -1 if st is None else int(st["buffer"]["acked_points"])

    def edge_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def stop_edge(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 10)


async def judge(
    name: str,
    edge: Edge,
    total: int,
    values: Callable[[], Awaitable[dict[str, np.ndarray]]],
    since: float,
    bound_s: float,
    names: list[str] | None = None,
    recovery_s: float | None = None,
) -> Verdict:
    """Wait until every point of the source is stored or counted dropped (and the edge says
    so), then check: none lost, none stored twice, recovered within ``bound_s``.
    ``recovery_s``: the scenario's own measure (default: from ``since`` to settled)."""
    names = names or NAMES

    def settled() -> bool:
        st = edge.status()
        if st is None:
            return False
        b = st["buffer"]
        # each point once: acknowledged, or dropped (never stored, or deleted unsent)
        done = int(b["acked_points"]) + int(b["dropped_points"]) == total
        return done and int(b["pending_points"]) == 0

    await until(settled, bound_s, f"{name}: every point stored or counted dropped")
    recovery = time.monotonic() - since if recovery_s is None else recovery_s
    st = edge.status()
    assert st is not None
    b = st["buffer"]
    got = await values()
    stored = np.concatenate([v for v in got.values()] or [np.zeros(0)])
    distinct = len(np.unique(stored))
    dup = len(stored) - distinct
    # every stored value is one the source made, under its own signal
    for i, n in enumerate(names):
        v = got.get(n, np.zeros(0)).astype(np.int64)
        assert np.all(v % len(names) == i) and np.all((v >= 0) & (v < total))
    dropped = int(b["dropped_points"])
    lost = total - distinct - dropped
    out = Verdict(name, total, distinct, lost, dup, dropped, recovery, st)
    report(out)
    assert (lost, dup) == (0, 0), out.line()
    assert b["acked_points"] == distinct, out.line()  # acknowledged ⇔ stored
    assert recovery <= bound_s, out.line()
    return out


class Run(Edge):
    """One scenario: the platform (in this process), the edge process and its files."""

    def __init__(
        self, name: str, tmp: Path, broker: Broker, cfg: Path, login: tuple[str, str] | None = None
    ) -> None:
        super().__init__(tmp, cfg)
        self.name = name
        self.platform = Platform(tmp, broker.port, NAMES, login=login)

    def stored(self) -> int:
        return self.platform.gateway.stats.points_stored

    async def verdict(self, total: int, since: float, bound_s: float) -> Verdict:
        """``judge`` against the in-process platform's store."""
        return await judge(
            self.name,
            self,
            total,
            lambda: self.platform.values(START, START + 10**12),
            since,
            bound_s,
        )

    async def close(self) -> None:
        await self.stop_edge()
        await self.platform.close()
