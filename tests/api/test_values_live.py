"""Text values on the live feed (decision 0202): a text value ingested over the JSON route
reaches an open ``/live`` feed as an ``event: text`` from the live bus, against a real server
(uvicorn on loopback) and a real DuckDB store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from andon.api import PREFIX, create_app
from andon.model.loader import parse_plant
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.api.live import live_server
from tests.api.test_values_text import ANCHOR
from tests.api.world import PASSWORD, demo_yaml


def _next(lines: Iterator[str], want: str) -> str:
    """The next ``want`` event's data (the client's read timeout, 10 s, bounds the wait)."""
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == want:
            return line[6:]
    raise AssertionError(f"the feed ended before a {want} event")


def test_an_ingested_text_value_reaches_the_live_feed_as_a_text_event(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'meta.db'}",
        limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0, "principal_rps": 0},
        monitoring={"alert_interval_s": 0},
        security={"secrets_dir": str(tmp_path / "secrets")},
    )
    yaml = demo_yaml().replace(
        ANCHOR, ANCHOR + "                - {id: program, type: program}\n", 1
    )
    plant = parse_plant(yaml)
    prg = plant.machine_path(*plant.machines()[0]) + "/program"
    store = DuckDBStore.open(None)
    try:
        with live_server(create_app(settings, store=store)) as live:
            assert httpx.get(live.url + PREFIX + "/health", timeout=30).status_code == 200
            pf: Platform = live.app.state.services.platform
            live.run(pf.create_tenant("ta", "TA"))
            live.run(
                pf.create_user("ta", "admin@ta.example", PASSWORD, [(Role.TENANT_ADMIN, None)])
            )
            site = live.run(pf.create_site("ta", yaml))
            with httpx.Client(base_url=live.url + PREFIX, timeout=10) as client:
                r = client.post(
                    "/auth/login", json={"email": "admin@ta.example", "password": PASSWORD}
                )
                admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
                r = client.post(
                    "/api-keys",
                    headers=admin,
                    json={
                        "name": "e",
                        "kind": "edge",
                        "permissions": ["ingest:write", "site:read"],
                    },
                )
                assert r.status_code == 201, r.text
                edge = {"Authorization": f"Bearer {r.json()['secret']}"}
                now = time.time_ns() // 1000
                # the feed ticks every 60 s: within this test only the bus can bring news
                with client.stream(
                    "GET",
                    f"/sites/{site['id']}/live",
                    headers=admin,
                    params={"interval_s": 60, "max_ticks": 2},
                ) as feed:
                    lines = feed.iter_lines()
                    _next(lines, "alerts")  # the first tick is complete
                    r = client.post(
                        f"/sites/{site['id']}/ingest",
                        headers=edge,
                        json={
                            "texts": {
                                "names": [prg],
                                "index": [0, 0],
                                "ts": [now - 1, now],
                                "value": ["O1000", "O1234 — Ø12"],
                                "quality": [0, 0],
                            }
                        },
                    )
                    assert r.status_code == 200 and r.json()["texts"] == 2, r.text
                    got = json.loads(_next(lines, "text"))
    finally:
        asyncio.run(store.close())
    # the newest value only, exactly as sent
    assert got == [{"signal": prg, "ts": now, "value": "O1234 — Ø12", "quality": 0, "code": None}]
