"""The kiosk board: board devices (a board-only, site-only, revocable credential), line
targets, shift progress (plan versus actual), and the kiosk feed's end on revocation.

The world's plant is the demo plant (Asia/Taipei; day shift Mon 06:00–14:00 with a tea break
10:00–10:15 and lunch 12:00–12:30) with two hours of data from Monday 06:00."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from andon.model.loader import parse_plant
from andon.platform import Role
from andon.store.base import TelemetryStore
from tests.api.world import World, bearer, demo_yaml, sse_events

PLANT = parse_plant(demo_yaml())
L1 = f"{PLANT.site.id}/machining/L1"
L1_OUT = f"{L1}/IP-01"
"""L1's last station: it feeds no buffer, so its good parts are the line's output."""
HOUR = 3_600_000_000


@pytest.fixture
def manager(world: World) -> dict[str, str]:
    """A manager of tenant A's site (a site grant, not tenant-wide)."""
    _, h = world.user(world.a.id, [(Role.MANAGER, world.a.site_id)])
    return h


@pytest.fixture
def at_clock(world: World) -> Iterator[None]:
    now = world.clock.now
    yield
    world.clock.now = now


def _device(world: World, headers: dict[str, str], name: str = "Hall 2 TV") -> tuple[str, str]:
    r = world.call("POST", f"/sites/{world.a.site_id}/board-devices", headers, {"name": name})
    assert r.status_code == 201, r.text
    return r.json()["device"]["id"], r.json()["secret"]


def test_a_board_device_reads_its_sites_kiosk_and_nothing_else(
    world: World, manager: dict[str, str]
) -> None:
    a = world.a
    key_id, secret = _device(world, manager)
    tv = bearer(secret)
    r = world.call("GET", f"/sites/{a.site_id}/kiosk", tv)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {m["machine"] for m in body["board"]["machines"]} == {
        PLANT.machine_path(ar, ln, m) for ar, ln, m in PLANT.machines()
    }
    assert [x["line"] for x in body["lines"]] == [
        f"{PLANT.site.id}/{ar.id}/{ln.id}" for ar, ln in PLANT.lines()
    ]
    # everything else is refused: the board itself, telemetry, the live feed, the site
    for path, query in (
        (f"/sites/{a.site_id}/board", {}),
        (f"/sites/{a.site_id}", {}),
        (f"/sites/{a.site_id}/live", {"max_ticks": 1}),
        (f"/sites/{a.site_id}/stops", {"start": world.start, "end": world.end}),
        (f"/sites/{a.site_id}/board-devices", {}),
    ):
        assert world.call("GET", path, tv, **query).status_code == 403, path
    assert world.call("GET", "/sites", tv).status_code == 403
    # another tenant's site does not exist for it
    assert world.call("GET", f"/sites/{world.b.site_id}/kiosk", tv).status_code == 404
    # listed for the manager, with its site; the secret is not
    listed = world.call("GET", f"/sites/{a.site_id}/board-devices", manager).json()
    mine = next(d for d in listed if d["id"] == key_id)
    assert mine["site_id"] == a.site_id and mine["revoked_at"] is None
    assert secret not in json.dumps(listed)
    assert mine["expires_at"] - mine["created_at"] == 3650 * 86_400 * 1_000_000


def test_revoking_a_device_refuses_its_next_request_and_is_audited(
    world: World, manager: dict[str, str]
) -> None:
    a = world.a
    key_id, secret = _device(world, manager, "to revoke")
    tv = bearer(secret)
    assert world.call("GET", f"/sites/{a.site_id}/kiosk", tv).status_code == 200
    r = world.call("DELETE", f"/sites/{a.site_id}/board-devices/{key_id}", manager)
    assert r.status_code == 200 and r.json()["revoked_at"] == world.clock.now
    assert world.call("GET", f"/sites/{a.site_id}/kiosk", tv).status_code == 401
    actions = world.call("GET", "/audit", a.admin, action="board.devices.create").json()
    assert any(e["object"] == f"key:{key_id}" for e in actions)
    revoked = world.call("GET", "/audit", a.admin, action="board.devices.revoke").json()
    assert [e["object"] for e in revoked if e["object"] == f"key:{key_id}"] == [f"key:{key_id}"]


def test_the_device_endpoint_revokes_only_board_devices_of_its_site(
    world: World, manager: dict[str, str]
) -> None:
    a = world.a
    # the tenant's app key is not a board device: 404, and it keeps working
    r = world.call("DELETE", f"/sites/{a.site_id}/board-devices/{a.app_key_id}", manager)
    assert r.status_code == 404
    assert world.call("GET", f"/api-keys/{a.app_key_id}", a.admin).json()["revoked_at"] is None
    # tenant B's device, asked for through tenant A's site: 404
    r = world.call("DELETE", f"/sites/{a.site_id}/board-devices/{world.b.board_key_id}", manager)
    assert r.status_code == 404
    assert world.call("GET", f"/sites/{world.b.site_id}/kiosk", world.b.board).status_code == 200


def test_a_viewer_cannot_register_a_device_or_set_targets(world: World) -> None:
    a = world.a
    _, viewer = world.user(a.id, [(Role.VIEWER, a.site_id)])
    r = world.call("POST", f"/sites/{a.site_id}/board-devices", viewer, {"name": "x"})
    assert r.status_code == 403
    r = world.call("PUT", f"/sites/{a.site_id}/targets", viewer, {"line": L1, "oee": 0.8})
    assert r.status_code == 403
    assert world.call("GET", f"/sites/{a.site_id}/kiosk", viewer).status_code == 200


