"""Clock steps during ingest (issue 17): the platform's wall clock stepped back 1 h and forward
1 h, an edge's clock stepped forward and back 1 h, while a sequence-numbered source (point ``k``
has value ``k``) streams through the API with its default limits on.

Time is injected (decision: the injectable clock, not libfaketime): the app gets a wall clock
the test steps and a monotonic clock that only runs forward, as ``andon serve`` gets
``wall_clock`` and ``time.monotonic``.

* ingest keeps accepting through the platform's steps (rate limits on; a user token issued
  before a step is still good after it: no wall-clock ``iat`` check);
* an edge whose clock runs an hour ahead has its samples refused as ``future`` and counted
  (the only drops), so "last value" never freezes at a moment that has not come;
* edge health stays fresh after the edge's clock steps back (ordered by receipt);
* the MQTT JSON connector on an edge whose clock is an hour slow does not refuse good data.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
from fastapi.testclient import TestClient

from andon.api import PREFIX, create_app
from andon.connect.mqtt import MqttJsonConfig, MqttJsonConnector, TopicMap
from andon.model.clock import wall_clock
from andon.model.loader import parse_plant
from andon.platform import Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.api.world import demo_yaml
from tests.edge.broker import Broker
from tests.faults.harness import Verdict, report

pytestmark = pytest.mark.slow

HOUR = 3_600_000_000
FRAME_POINTS = 600  # 1 ms apart: one frame covers 0.6 s of the source
FRAMES_PER_PHASE = 15
PHASES: list[tuple[str, int, int]] = [
    # name, platform clock offset, edge clock offset (µs from true time)
    ("steady", 0, 0),
    ("edge_forward_1h", 0, HOUR),  # refused as future, counted
    ("edge_back_1h", 0, -HOUR),  # an hour old: stored, health stays fresh
    ("steady_again", 0, 0),
    ("platform_back_1h", -HOUR, 0),
    ("platform_forward_1h", HOUR, 0),
    ("recovered", 0, 0),
]
PASSWORD = "a long test password"


@dataclass
class Clocks:
    true_us: int
    platform_offset: int = 0
    mono_s: float = 0.0

    def wall(self) -> int:
        return self.true_us + self.platform_offset

    def monotonic(self) -> float:
        return self.mono_s

    def tick(self, seconds: float) -> None:
        self.true_us += int(seconds * 1e6)
        self.mono_s += seconds


def test_clock_steps_during_ingest(tmp_path: Path) -> None:
    clocks = Clocks(wall_clock())
    names = list(parse_plant(demo_yaml()).signal_paths()[:6])
    store = DuckDBStore.open(tmp_path / "telemetry.duckdb")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'platform.db'}",
        secret_key="s" * 40,
        web=False,
        monitoring={"alert_interval_s": 0},
        access_token_ttl_s=4 * 3600,  # expiry is not what this checks; iat is
    )
    app = create_app(settings, store=store, clock=clocks.wall, monotonic=clocks.monotonic)
    t_fault_end = recovery_s = 0.0
    try:
        with TestClient(app, client=("192.0.2.9", 50000)) as client:

            def call(method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
                return client.request(method, PREFIX + path, headers=headers, json=body)

            def login(email: str) -> dict[str, str]:
                r = call("POST", "/auth/login", {}, {"email": email, "password": PASSWORD})
                assert r.status_code == 200, r.text
                return {"Authorization": f"Bearer {r.json()['access_token']}"}

            pf = app.state.services.platform
            portal = client.portal
            assert portal is not None
            portal.call(pf.create_tenant, "platform", "Platform")
            portal.call(
                pf.create_user,
                "platform",
                "root@p.example",
                PASSWORD,
                [(Role.PLATFORM_ADMIN, None)],
            )
            root = login("root@p.example")
            r = call(
                "POST",
                "/tenants",
                root,
                {
                    "id": "ta",
                    "name": "TA",
                    "admin_email": "a@ta.example",
                    "admin_password": PASSWORD,
                },
            )
            assert r.status_code == 201, r.text
            admin = login("a@ta.example")  # issued at the true time; used through every step
            r = call("POST", "/sites", admin, {"model_yaml": demo_yaml()})
            assert r.status_code == 201, r.text
            site = r.json()["id"]
            r = call(
                "POST",
                "/api-keys",
                admin,
                {"name": "edge", "kind": "edge", "permissions": ["ingest:write", "site:read"]},
            )
            assert r.status_code == 201, r.text
            edge = {"Authorization": f"Bearer {r.json()['secret']}"}

            k = 0
            refused: Counter[str] = Counter()
            refused_in: set[str] = set()
            last_ts: dict[str, int] = {}
            for phase, p_off, e_off in PHASES:
                clocks.platform_offset = p_off
                if phase == "recovered":
                    t_fault_end = time.monotonic()  # every clock is right again
                for _ in range(FRAMES_PER_PHASE):
                    clocks.tick(1.0)
                    t0 = clocks.true_us + e_off
                    ks = np.arange(k, k + FRAME_POINTS)
                    ts = t0 + np.arange(FRAME_POINTS) * 1000
                    body = {
                        "samples": {
                            "names": names,
                            "index": (ks % len(names)).tolist(),
                            "ts": ts.tolist(),
                            "value": ks.astype(float).tolist(),
                            "quality": [0] * FRAME_POINTS,
                        }
                    }
                    r = call("POST", f"/sites/{site}/ingest", edge, body)
                    assert r.status_code == 200, (phase, r.status_code, r.text)
                    got = r.json()
                    if got["rejected"]:
                        refused.update(got["rejected"])
                        refused_in.add(phase)
                    else:
                        for i, n in enumerate(names):
                            newest = int(ts[ks % len(names) == i].max())
                            last_ts[n] = max(last_ts.get(n, 0), newest)
                        if phase == "recovered" and not recovery_s:
                            recovery_s = time.monotonic() - t_fault_end
                    k += FRAME_POINTS
                    # the edge reports health on its own clock; the platform's view stays fresh
                    report_body = {"edge": "edge-1", "time_us": t0, "interval_s": 1}
                    h = call("POST", f"/sites/{site}/edge/health", edge, report_body)
                    assert h.status_code == 202, (phase, h.text)
                    h = call("GET", f"/sites/{site}/edge/health", admin)
                    assert h.status_code == 200, (phase, h.status_code, h.text)
                    (snap,) = h.json()["edges"]
                    assert (snap["reported_us"], snap["stale"]) == (t0, False), (phase, snap)
                # "last value" is the newest sample stored, never one from a moment to come
                r = call("GET", f"/sites/{site}/telemetry/last", admin)
                assert r.status_code == 200, (phase, r.text)
                last = {v["signal"]: v["ts"] for v in r.json()["values"] if v["signal"] in names}
                assert last == last_ts, phase

            assert refused_in == {"edge_forward_1h"}, (refused_in, refused)
            assert set(refused) == {"future"}
            stats = call("GET", "/ingest/stats", root).json()["ingest"]
            assert stats["rejected"] == {"future": refused["future"]}
            read = portal.call(store.read, "ta", names, 0, 2**62)
            values = np.asarray(read.value)
            distinct = len(np.unique(values))
            dropped = refused["future"]
            v = Verdict(
                "clock_steps",
                sent=k,
                stored=distinct,
                lost=k - distinct - dropped,
                dup=len(values) - distinct,
                dropped=dropped,
                recovery_s=recovery_s,
                status={"refused": dict(refused)},
            )
            report(v)
            assert (v.lost, v.dup) == (0, 0), v.line()
            assert dropped == FRAMES_PER_PHASE * FRAME_POINTS
            assert 0 < recovery_s < 5
    finally:
        asyncio.run(store.close())


def test_mqtt_json_connector_on_a_slow_edge_clock_keeps_good_data(broker: Broker) -> None:
    """The edge's clock is an hour slow; the devices' own timestamps are right. The connector
    passes their samples on (the platform bounds the future by its own clock, decision 0312)."""
    slow = 3600 * 1_000_000
    cfg = MqttJsonConfig(
        name="sensors",
        port=broker.port,
        topics=[TopicMap(filter="plant/+/t", signal="site/hall/{1}/t", value="v", timestamp="ts")],
    )
    conn = MqttJsonConnector(cfg, clock=lambda: wall_clock() - slow)
    n = 50

    async def go() -> list[int]:
        got: list[int] = []

        async def consume() -> None:
            async for batch, _ in conn.batches(None):
                got.extend(int(v) for v in batch.value)
                if len(got) == n:
                    return

        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 20
        while not conn.health.device(f"127.0.0.1:{broker.port}").connected:
            assert time.monotonic() < deadline, "the connector never subscribed"
            await asyncio.sleep(0.02)
        async with aiomqtt.Client("127.0.0.1", broker.port) as c:
            for i in range(n):
                doc = {"v": i, "ts": wall_clock() // 1000}
                await c.publish("plant/m1/t", json.dumps(doc), qos=1)
        await asyncio.wait_for(task, 20)
        return got

    got = asyncio.run(go())
    assert got == list(range(n))
    assert conn.health.device(f"127.0.0.1:{broker.port}").rejected == {}
