"""The live feed (server-sent events): changed values per tick, and an end when the
credentials lapse. The app's sleep is the test clock's, so no test waits."""

from __future__ import annotations

import math

from andon.model.loader import parse_plant
from andon.platform import Role
from andon.store.base import TelemetryStore
from tests.api.world import World, demo_yaml, sse_events


def test_live_values_of_a_line(world: World) -> None:
    plant = parse_plant(demo_yaml())
    area, line = plant.lines()[0]
    prefix = f"{area.id}/{line.id}"
    a = world.a
    r = world.call("GET", f"/sites/{a.site_id}/live", a.app, prefix=prefix, max_ticks=3)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    # nothing changed after the first tick (states and alerts: tests/api/test_ops.py)
    assert [e for e, _ in events] == ["values", "states", "alerts", "end"]
    assert events[-1][1] == {"reason": "max_ticks"}
    store: TelemetryStore = world.app.state.services.store
    signals = [s for s in plant.signal_paths() if s.startswith(f"{plant.site.id}/{prefix}/")]
    direct = world.run(store.last_values, a.id, signals)
    got = {v["signal"]: v for v in events[0][1]}
    assert set(got) == set(direct)
    for s, lv in direct.items():
        assert got[s]["ts"] == lv.ts
        assert got[s]["value"] == (None if math.isnan(lv.value) else lv.value)


def test_live_feed_ends_when_the_token_lapses(world: World) -> None:
    _, headers = world.user(world.a.id, [(Role.VIEWER, None)])
    now = world.clock.now
    world.clock.advance_on_sleep = True
    try:
        r = world.call(
            "GET", f"/sites/{world.a.site_id}/live", headers, interval_s=60, max_ticks=1000
        )
    finally:
        world.clock.advance_on_sleep = False
        world.clock.now = now
    events = sse_events(r.text)
    assert events[-1] == ("end", {"reason": "credentials no longer valid"})