def test_the_kiosk_feed_ends_within_one_tick_of_revocation(
    world: World, manager: dict[str, str]
) -> None:
    a = world.a
    key_id, secret = _device(world, manager, "feed")
    svc = world.app.state.services
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            await svc.platform.revoke_api_key(a.id, key_id)

    old = svc.sleep
    svc.sleep = sleep
    try:
        r = world.call(
            "GET", f"/sites/{a.site_id}/kiosk/feed", bearer(secret), line=L1, max_ticks=50
        )
    finally:
        svc.sleep = old
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[-1] == ("end", {"reason": "credentials no longer valid"})
    assert len(sleeps) == 3  # the tick after the revocation is the last
    assert "values" not in {e for e, _ in events}  # states and alerts, no signal values
    first_states = events[0][1]
    assert events[0][0] == "states"
    assert {s["machine"] for s in first_states} == {
        f"{L1}/{m.id}" for m in PLANT.lines()[0][1].machines
    }


def test_targets_are_validated_set_by_a_manager_and_audited(
    world: World, manager: dict[str, str]
) -> None:
    a = world.a
    url = f"/sites/{a.site_id}/targets"
    r = world.call("PUT", url, manager, {"line": "demo/nowhere/L9", "oee": 0.8})
    assert r.status_code == 422 and "line" in r.text and "L9" in r.text
    r = world.call("PUT", url, manager, {"line": L1, "oee": 1.5})
    assert r.status_code == 422 and "oee" in r.text
    r = world.call("PUT", url, manager, {"line": L1, "per_hour": -3})
    assert r.status_code == 422 and "per_hour" in r.text
    r = world.call("PUT", url, manager, {"line": L1, "oee": 0.85, "per_hour": 40})
    assert r.status_code == 200, r.text
    got = {t["line"]: t for t in world.call("GET", url, a.app).json()}
    assert got[L1]["oee"] == 0.85 and got[L1]["per_hour"] == 40 and got[L1]["per_shift"] is None
    audit = world.call("GET", "/audit", a.admin, action="targets.put").json()
    assert audit[-1]["object"] == f"line:{L1}" and audit[-1]["detail"]["per_hour"] == 40
    # tenant B sees none of A's targets
    assert world.call("GET", f"/sites/{world.b.site_id}/targets", world.b.admin).json() == []


def _l1(world: World, headers: dict[str, str]) -> dict[str, Any]:
    r = world.call("GET", f"/sites/{world.a.site_id}/kiosk", headers, line=L1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["line"] for x in body["lines"]] == [L1]
    assert {m["line"] for m in body["board"]["machines"]} == {L1}
    line: dict[str, Any] = body["lines"][0]
    return line


def _good_out(world: World, start: int, end: int) -> int:
    store: TelemetryStore = world.app.state.services.store
    parts = world.run(store.read_parts, world.a.id, [L1_OUT], start, end)
    return int(np.sum(parts.good[(parts.ts >= start) & (parts.ts < end)]))


def test_shift_progress_is_target_rate_times_planned_time_and_output_of_the_last_station(
    world: World, manager: dict[str, str], at_clock: None
) -> None:
    a = world.a
    url = f"/sites/{a.site_id}/targets"
    assert world.call("PUT", url, manager, {"line": L1, "per_hour": 40}).status_code == 200
    # read with the board device's key (it does not expire when the clock moves on)
    # 08:00 on Monday: two hours of the day shift, no break yet
    world.clock.now = world.start + 2 * HOUR
    x = _l1(world, a.board)
    s = x["shift"]
    assert s["shift"] == "2026-01-05 day"
    assert (s["start"], s["end"], s["until"]) == (world.start, world.start + 8 * HOUR, world.end)
    assert s["planned_s"] == 7200 and s["planned_total_s"] == 8 * 3600 - 45 * 60
    assert s["plan"] == pytest.approx(80.0)
    assert s["actual"] == _good_out(world, world.start, world.end) > 0
    assert x["target"]["per_hour"] == 40
    assert x["oee"] is not None and 0 < x["oee"] <= 1
    # 10:10, in the tea break: 4 h 10 min into the shift, 4 h of it planned production
    world.clock.now = world.start + 4 * HOUR + 10 * 60_000_000
    s = _l1(world, a.board)["shift"]
    assert s["planned_s"] == 4 * 3600 and s["plan"] == pytest.approx(160.0)
    # a target per shift spreads over the shift's planned production time (7.25 h)
    body = {"line": L1, "per_shift": 290}
    _, manager = world.user(a.id, [(Role.MANAGER, a.site_id)])  # a token of the new time
    assert world.call("PUT", url, manager, body).status_code == 200
    s = _l1(world, a.board)["shift"]
    assert s["per_hour"] == pytest.approx(40.0) and s["plan"] == pytest.approx(160.0)
    # no target: no plan, still the actual count
    assert world.call("PUT", url, manager, {"line": L1}).status_code == 200
    x = _l1(world, a.board)
    assert x["target"] is None and x["shift"]["plan"] is None
    assert x["shift"]["actual"] == _good_out(world, world.start, world.end)


def test_a_kiosk_line_filter_names_the_bad_line(world: World) -> None:
    r = world.call("GET", f"/sites/{world.a.site_id}/kiosk", world.a.board, line="demo/x/L9")
    assert r.status_code == 422 and "line" in r.text and "L9" in r.text
