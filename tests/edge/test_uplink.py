"""Edge buffer → Mosquitto → ingest gateway → DuckDB, in one process, through faults:
broker restart, platform cut, forged, misdirected and malformed frames."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
import numpy as np

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.buffer import EdgeBuffer
from andon.edge.uplink import Uplink, UplinkConfig
from andon.wire.frames import encode_frame, up_topic
from tests.edge.broker import Broker
from tests.edge.helpers import KEY, KEY_ID, Platform, signals, until, until_async

NAMES = signals(6)
PER_BATCH = 2_000


def _expected(total: int) -> dict[str, list[float]]:
    k = np.arange(total)
    return {n: k[k % len(NAMES) == i].astype(float).tolist() for i, n in enumerate(NAMES)}


def test_store_and_forward_survives_broker_restart_and_platform_cut(
    tmp_path: Path, broker: Broker
) -> None:
    async def go() -> None:
        platform = Platform(tmp_path, broker.port, NAMES)
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        uplink = Uplink(
            buf,
            UplinkConfig(
                "edge-1", KEY, port=broker.port, window=4, ack_timeout_s=1.0, backoff_max_s=0.5
            ),
        )
        k = 0

        async def produce(n_batches: int) -> None:
            nonlocal k
            for _ in range(n_batches):
                await buf.put(
                    "gen",
                    counter_batch(tuple(NAMES), k, k + PER_BATCH, DEFAULT_START, 1000),
                    str(k + PER_BATCH),
                )
                k += PER_BATCH

        def stored() -> int:
            return platform.gateway.stats.points_stored

        platform.start()
        up = asyncio.create_task(uplink.run())
        try:
            await produce(10)
            await until(lambda: stored() == k, 20, "first 10 batches stored")
            # the broker dies and comes back (it keeps no state); the edge keeps producing
            broker.stop()
            await produce(5)
            broker.start()
            await until(lambda: stored() == k, 30, "batches after broker restart")
            # the platform is cut: the edge buffers, then drains when it is back
            await platform.cut()
            await produce(10)
            await until(lambda: uplink.stats.frames_sent >= 25, 20, "frames sent while cut")
            assert stored() < k
            platform.start()
            await until(lambda: stored() == k, 30, "backlog drained after the cut")
            # a forged frame (the key's id, a wrong secret), garbage, an unknown key and the
            # right key on another edge's topic are counted and do not stop the stream
            ten = counter_batch(tuple(NAMES), 0, 10, DEFAULT_START, 1000)
            other = "0" * 32
            async with aiomqtt.Client("127.0.0.1", broker.port) as c:
                forged = encode_frame("edge-1", f"andon_{KEY_ID}_wrong", "gen", 999, 0, False, ten)
                await c.publish(up_topic(KEY_ID), forged, qos=1)
                await c.publish(up_topic(KEY_ID), b"\x00garbage", qos=1)
                stranger = encode_frame("edge-9", f"andon_{other}_x", "gen", 1, 0, False, ten)
                await c.publish(up_topic(other), stranger, qos=1)
                misdirected = encode_frame("edge-1", KEY, "gen", 1, 0, False, ten)
                await c.publish(up_topic(other), misdirected, qos=1)
            await produce(2)
            await until(lambda: stored() == k, 20, "stream after bad frames")
            rej = platform.ingestor.stats.rejected
            got_rej = [rej[r] for r in ("bad_secret", "malformed_frame", "unknown_key")]
            assert [*got_rej, rej["topic_mismatch"]] == [10, 1, 10, 10]

            async def drained() -> bool:
                return (await buf.stats()).pending_points == 0

            await until_async(drained, 10, "every batch acknowledged")
            st = await buf.stats()
            assert st.acked_points == k and st.pending_points == 0
            got = await platform.values(DEFAULT_START, DEFAULT_START + 10**12)
            exp = _expected(k)
            assert {n: v.tolist() for n, v in got.items()} == exp
            # what was resent after the cut is counted as duplicates, never stored twice
            assert platform.gateway.stats.points_historical > 0  # the backlog was marked
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up
            await buf.close()
            await platform.close()

    asyncio.run(go())
