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
from tests.edge.broker import Broker
from tests.edge.helpers import KEY


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
