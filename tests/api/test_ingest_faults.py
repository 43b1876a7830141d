"""Ingest faults as the API shows them (issue 17): a frame with sequence number 0 is stored, an
unreadable sequence number or an oversized frame is refused with the right status, samples far
ahead of the platform clock are refused as ``future``, the refusal counters are readable by a
platform administrator, and edge health follows the platform's clock, not the edge's."""

from __future__ import annotations

from andon.api import PREFIX
from andon.model.loader import parse_plant
from andon.model.types import SampleBatch
from andon.wire.frames import FRAME_CONTENT_TYPE, encode_frame
from tests.api.world import World, demo_yaml

SIGNALS = parse_plant(demo_yaml()).signal_paths()


def _post_frame(
    w: World, seq: int, ts: list[int], signal: str = SIGNALS[0]
) -> tuple[int, dict[str, object]]:
    batch = SampleBatch.build([signal], [0] * len(ts), ts, [float(i) for i in range(len(ts))])
    body = encode_frame("edge-1", "not-checked-over-https", "gen", seq, ts[0], False, batch)
    r = w.client.post(
        f"{PREFIX}/sites/{w.a.site_id}/ingest",
        content=body,
        headers={**w.a.edge, "content-type": FRAME_CONTENT_TYPE},
    )
    return r.status_code, r.json()


def test_https_frames_seq_zero_stored_bad_seq_and_oversize_refused(world: World) -> None:
    w = world
    t = w.end - 600_000_000 + 7  # an instant the demo run never wrote
    status, body = _post_frame(w, 0, [t, t + 1])
    assert (status, body["accepted"], body["duplicates"], body["rejected"]) == (200, 2, 0, {})
    status, body = _post_frame(w, 2**63, [t + 2])
    assert status == 422 and "bad_seq" in str(body), body
    gateway = w.app.state.services.gateway
    cap = gateway.max_frame_bytes
    gateway.max_frame_bytes = 1024
    try:
        status, body = _post_frame(w, 3, list(range(t + 3, t + 200)))
    finally:
        gateway.max_frame_bytes = cap
    assert status == 413, body
    stats = w.call("GET", "/ingest/stats", w.root)
    assert stats.status_code == 200, stats.text
    refused = stats.json()["gateway"]["frames_refused"]
    assert refused["bad_seq"] >= 1 and refused["too_large"] >= 1
    assert w.call("GET", "/ingest/stats", w.a.admin).status_code == 403


def test_samples_far_ahead_of_the_platform_clock_are_refused_as_future(world: World) -> None:
    w = world
    now = w.clock.now
    body = {
        "samples": {
            "names": [SIGNALS[1]],
            "index": [0, 0, 0],
            "ts": [now - 1_000_003, now + 240_000_003, now + 3_600_000_003],
            "value": [1.0, 2.0, 3.0],
            "quality": [0, 0, 0],
        }
    }
    r = w.call("POST", f"/sites/{w.a.site_id}/ingest", w.a.edge, body)
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (2, {"future": 1})
    assert w.call("GET", "/ingest/stats", w.root).json()["ingest"]["rejected"]["future"] >= 1


def test_edge_health_follows_the_platform_clock_when_the_edge_clock_steps_back(
    world: World,
) -> None:
    w = world
    edge = w.unique("edge-clock-")
    path = f"/sites/{w.a.site_id}/edge/health"
    first = {"edge": edge, "time_us": w.clock.now, "interval_s": 10}
    assert w.call("POST", path, w.a.edge, first).status_code == 202
    was = w.clock.now
    w.clock.now += 5_000_000
    try:
        stepped = {"edge": edge, "time_us": was - 3_600_000_000, "interval_s": 10}
        assert w.call("POST", path, w.a.edge, stepped).status_code == 202
        got = [e for e in w.call("GET", path, w.a.admin).json()["edges"] if e["edge"] == edge]
        assert [(e["reported_us"], e["received_us"], e["stale"]) for e in got] == [
            (stepped["time_us"], w.clock.now, False)
        ]
    finally:
        w.clock.now = was


def test_a_different_value_at_a_stored_instant_is_reported_as_a_conflict(world: World) -> None:
    w = world
    t = w.end - 900_000_000 + 11
    path = f"/sites/{w.a.site_id}/ingest"

    def send(value: float) -> dict[str, int]:
        s = {"names": [SIGNALS[2]], "index": [0], "ts": [t], "value": [value], "quality": [0]}
        r = w.call("POST", path, w.a.edge, {"samples": s})
        assert r.status_code == 200, r.text
        got: dict[str, int] = r.json()
        return got

    assert send(1.5)["accepted"] == 1
    resend = send(1.5)
    assert (resend["duplicates"], resend["conflicts"]) == (1, 0)
    other = send(2.5)
    assert (other["duplicates"], other["conflicts"]) == (1, 1)
    status, body = _post_frame(w, 9, [t], SIGNALS[2])  # the same instant in a frame: 0.0
    assert (status, body["duplicates"], body["conflicts"]) == (200, 1, 1)
