"""``andon serve`` as a real process for the fault scenarios that restart what it depends on
(the broker, the metadata database): provisioned before it starts (a tenant, the demo site,
an edge key and an app key), read back through its API.

Plain MQTT on loopback, no broker login (the ACL scenario is ``hostile_acks``); rate limits off
(they are not what these scenarios measure).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from andon.model.clock import wall_clock
from andon.model.loader import parse_plant
from andon.platform import Database, KeyKind, Permission, Platform, Role
from andon.platform.service import Principal
from tests.api.world import demo_yaml
from tests.edge.broker import free_port, wait_port

__all__ = ["HTTPS_NAMES", "ROOT", "SITE_NAMES", "Keys", "Serve", "provision"]

SECRET = "f" * 40
SITE_NAMES = list(parse_plant(demo_yaml()).signal_paths()[:6])
"""Six signals of the demo site: the fault source's names when it goes through ``andon serve``."""
HTTPS_NAMES = list(parse_plant(demo_yaml()).signal_paths()[6:12])
"""Six others, for a second source that posts frames over HTTPS."""


ROOT = ("root@platform.example", "a long root password")
"""A platform administrator (reads ``GET /ingest/stats``)."""


@dataclass(frozen=True)
class Keys:
    site_id: str
    edge: str
    app: str


async def provision(db_url: str) -> Keys:
    """Tenant ``ta`` with the demo site, an edge key (ingest) and an app key (read); the
    platform administrator ``ROOT``."""
    pf = Platform(Database(db_url), wall_clock, secret_key=SECRET)
    await pf.start()
    try:
        await pf.create_tenant("platform", "Platform")
        await pf.create_user("platform", *ROOT, [(Role.PLATFORM_ADMIN, None)])
        await pf.create_tenant("ta", "TA")
        site = (await pf.create_site("ta", demo_yaml()))["id"]
        admin = Principal("user", "setup", "ta", tenant_wide=frozenset(Permission))

        async def key(kind: KeyKind, perms: list[Permission]) -> str:
            _, secret = await pf.create_api_key(
                "ta",
                admin,
                name=kind.value,
                kind=kind,
                permissions=perms,
                site_ids=[site],
                ttl_s=86_400,
            )
            return str(secret)

        edge = await key(KeyKind.EDGE, [Permission.INGEST_WRITE, Permission.SITE_READ])
        app = await key(KeyKind.APP, [Permission.TELEMETRY_READ, Permission.SITE_READ])
        return Keys(site, edge, app)
    finally:
        await pf.db.close()


class Serve:
    """``andon serve --config`` with the metadata database ``db_url``, a DuckDB telemetry file
    and the MQTT uplink through the broker on ``broker_port``."""

    def __init__(self, tmp: Path, db_url: str, broker_port: int, keys: Keys) -> None:
        self.port = free_port()
        self.keys = keys
        self.config = tmp / "andon.yaml"
        self.config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "database_url": db_url,
                    "telemetry_url": f"duckdb://{tmp / 'telemetry.duckdb'}",
                    "secret_key": SECRET,
                    "web": False,
                    "monitoring": {"alert_interval_s": 0},
                    "limits": {
                        "api_rps": 0,
                        "ingest_points_per_s": 0,
                        "auth_per_s": 0,
                        "principal_rps": 0,
                        "anonymous_per_s": 0,
                    },
                    "broker": {"port": broker_port},
                    "ingest": {"workers": 1, "key_cache_s": 0.5},
                }
            ),
            encoding="utf-8",
        )
        self.log = tmp / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api/v1", timeout=30)

    def start(self) -> None:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "andon.cli", "serve", "--config", str(self.config)],
                stdout=f,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_port(self.port, up=True, timeout=60)

    def values(self, start: int, end: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Every stored value of ``names`` (``SITE_NAMES``) in ``[start, end)``, through the
        API."""
        r = self.api.get(
            f"/sites/{self.keys.site_id}/telemetry/range",
            params={"signal": names or SITE_NAMES, "start": start, "end": end},
            headers={"Authorization": f"Bearer {self.keys.app}"},
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert not doc["truncated"]
        index, value = np.array(doc["index"], dtype=int), np.array(doc["value"], dtype=float)
        return {n: value[index == i] for i, n in enumerate(doc["signals"])}

    def ingest_stats(self) -> dict[str, Any]:
        """``GET /ingest/stats`` as the platform administrator."""
        r = self.api.post("/auth/login", json={"email": ROOT[0], "password": ROOT[1]})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = self.api.get("/ingest/stats", headers=auth)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    def serve_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        self.api.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
