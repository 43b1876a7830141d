"""Fault scenarios through ``andon serve`` (a real process): what it depends on is restarted
while an edge process streams a sequence-numbered source to it over MQTT.

* ``broker_restart``: its Mosquitto (private port) is killed and started again ×5;
* ``db_restart``: its metadata database (a private PostgreSQL cluster) is stopped and started
  again ×3 (see ``pg``).

Each restart waits for the edge to report more points acknowledged than before it (no fixed
sleeps); ``recovery_s`` is the longest time from a restarted peer accepting connections to
that. Nothing may be lost or stored twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from andon.model.types import SampleBatch
from andon.wire.frames import FRAME_CONTENT_TYPE, encode_frame, key_parts
from tests.edge.broker import Broker
from tests.edge.helpers import until
from tests.faults.harness import START, Edge, edge_config, judge
from tests.faults.pg import PrivatePostgres
from tests.faults.serve import HTTPS_NAMES, SITE_NAMES, Serve, provision

pytestmark = pytest.mark.slow

BROKER_RESTARTS = 5
PROGRESS_S = 30.0
"""Each restart: the edge reports more acknowledged within this (measured: under 3 s)."""


START_S = 90.0
"""The edge and andon serve starting (Python start-up on a loaded machine)."""


async def _progress(edge: Edge, total: int, what: str, timeout: float = PROGRESS_S) -> float:
    """Seconds until the edge reports more points acknowledged than now, or all ``total``
    (a slow machine may let the source end before the last restart)."""
    t0, base = time.monotonic(), max(edge.acked(), 0)
    await until(lambda: edge.acked() > base or edge.acked() == total, timeout, what)
    return time.monotonic() - t0


def test_broker_restarts_during_a_stream_through_andon_serve(
    tmp_path: Path, broker: Broker
) -> None:
    total = 40_000  # 2,000 points/s: the source still runs when the last restart ends
    db_url = f"sqlite:///{tmp_path / 'platform.db'}"
    keys = asyncio.run(provision(db_url))
    assert key_parts(keys.edge) is not None
    serve = Serve(tmp_path, db_url, broker.port, keys)
    cfg = edge_config(tmp_path, broker.port, total, 2_000, names=SITE_NAMES, key=keys.edge)
    edge = Edge(tmp_path, cfg)

    async def go() -> None:
        try:
            await asyncio.to_thread(serve.start)
            edge.start_edge()
            await _progress(edge, total, "the first points stored", START_S)
            recovery, streaming = 0.0, 0
            for i in range(BROKER_RESTARTS):
                st = edge.status()
                streaming += st is not None and st["buffer"]["put_points"] < total
                await asyncio.to_thread(broker.stop)  # kill -9
                await asyncio.to_thread(broker.start)
                took = await _progress(edge, total, f"storing again after broker restart {i + 1}")
                recovery = max(recovery, took)
            assert edge.alive(), edge.edge_log()[-2000:]
            print(f"broker_restart: {streaming} of {BROKER_RESTARTS} restarts mid-stream")
            assert streaming >= 1  # at least one while the source still ran

            async def values() -> dict[str, np.ndarray]:
                return await asyncio.to_thread(serve.values, START, START + 10**12)

            v = await judge(
                "broker_restart",
                edge,
                total,
                values,
                time.monotonic(),
                60.0,
                names=SITE_NAMES,
                recovery_s=recovery,
            )
            assert v.dropped == 0
        finally:
            await edge.stop_edge()
            await asyncio.to_thread(serve.close)

    asyncio.run(go())


class HttpsSource:
    """A second known source: frame ``j`` (sequence ``j``) holds values ``j*P .. j*P+P-1``
    under ``HTTPS_NAMES[v % 6]``, posted to ``andon serve``'s ingest one after another; a 503
    is counted and the same frame posted again (as an edge does after ``Retry-After``)."""

    POINTS = 50

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.sent = 0
        """Frames answered 200."""
        self.unavailable = 0
        """Answers 503 (with Retry-After) because a dependency was down (``unavailable``)."""
        self.not_stored = 0
        """Answers 503 from the gateway: the frame was not stored (``store_failed`` or
        ``internal_error``, when the database failed after the key check)."""
        self.stop = asyncio.Event()

    def frame(self, j: int) -> bytes:
        v = np.arange(j * self.POINTS, (j + 1) * self.POINTS)
        batch = SampleBatch.build(
            HTTPS_NAMES, (v % len(HTTPS_NAMES)).tolist(), (START + v * 1000).tolist(), v
        )
        return encode_frame("edge-https", "-", "https", j + 1, START, False, batch)

    async def run(self) -> None:
        url = f"http://127.0.0.1:{self.serve.port}/api/v1/sites/{self.serve.keys.site_id}/ingest"
        headers = {
            "Authorization": f"Bearer {self.serve.keys.edge}",
            "content-type": FRAME_CONTENT_TYPE,
        }
        async with httpx.AsyncClient(timeout=60) as client:
            while not self.stop.is_set():
                r = await client.post(url, content=self.frame(self.sent), headers=headers)
                if r.status_code == 503:
                    assert r.headers["retry-after"], r.headers
                    if str(r.json()["detail"]).startswith("frame not stored"):
                        self.not_stored += 1
                    else:
                        self.unavailable += 1
                    await asyncio.sleep(0.1)  # a client's retry pace, not a test's wait
                    continue
                assert r.status_code == 200, (r.status_code, r.text)
                got = r.json()  # a frame stored before a 503 comes back as duplicates
                assert got["accepted"] + got["duplicates"] == self.POINTS, r.text
                self.sent += 1
                await asyncio.sleep(0.02)


DB_RESTARTS = 3


def test_metadata_database_restarts_during_ingest_over_https_and_mqtt(
    tmp_path: Path, broker: Broker
) -> None:
    """andon serve's metadata database (a private PostgreSQL cluster) is stopped (immediate)
    and started again ×3 while an edge streams over MQTT and a second source posts frames
    over HTTPS: during each outage ingest answers 503 with Retry-After (not 500), counted in
    ``GET /ingest/stats``; after it both resume; nothing lost or stored twice."""
    pg = PrivatePostgres()
    pg.start()
    total = 30_000  # 1,000 points/s: the source still runs when the last restart ends
    try:
        keys = asyncio.run(provision(pg.url))
        serve = Serve(tmp_path, pg.url, broker.port, keys)
        cfg = edge_config(tmp_path, broker.port, total, 1_000, names=SITE_NAMES, key=keys.edge)
        edge = Edge(tmp_path, cfg)
        https = HttpsSource(serve)

        async def go() -> None:
            poster: asyncio.Task[None] | None = None
            try:
                await asyncio.to_thread(serve.start)
                edge.start_edge()
                poster = asyncio.create_task(https.run())
                await _progress(edge, total, "the first points stored", START_S)
                recovery = 0.0
                for i in range(DB_RESTARTS):
                    refused = https.unavailable
                    await asyncio.to_thread(pg.stop)
                    await until(
                        lambda r=refused: https.unavailable > r or poster.done(),  # type: ignore[misc]
                        PROGRESS_S,
                        f"a 503 while the database is down ({i + 1})",
                    )
                    assert not poster.done(), poster
                    await asyncio.to_thread(pg.start)
                    t0, sent = time.monotonic(), https.sent
                    took = await _progress(edge, total, f"MQTT ingest again after restart {i + 1}")
                    await until(
                        lambda s=sent: https.sent > s or poster.done(),  # type: ignore[misc]
                        PROGRESS_S,
                        f"HTTPS ingest again after restart {i + 1}",
                    )
                    recovery = max(recovery, took, time.monotonic() - t0)
                https.stop.set()
                await poster
                assert edge.alive(), edge.edge_log()[-2000:]

                async def values() -> dict[str, np.ndarray]:
                    return await asyncio.to_thread(serve.values, START, START + 10**12)

                v = await judge(
                    "db_restart",
                    edge,
                    total,
                    values,
                    time.monotonic(),
                    60.0,
                    names=SITE_NAMES,
                    recovery_s=recovery,
                )
                assert v.dropped == 0
                # the HTTPS source: every frame it was answered 200 for, once
                got = await asyncio.to_thread(serve.values, START, START + 10**12, HTTPS_NAMES)
                stored = np.sort(np.concatenate(list(got.values())))
                assert stored.tolist() == list(range(https.sent * HttpsSource.POINTS))
                stats = await asyncio.to_thread(serve.ingest_stats)
                # every 503 counted: by the API's handler, or as a frame the gateway refused
                # (only this source calls the API during the outages)
                assert sum(stats["unavailable"].values()) == https.unavailable > 0, stats
                refused = stats["gateway"]["frames_refused"]
                unanswered = refused.get("store_failed", 0) + refused.get("internal_error", 0)
                assert https.not_stored <= unanswered, (https.not_stored, refused)
                print(
                    f"db_restart: https frames={https.sent} answered_503={https.unavailable}"
                    f"+{https.not_stored} unavailable={stats['unavailable']} "
                    f"gateway frames_refused={refused}"
                )
            finally:
                if poster is not None and not poster.done():
                    poster.cancel()
                await edge.stop_edge()
                await asyncio.to_thread(serve.close)

        asyncio.run(go())
    finally:
        pg.close()
