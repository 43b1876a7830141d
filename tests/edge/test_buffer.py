"""The durable buffer: sequence numbers, cursors, restart, live-before-backlog, disk cap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from andon.connect.counting import counter_batch
from andon.edge.buffer import BufferFull, DropPolicy, EdgeBuffer
from andon.wire.frames import decode_frame, frame_from_parts

NAMES = ("a/x", "a/y", "a/z")


def run(fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(fn())  # type: ignore[arg-type]


def batch(k0: int, k1: int):  # type: ignore[no-untyped-def]
    return counter_batch(NAMES, k0, k1, 1_767_225_600_000_000, 1000)


def test_sequences_cursors_and_restart(tmp_path: Path) -> None:
    async def go() -> None:
        buf = await EdgeBuffer.open(tmp_path / "b.db")
        assert [await buf.put("s1", batch(0, 10), "10") for _ in range(3)] == [1, 2, 3]
        assert await buf.put("s2", batch(0, 5), "5") == 1
        await buf.ack([("s1", 1), ("s1", 2)])
        await buf.close()
        # reopen: sequence numbers continue (never reused), cursors come back
        buf = await EdgeBuffer.open(tmp_path / "b.db")
        assert await buf.cursor("s1") == "10"
        assert await buf.cursor("s2") == "5"
        assert await buf.cursor("nope") is None
        assert await buf.put("s1", batch(10, 20), "20") == 4
        st = await buf.stats()
        assert (st.pending_batches, st.pending_points) == (3, 25)
        assert (st.put_points, st.acked_points) == (45, 20)
        # after a restart what was held is backlog; the new batch is live and goes first
        got = await buf.next_unsent(10)
        assert [(b.stream, b.seq, b.historical) for b in got] == [
            ("s1", 4, False),
            ("s1", 3, True),
            ("s2", 1, True),
        ]
        frame = decode_frame(
            frame_from_parts(
                "e",
                "t",
                got[0].stream,
                got[0].seq,
                0,
                False,
                got[0].points,
                got[0].names_json,
                got[0].body,
            )
        )
        assert frame.batch.value.tolist() == [float(k) for k in range(10, 20)]
        await buf.close()

    run(go)


def test_in_flight_batches_are_not_handed_out_twice(tmp_path: Path) -> None:
    async def go() -> None:
        buf = await EdgeBuffer.open(tmp_path / "b.db")
        for i in range(4):
            await buf.put("s", batch(i, i + 1))
        first = await buf.next_unsent(3)
        assert [b.seq for b in first] == [1, 2, 3]
        assert [b.seq for b in await buf.next_unsent(3)] == [4]
        assert await buf.next_unsent(3) == []
        await buf.release([first[1].id])
        assert [b.seq for b in await buf.next_unsent(3)] == [2]
        await buf.mark_backlog()
        await buf.put("s", batch(9, 10))
        await buf.release()
        assert [(b.seq, b.historical) for b in await buf.next_unsent(10)] == [
            (5, False),
            (1, True),
            (2, True),
            (3, True),
            (4, True),
        ]
        assert await buf.ack([("s", 1), ("s", 1), ("s", 99)]) == 1  # unknown keys ignored
        await buf.close()

    run(go)


def _size(tmp_path: Path) -> int:
    async def go() -> int:
        buf = await EdgeBuffer.open(tmp_path / "probe.db")
        await buf.put("s", batch(0, 100))
        n = (await buf.stats()).pending_bytes
        await buf.close()
        return n

    return asyncio.run(go())


def test_reject_new_refuses_and_counts_exactly(tmp_path: Path) -> None:
    one = _size(tmp_path)

    async def go() -> None:
        buf = await EdgeBuffer.open(tmp_path / "b.db", max_bytes=3 * one, policy="reject_new")
        for i in range(3):
            await buf.put("s", batch(100 * i, 100 * i + 100))
        refused = 0
        for i in range(3, 8):
            with pytest.raises(BufferFull):
                await buf.put("s", batch(100 * i, 100 * i + 100))
            refused += 100
        st = await buf.stats()
        assert (st.dropped_points, st.dropped_batches, st.pending_points) == (refused, 5, 300)
        # acknowledging makes room again; refused batches did not consume sequence numbers
        await buf.ack([("s", 1)])
        assert await buf.put("s", batch(800, 900)) == 4
        await buf.close()
        buf = await EdgeBuffer.open(tmp_path / "b.db", max_bytes=3 * one, policy="reject_new")
        assert (await buf.stats()).dropped_points == refused  # durable
        await buf.close()

    run(go)


def test_drop_oldest_deletes_oldest_not_in_flight_and_counts_exactly(tmp_path: Path) -> None:
    one = _size(tmp_path)

    async def go() -> None:
        buf = await EdgeBuffer.open(
            tmp_path / "b.db", max_bytes=4 * one, policy=DropPolicy.DROP_OLDEST
        )
        for i in range(4):
            await buf.put("s", batch(100 * i, 100 * i + 100))
        inflight = await buf.next_unsent(1)  # seq 1 is on the wire: it must not be dropped
        assert [b.seq for b in inflight] == [1]
        for i in range(4, 7):
            await buf.put("s", batch(100 * i, 100 * i + 100))
        st = await buf.stats()
        assert (st.dropped_points, st.dropped_batches) == (300, 3)
        await buf.release()
        held = sorted(b.seq for b in await buf.next_unsent(10))
        assert held == [1, 5, 6, 7]
        # a batch bigger than the whole cap cannot fit under any policy
        with pytest.raises(BufferFull):
            await buf.put("s", batch(0, 1000))
        assert (await buf.stats()).dropped_points == 1300
        await buf.close()

    run(go)
