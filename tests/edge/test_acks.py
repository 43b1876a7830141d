"""Acknowledgements delete buffered data, so the uplink takes only genuine ones: malformed,
forged (no or a wrong signature) and unsent ones are counted by reason and ignored, and the
uplink keeps running. A gap in acknowledgements (the broker up, the platform's ingest away)
turns what the buffer holds into backlog, sent flagged historical."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiomqtt

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.buffer import EdgeBuffer
from andon.edge.uplink import Uplink, UplinkConfig
from andon.wire.frames import Ack, ack_mac, ack_topic, encode_acks
from tests.edge.broker import Broker
from tests.edge.helpers import KEY, KEY_ID, Platform, signals, until, until_async

NAMES = signals(4)
PER_BATCH = 500
SECRET = KEY.rsplit("_", 1)[1]


async def _pending(buf: EdgeBuffer) -> int:
    return (await buf.stats()).pending_points


def test_malformed_forged_and_unsent_acks_are_counted_and_ignored(
    tmp_path: Path, broker: Broker
) -> None:
    async def go() -> None:
        platform = Platform(tmp_path, broker.port, NAMES)
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        uplink = Uplink(
            buf,
            UplinkConfig(
                "edge-1", KEY, port=broker.port, window=8, ack_timeout_s=2.0, backoff_max_s=0.5
            ),
        )
        for i in range(4):  # the platform is not there yet: these stay in flight
            b = counter_batch(tuple(NAMES), i * PER_BATCH, (i + 1) * PER_BATCH, DEFAULT_START, 1)
            await buf.put("gen", b)
        up = asyncio.create_task(uplink.run())
        ignored = uplink.stats.acks_ignored
        try:
            await until(lambda: uplink.stats.frames_sent == 4, 10, "4 frames sent")
            malformed = [
                b'{"acks": [null]}',
                b'{"acks": [["gen", "1", "ok", ""]]}',
                b'{"acks": [["gen", 1, "ok"]]}',
                b'{"acks": [[1, 1, "ok", "", ""]]}',
                b'{"acks": "all"}',
                b"\xff\x00garbage",
                b"[]",
            ]
            forged = [
                encode_acks([Ack("gen", 1, "ok")]),  # unsigned, as before signing
                encode_acks([Ack("gen", 2, "ok", "", ack_mac("guess", "gen", 2, "ok"))]),
                # signed for "rejected", replayed as "ok"
                json.dumps(
                    {"acks": [["gen", 3, "ok", "", ack_mac(SECRET, "gen", 3, "rejected")]]}
                ).encode(),
                # a forged refusal would stop the uplink
                encode_acks([Ack("gen", 4, "refused", "key revoked")]),
            ]
            unsent = [encode_acks([Ack("gen", 99, "ok", "", ack_mac(SECRET, "gen", 99, "ok"))])]
            async with aiomqtt.Client("127.0.0.1", broker.port) as c:
                for payload in (*malformed, *forged, *unsent):
                    await c.publish(ack_topic(KEY_ID), payload, qos=1)
            await until(
                lambda: sum(ignored.values()) == len(malformed) + len(forged) + len(unsent),
                10,
                "every bad acknowledgement counted",
            )
            assert ignored == {"bad_ack": 7, "forged_ack": 4, "unsent_ack": 1}
            assert not up.done() and not uplink.halted.is_set()
            assert await _pending(buf) == 4 * PER_BATCH  # nothing deleted
            # the platform's own, signed acknowledgements still work
            platform.start()

            async def drained() -> bool:
                return await _pending(buf) == 0

            await until_async(drained, 20, "every batch acknowledged by the platform")
            assert platform.gateway.stats.points_stored == 4 * PER_BATCH
            assert (await buf.stats()).acked_points == 4 * PER_BATCH
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up
            await buf.close()
            await platform.close()

    asyncio.run(go())


def test_backlog_after_an_ack_gap_is_historical_with_the_broker_up(
    tmp_path: Path, broker: Broker
) -> None:
    """Only the platform's ingest is away (the broker stays up, so the uplink never
    reconnects): what was sent and not acknowledged goes out again flagged historical.
    The acknowledgement timeout is 2 s: on a loaded box an ack later than a tighter one
    opens a new gap, rightly, and the live batch at the end would go out historical."""

    async def go() -> None:
        platform = Platform(tmp_path, broker.port, NAMES)
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        uplink = Uplink(
            buf,
            UplinkConfig(
                "edge-1", KEY, port=broker.port, window=4, ack_timeout_s=2.0, backoff_max_s=0.5
            ),
        )
        k = 0

        async def produce(n: int) -> None:
            nonlocal k
            for _ in range(n):
                await buf.put(
                    "gen", counter_batch(tuple(NAMES), k, k + PER_BATCH, DEFAULT_START, 1)
                )
                k += PER_BATCH

        up = asyncio.create_task(uplink.run())
        try:
            platform.start()
            stats = platform.gateway.stats
            await produce(1)  # until the platform is subscribed, a frame may time out
            await until(lambda: stats.points_stored == k, 20, "a first batch")
            base = stats.points_historical
            await produce(2)
            await until(lambda: stats.points_stored == k, 20, "live batches")
            assert stats.points_historical == base
            await platform.cut()
            await produce(3)
            await until(lambda: uplink.stats.frames_resent >= 3, 20, "acknowledgement timeouts")
            assert uplink.stats.connects == 1  # the broker never went away
            await produce(2)  # read during the gap, after the timeout: historical too
            platform.start()
            await until(lambda: stats.points_stored == k, 20, "backlog stored")
            assert stats.points_historical == base + 5 * PER_BATCH
            await produce(1)  # acknowledgements flow again: live
            await until(lambda: stats.points_stored == k, 20, "a live batch")
            assert stats.points_historical == base + 5 * PER_BATCH
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up
            await buf.close()
            await platform.close()

    asyncio.run(go())
