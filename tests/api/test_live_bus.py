"""The live feed is pushed by the live bus, not polled from the store. Against a real server
(uvicorn on loopback, wall clock) and a real DuckDB store wrapped to count its reads: a
state and a value ingested over HTTPS reach an open ``/live`` feed within a second, and the
store is not read once between the feed's first snapshot and their arrival; with the
in-process bus and with the service's bus on NATS."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from andon.api import PREFIX, create_app
from andon.model.loader import parse_plant
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from andon.store.base import TelemetryStore
from tests.api.live import LiveServer, live_server
from tests.api.world import PASSWORD, demo_yaml

T0 = 1_767_225_600_000_000
READS = ("read", "aggregate", "last_values", "read_states", "open_states", "read_parts")


class CountingStore:
    """A real store whose read calls are counted (every other call passes straight on)."""

    def __init__(self, inner: TelemetryStore) -> None:
        self.inner = inner
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in READS:
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads[name] += 1
            return await attr(*args, **kwargs)

        return counted


def _next(lines: Iterator[str], want: str) -> tuple[float, str]:
    """The next ``want`` event's data and when it was read (the client's read timeout, 10 s,
    bounds the wait)."""
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == want:
            return time.monotonic(), line[6:]
    raise AssertionError(f"the feed ended before a {want} event")


@pytest.fixture(scope="module", params=["inprocess", "nats"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, CountingStore]]:
    kind = request.param
    if kind == "nats":
        try:
            socket.create_connection(("127.0.0.1", 4222), timeout=0.5).close()
        except OSError:
            pytest.skip("NATS is not reachable on 127.0.0.1:4222 (scripts/services.sh starts it)")
    tmp = tmp_path_factory.mktemp("livebus")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'meta.db'}",
        limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0, "principal_rps": 0},
        monitoring={"alert_interval_s": 0},
        security={"secrets_dir": str(tmp / "secrets")},
        bus={"kind": kind},
    )
    store = CountingStore(DuckDBStore.open(None))
    try:
        with live_server(create_app(settings, store=store)) as live:
            assert httpx.get(live.url + PREFIX + "/health", timeout=30).status_code == 200
            yield live, store
    finally:
        asyncio.run(store.inner.close())


def test_a_state_and_a_value_reach_the_feed_within_a_second_with_no_store_read(
    served: tuple[LiveServer, CountingStore],
) -> None:
    live, store = served
    pf: Platform = live.app.state.services.platform
    live.run(pf.create_tenant("ta", "TA"))
    live.run(pf.create_user("ta", "admin@ta.example", PASSWORD, [(Role.TENANT_ADMIN, None)]))
    site = live.run(pf.create_site("ta", demo_yaml()))
    api = live.url + PREFIX
    with httpx.Client(base_url=api, timeout=10) as client:
        r = client.post("/auth/login", json={"email": "admin@ta.example", "password": PASSWORD})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = client.post(
            "/api-keys",
            headers=admin,
            json={"name": "edge", "kind": "edge", "permissions": ["ingest:write", "site:read"]},
        )
        assert r.status_code == 201, r.text
        edge = {"Authorization": f"Bearer {r.json()['secret']}"}
        plant = parse_plant(demo_yaml())
        machine = next(plant.machine_path(a, ln, m) for a, ln, m in plant.machines())
        signal = next(s for s in plant.signal_paths() if s.startswith(machine + "/"))
        now = time.time_ns() // 1000
        # the feed ticks every 60 s: within this test only the bus can bring news
        with client.stream(
            "GET",
            f"/sites/{site['id']}/live",
            headers=admin,
            params={"interval_s": 60, "max_ticks": 2},
        ) as feed:
            lines = feed.iter_lines()
            _next(lines, "values")  # the snapshot
            _next(lines, "alerts")  # the first tick's floor part is complete
            reads = sum(store.reads.values())
            t0 = time.monotonic()
            r = client.post(
                f"/sites/{site['id']}/ingest",
                headers=edge,
                json={
                    "open_states": {
                        "names": [machine],
                        "index": [0],
                        "start": [now - 1_000_000],
                        "end": [now],
                        "state": [3],
                        "reason": ["jam"],
                    },
                    "samples": {
                        "names": [signal],
                        "index": [0],
                        "ts": [now],
                        "value": [42.5],
                        "quality": [0],
                    },
                },
            )
            assert r.status_code == 200, r.text
            # read after the POST returned: an upper bound of each arrival
            at_values, values = _next(lines, "values")
            at_states, states = _next(lines, "states")
            assert sum(store.reads.values()) == reads, store.reads  # no store read since
            assert at_values - t0 < 1.0 and at_states - t0 < 1.0, (at_values - t0, at_states - t0)
    assert f'"signal": "{signal}"' in values and '"value": 42.5' in values
    # the client went away: its feed ends and unsubscribes within two seconds, not at its
    # next tick (60 s), so a gone client does not keep queueing (and dropping) messages
    bus = live.app.state.services.bus
    deadline = time.monotonic() + 5
    while any(s.tenant == "ta" for s in bus.stats().subscribers):
        assert time.monotonic() < deadline, "the feed kept its subscription"
        time.sleep(0.05)
    assert time.monotonic() - deadline < -3
    assert f'"machine": "{machine}"' in states and '"state": "down"' in states


def test_the_kiosk_feed_gets_a_state_and_an_alert_change_within_a_second_with_no_store_read(
    served: tuple[LiveServer, CountingStore],
) -> None:
    """The kiosk's feed and the floor events of ``/live`` are pushed by the bus too: after
    the first tick's snapshot, a state ingested over HTTPS and an alert acknowledged through
    the API reach an open kiosk feed (ticking every 60 s) within a second, with no store
    read between."""
    live, store = served
    pf: Platform = live.app.state.services.platform
    live.run(pf.create_tenant("tk", "TK"))
    live.run(pf.create_user("tk", "admin@tk.example", PASSWORD, [(Role.TENANT_ADMIN, None)]))
    site = live.run(pf.create_site("tk", demo_yaml()))
    plant = parse_plant(demo_yaml())
    machines = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    api = live.url + PREFIX
    with httpx.Client(base_url=api, timeout=10) as client:
        r = client.post("/auth/login", json={"email": "admin@tk.example", "password": PASSWORD})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = client.post(
            "/api-keys",
            headers=admin,
            json={"name": "edge", "kind": "edge", "permissions": ["ingest:write", "site:read"]},
        )
        assert r.status_code == 201, r.text
        edge = {"Authorization": f"Bearer {r.json()['secret']}"}
        r = client.post(f"/sites/{site['id']}/board-devices", headers=admin, json={"name": "tv"})
        assert r.status_code == 201, r.text
        tv = {"Authorization": f"Bearer {r.json()['secret']}"}
        now = time.time_ns() // 1000
        hour = 3600 * 1_000_000
        # a stop an hour long without a reason, an hour ago: an unexplained_stop alert
        r = client.post(
            f"/sites/{site['id']}/ingest",
            headers=edge,
            json={
                "states": {
                    "names": [machines[0]],
                    "index": [0],
                    "start": [now - 2 * hour],
                    "end": [now - hour],
                    "state": [3],
                    "reason": [""],
                }
            },
        )
        assert r.status_code == 200, r.text
        assert live.run(live.app.state.services.alerts.step_site("tk", site["id"])) >= 1
        r = client.get(f"/sites/{site['id']}/alerts", headers=admin)
        alert = next(a for a in r.json() if a["kind"] == "unexplained_stop")
        assert alert["machine"] == machines[0]
        machine = machines[1]
        with client.stream(
            "GET",
            f"/sites/{site['id']}/kiosk/feed",
            headers=tv,
            params={"interval_s": 60, "max_ticks": 2},
        ) as feed:
            lines = feed.iter_lines()
            _, first = _next(lines, "states")
            _, opened = _next(lines, "alerts")  # the first tick is complete
            assert all(f'"machine": "{m}"' in first for m in machines)
            assert alert["id"] in opened
            reads = sum(store.reads.values())
            t0 = time.monotonic()
            r = client.post(f"/sites/{site['id']}/alerts/{alert['id']}/ack", headers=admin)
            assert r.status_code == 200, r.text
            at_alerts, acked = _next(lines, "alerts")
            t1 = time.monotonic()
            r = client.post(
                f"/sites/{site['id']}/ingest",
                headers=edge,
                json={
                    "open_states": {
                        "names": [machine],
                        "index": [0],
                        "start": [now - 1_000_000],
                        "end": [now],
                        "state": [3],
                        "reason": ["jam"],
                    }
                },
            )
            assert r.status_code == 200, r.text
            at_states, states = _next(lines, "states")
            assert sum(store.reads.values()) == reads, store.reads  # no store read since
            assert at_alerts - t0 < 1.0 and at_states - t1 < 1.0, (at_alerts - t0, at_states - t1)
    assert f'"id": "{alert["id"]}"' in acked and '"acked_by": "user:' in acked
    # only the machine that changed, with the state and since it was ingested with
    assert states.count('"machine"') == 1
    assert f'"machine": "{machine}"' in states and '"state": "down"' in states
    assert f'"since": {now - 1_000_000}' in states
