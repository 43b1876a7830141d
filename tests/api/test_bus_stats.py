"""The live bus's counters are visible to platform administrators in ``/ingest/stats``: what
ingest published, and each open subscription's deliveries and drops (a slow subscriber
loses its oldest messages, counted, and ingest never waits for it)."""

from __future__ import annotations

from typing import Any

from andon.api import PREFIX
from andon.bus import LiveBus
from andon.model.loader import parse_plant
from tests.api.world import World, demo_yaml

SIGNALS = parse_plant(demo_yaml()).signal_paths()


def test_ingest_publishes_and_a_slow_subscribers_drops_are_counted(world: World) -> None:
    w = world
    bus: LiveBus = w.app.state.services.bus
    cm = bus.subscribe(w.a.id, (">",), max_queue=2)
    sub = w.run(cm.__aenter__)
    try:
        t = w.end - 600_000_000 + 11  # instants the demo run never wrote
        for i in range(5):  # five writes of new values, nobody reading
            body: dict[str, Any] = {
                "samples": {
                    "names": [SIGNALS[2]],
                    "index": [0],
                    "ts": [t + i],
                    "value": [float(i)],
                    "quality": [0],
                }
            }
            r = w.client.post(f"{PREFIX}/sites/{w.a.site_id}/ingest", json=body, headers=w.a.edge)
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        stats = w.call("GET", "/ingest/stats", w.root).json()
        assert stats["live"]["published"] >= 5 and stats["live"]["failed"] == 0
        mine = [s for s in stats["bus"]["subscribers"] if s["tenant"] == w.a.id]
        assert mine == [{"tenant": w.a.id, "pattern": ">", "received": 5, "dropped": 3}]
        assert stats["bus"]["dropped"] >= 3
        assert sub.pending() == 2
    finally:
        w.run(cm.__aexit__, None, None, None)
    stats = w.call("GET", "/ingest/stats", w.root).json()
    assert not [s for s in stats["bus"]["subscribers"] if s["tenant"] == w.a.id]
