"""The alarm console's endpoints on both metadata backends: a signal alarm raised by the
evaluator from ingested samples shows on the board and the console with its evidence; an
operator acknowledges and shelves it (hidden from the board, counted, audited) and unshelves
it; an engineer's limits override the plant model's (validated, audited) and clear it; after
the last shift the board and the live feed say ``not_scheduled`` and no alert opens. Each
test works on a site of its own in tenant A."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from andon.platform import Role
from tests.api.floor import (
    admin_headers,
    audit_rows,
    clock_at,
    evaluator,
    ingest_states,
    new_site,
)
from tests.api.test_ops import MIN, RUN, S
from tests.api.world import World, sse_events


@pytest.fixture
def end(world: World) -> Iterator[int]:
    """The clock during a test, six hours after the shared world's data (as in test_ops)."""
    t = world.end + 6 * 3600 * S
    with clock_at(world, t):
        yield t


def _samples(w: World, site_id: str, signal: str, rows: list[tuple[int, float]]) -> None:
    body = {
        "samples": {
            "names": [signal],
            "index": [0] * len(rows),
            "ts": [t for t, _ in rows],
            "value": [v for _, v in rows],
            "quality": [0] * len(rows),
        }
    }
    r = w.call("POST", f"/sites/{site_id}/ingest", w.a.edge, body)
    assert r.status_code == 200, r.text


def _particles(site_key_machine: str) -> str:
    return site_key_machine.split("/", 1)[0] + "/cleanroom/particles"


def _raise_particles(w: World, end: int) -> tuple[str, str, dict[str, Any]]:
    """A site whose cleanroom particles exceed ISO class 7 (352 000/m³) for the last 7 min
    of 10: the demo plant's limit raises an alarm once it held for its 60 s on-delay."""
    site = new_site(w, "ops")
    sig = _particles(site.machines[0])
    t0 = end - 10 * MIN
    rows = [(t0 + i * 10 * S, 100_000.0 if i < 18 else 500_000.0) for i in range(60)]
    _samples(w, site.id, sig, rows)
    w.run(evaluator(w).step_site, w.a.id, site.id)
    r = w.call("GET", f"/sites/{site.id}/alarms", w.a.app, kind="high")
    assert r.status_code == 200, r.text
    alarms = r.json()["alarms"]
    assert len(alarms) == 1
    return site.id, sig, alarms[0]


def test_a_signal_alarm_is_raised_shown_acknowledged_shelved_and_unshelved(
    world: World, end: int
) -> None:
    site_id, sig, alarm = _raise_particles(world, end)
    t0 = end - 10 * MIN
    assert alarm["signal"] == sig and alarm["machine"] is None
    assert (alarm["kind"], alarm["severity"]) == ("high", "warning")
    assert (alarm["value"], alarm["threshold"]) == (500_000.0, 352_000.0)
    assert alarm["opened_at"] == t0 + 3 * MIN + 60 * S  # its on-delay after the first excess
    assert alarm["closed_at"] is None
    assert "352000 particles/m³" in alarm["message"]
    board = world.call("GET", f"/sites/{site_id}/board", world.a.app).json()
    assert [a["id"] for a in board["alerts"] if a["signal"]] == [alarm["id"]]
    assert board["shelved_alerts"] == 0

    uid, operator = world.user(world.a.id, [(Role.OPERATOR, site_id)])
    _, viewer = world.user(world.a.id, [(Role.VIEWER, site_id)])
    aid = alarm["id"]
    r = world.call("POST", f"/sites/{site_id}/alerts/{aid}/ack", operator)
    assert r.status_code == 200 and r.json()["acked_by"] == f"user:{uid}"
    body = {"duration_s": 3600, "reason": "door open for a delivery"}
    assert world.call(
        "POST", f"/sites/{site_id}/alerts/{aid}/shelve", viewer, body
    ).status_code == (403)
    bad = world.call("POST", f"/sites/{site_id}/alerts/{aid}/shelve", operator, {"duration_s": 0})
    assert bad.status_code == 422
    r = world.call("POST", f"/sites/{site_id}/alerts/{aid}/shelve", operator, body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["shelved_by"], got["shelved_until"], got["shelve_reason"]) == (
        f"user:{uid}",
        world.clock.now + 3600 * S,
        "door open for a delivery",
    )
    board = world.call("GET", f"/sites/{site_id}/board", world.a.app).json()
    assert aid not in {a["id"] for a in board["alerts"]}
    assert board["shelved_alerts"] == 1
    console = world.call("GET", f"/sites/{site_id}/alarms", world.a.app).json()
    assert aid not in {a["id"] for a in console["alarms"]} and console["shelved"] == 1
    shelved = world.call("GET", f"/sites/{site_id}/alarms", world.a.app, state="shelved").json()
    assert [a["id"] for a in shelved["alarms"]] == [aid]
    audit = [x for x in audit_rows(world, "alerts.shelve") if x["object"] == f"alert:{aid}"]
    assert len(audit) == 1 and audit[0]["actor"] == f"user:{uid}"
    assert audit[0]["detail"]["before"]["shelved_until"] is None
    assert audit[0]["detail"]["after"]["shelve_reason"] == "door open for a delivery"
    assert audit[0]["detail"]["signal"] == sig

    r = world.call("POST", f"/sites/{site_id}/alerts/{aid}/unshelve", operator)
    assert r.status_code == 200 and r.json()["shelved_until"] is None
    board = world.call("GET", f"/sites/{site_id}/board", world.a.app).json()
    assert aid in {a["id"] for a in board["alerts"]} and board["shelved_alerts"] == 0
    audit = [x for x in audit_rows(world, "alerts.unshelve") if x["object"] == f"alert:{aid}"]
    assert audit[0]["detail"]["before"]["shelve_reason"] == "door open for a delivery"
    assert audit[0]["detail"]["after"]["shelved_until"] is None
    # another site of the same tenant does not have this alarm
    r = world.call(
        "POST", f"/sites/{world.a.site_id}/alerts/{aid}/shelve", admin_headers(world), body
    )
    assert r.status_code == 404
    # filters: by kind, acknowledgement, time
    q = world.call("GET", f"/sites/{site_id}/alarms", world.a.app, state="all", acked="false")
    assert aid not in {a["id"] for a in q.json()["alarms"]}
    q = world.call("GET", f"/sites/{site_id}/alarms", world.a.app, state="all", start=end)
    assert aid not in {a["id"] for a in q.json()["alarms"]}
    q = world.call("GET", f"/sites/{site_id}/alarms", world.a.app, machine="nope")
    assert q.status_code == 422 and "machine" in q.text


