"""Two edges with the same key flap (the broker drops the older session of a client id):
the uplink counts the short sessions and logs a hint that names the cause."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from andon.edge.buffer import EdgeBuffer
from andon.edge.uplink import TAKEOVER_BURST, Uplink, UplinkConfig
from andon.wire.net import tls_context
from tests.edge.broker import Broker
from tests.edge.helpers import KEY
from tests.edge.test_mqtt_tls import Tls, tls  # noqa: F401  (the TLS broker fixture)


def test_two_edges_with_one_key_are_detected(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="andon.edge.uplink")

    async def go() -> tuple[int, int]:
        bufs = [await EdgeBuffer.open(tmp_path / f"edge{i}.db") for i in range(2)]
        ups = [
            Uplink(b, UplinkConfig("edge-1", KEY, port=broker.port, backoff_max_s=0.5))
            for b in bufs
        ]
        tasks = [asyncio.create_task(u.run()) for u in ups]
        # usually under a second; a kicked client may sit out a 10 s request timeout first
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and "same key" not in caplog.text:
                await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for b in bufs:
                await b.close()
        return ups[0].stats.short_sessions, ups[1].stats.short_sessions

    short = asyncio.run(go())
    assert "another edge running with the same key" in caplog.text
    assert "andon-edge-" in caplog.text
    assert max(short) >= TAKEOVER_BURST, short


def test_a_refused_login_still_stops_the_uplink(tls: Tls, tmp_path: Path) -> None:  # noqa: F811
    """The refused-login check reads only a refused connect (not paho's own error numbers,
    where 4 is "not connected")."""

    async def go() -> Uplink:
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        ctx = tls_context(str(tls.ca.cert))
        up = Uplink(
            buf, UplinkConfig("edge-1", KEY, port=tls.broker.port, password="wrong", tls=ctx)
        )
        task = asyncio.create_task(up.run())
        try:
            await asyncio.wait_for(up.halted.wait(), 20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await buf.close()
        return up

    up = asyncio.run(go())
    assert up.stats.last_error.startswith("stopped:"), up.stats.last_error
    assert up.stats.short_sessions == 0
