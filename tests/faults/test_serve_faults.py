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

import numpy as np
import pytest

from andon.wire.frames import key_parts
from tests.edge.broker import Broker
from tests.edge.helpers import until
from tests.faults.harness import START, Edge, edge_config, judge
from tests.faults.serve import SITE_NAMES, Serve, provision

pytestmark = pytest.mark.slow

BROKER_RESTARTS = 5
PROGRESS_S = 30.0
"""Each restart: the edge reports more acknowledged within this (measured: under 3 s)."""


async def _progress(edge: Edge, what: str) -> float:
    """Seconds until the edge reports more points acknowledged than now."""
    t0, base = time.monotonic(), max(edge.acked(), 0)
    await until(lambda: edge.acked() > base, PROGRESS_S, what)
    return time.monotonic() - t0


def test_broker_restarts_during_a_stream_through_andon_serve(
    tmp_path: Path, broker: Broker
) -> None:
    total = 24_000  # 2,000 points/s: the source still runs when the last restart ends
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
            await _progress(edge, "the first points stored")
            recovery = 0.0
            for i in range(BROKER_RESTARTS):
                await asyncio.to_thread(broker.stop)  # kill -9
                await asyncio.to_thread(broker.start)
                took = await _progress(edge, f"storing again after broker restart {i + 1}")
                recovery = max(recovery, took)
            assert edge.alive(), edge.edge_log()[-2000:]

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