def test_an_engineers_limits_override_the_models_are_validated_audited_and_clear_it(
    world: World, end: int
) -> None:
    site_id, sig, alarm = _raise_particles(world, end)
    _, operator = world.user(world.a.id, [(Role.OPERATOR, site_id)])
    uid, engineer = world.user(world.a.id, [(Role.ENGINEER, site_id)])
    url = f"/sites/{site_id}/alarms/limits"
    limits = {x["signal"]: x for x in world.call("GET", url, world.a.app).json()}
    assert limits[sig]["source"] == "model" and limits[sig]["alarms"]["high"] == 352_000
    new = {"signal": sig, "alarms": {"high": 2_000_000, "on_delay_s": 30}}
    assert world.call("PUT", url, operator, new).status_code == 403
    for body, field in (
        ({"signal": sig, "alarms": {"high": 1, "low": 5}}, "alarms"),
        ({"signal": sig, "alarms": {"hihg": 1}}, "alarms.hihg"),
        ({"signal": "x/y", "alarms": {"high": 1}}, "signal"),
    ):
        r = world.call("PUT", url, engineer, body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", field], r.text
    r = world.call("PUT", url, engineer, new)
    assert r.status_code == 200, r.text
    assert r.json()[0]["source"] == "engineer" and r.json()[0]["model"]["high"] == 352_000
    audit = [x for x in audit_rows(world, "alarms.limits.put") if x["object"] == f"signal:{sig}"]
    assert len(audit) == 1 and audit[0]["actor"] == f"user:{uid}"
    assert audit[0]["detail"]["before"] is None
    assert audit[0]["detail"]["after"] == {"high": 2_000_000, "on_delay_s": 30}
    # the next samples are judged by the engineer's limit: the alarm clears
    _samples(world, site_id, sig, [(end + i * 10 * S, 500_000.0) for i in range(1, 7)])
    world.clock.now = end + 60 * S
    world.run(evaluator(world).step_site, world.a.id, site_id)
    r = world.call("GET", f"/sites/{site_id}/alarms", world.a.app, state="cleared").json()
    assert [(a["id"], a["closed_at"]) for a in r["alarms"]] == [(alarm["id"], end + 10 * S)]
    # removing the override brings the model's limits back
    r = world.call("PUT", url, engineer, {"signal": sig, "alarms": None})
    assert r.status_code == 200 and r.json()[0]["source"] == "model"
    audit = [x for x in audit_rows(world, "alarms.limits.put") if x["object"] == f"signal:{sig}"]
    assert (
        audit[-1]["detail"]["before"]["high"] == 2_000_000 and audit[-1]["detail"]["after"] is None
    )


def test_after_the_last_shift_the_board_and_the_live_feed_say_not_scheduled(
    world: World,
) -> None:
    site = new_site(world, "ops")
    closing = world.start + 16 * 3600 * S  # Monday 22:00 in Taipei: the evening shift ends
    ingest_states(
        world, site.id, [(m, closing - 60 * MIN, closing, RUN, "") for m in site.machines]
    )
    with clock_at(world, closing + 60 * MIN):
        world.run(evaluator(world).step_site, world.a.id, site.id)
        alerts = world.call("GET", f"/sites/{site.id}/alarms", world.a.app, state="all")
        assert alerts.json()["alarms"] == []  # no offline alert per machine
        board = world.call("GET", f"/sites/{site.id}/board", world.a.app).json()
        assert {(m["state"], m["since"]) for m in board["machines"]} == {("not_scheduled", closing)}
        r = world.call("GET", f"/sites/{site.id}/live", world.a.app, interval_s=1, max_ticks=1)
        states = next(d for e, d in sse_events(r.text) if e == "states")
        assert {(x["state"], x["since"]) for x in states} == {("not_scheduled", closing)}
        assert len(states) == len(site.machines)
