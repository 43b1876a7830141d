"""The edge buffer on a disk that fills up below its cap (a real, small tmpfs): the real error
is surfaced, drops are counted with reason ``disk_full`` exactly once (across a reopen), an
acknowledgement still frees space, and a failed acknowledgement leaves the buffer usable.
Also: a batch refused by ``reject_new`` moves its stream's cursor on, so a restarted source
does not read (and count) the dropped points a second time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from andon.edge.buffer import BufferFull, BufferWriteError, DiskFull, DropPolicy, EdgeBuffer
from andon.model.types import SampleBatch

__all__ = ["small_disk"]

POINTS = 1_000  # about 21 kB a batch


def _batch(i: int) -> SampleBatch:
    ts = np.arange(i * POINTS, (i + 1) * POINTS)
    return SampleBatch.build(["s/a/l/m/x"], np.zeros(POINTS, int), ts, ts.astype(float))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root and mount permission: skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root (mount -t tmpfs)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def _fill(buf: EdgeBuffer, start: int, n: int) -> tuple[int, list[DiskFull]]:
    stored, full = 0, []
    for i in range(start, start + n):
        try:
            await buf.put("gen", _batch(i), str(i + 1))
            stored += 1
        except DiskFull as exc:
            full.append(exc)
    return stored, full


@pytest.mark.parametrize("policy", [DropPolicy.REJECT_NEW, DropPolicy.DROP_OLDEST])
def test_disk_full_is_counted_and_recoverable(small_disk: Path, policy: DropPolicy) -> None:
    async def go() -> None:
        path = small_disk / "buffer.db"
        buf = await EdgeBuffer.open(path, 1 << 30, policy, reserve_bytes=256 << 10)
        stored, full = await _fill(buf, 0, 120)
        assert stored > 20
        if policy is DropPolicy.REJECT_NEW:
            assert full, "the disk should have filled"
            assert "database or disk is full" in str(full[0])  # SQLite's own error, not ROLLBACK's
            assert full[0].reason == "disk_full"
        st = await buf.stats()
        assert st.dropped_disk_full_points == st.dropped_points > 0
        assert st.put_points == stored * POINTS
        # every point is held, or dropped: stored then deleted (drop_oldest), or never stored
        assert st.put_points == st.pending_points + st.dropped_points - len(full) * POINTS
        # acknowledging frees room for new batches, on the same full disk
        sent = await buf.next_unsent(30)
        assert await buf.ack([(b.stream, b.seq) for b in sent]) == 30 * POINTS
        again, full2 = await _fill(buf, 200, 20)
        assert again == 20 if policy is DropPolicy.DROP_OLDEST else again >= 10
        before = await buf.stats()
        never = (len(full) + len(full2)) * POINTS
        assert before.put_points == (
            before.acked_points + before.pending_points + before.dropped_points - never
        )
        await buf.close()
        # the counts a full disk kept in memory were written: the same after a reopen
        buf = await EdgeBuffer.open(path, 1 << 30, policy)
        after = await buf.stats()
        await buf.close()
        assert after == before

    asyncio.run(go())


def test_failed_ack_is_rolled_back_and_the_buffer_stays_usable(small_disk: Path) -> None:
    """No reserve, and the disk filled to the last byte by something else: an acknowledgement
    cannot commit. It is rolled back (its batches go out again), and once space is back the
    same acknowledgement succeeds and the buffer stores again."""

    async def go() -> None:
        path = small_disk / "buffer.db"
        buf = await EdgeBuffer.open(path, 1 << 30, "reject_new")
        stored, full = await _fill(buf, 0, 20)
        assert (stored, full) == (20, [])
        with sqlite3.connect(path) as con:  # an empty WAL: the next write needs new space
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = small_disk / "filler"
        with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(bytes(4096))
        sent = await buf.next_unsent(stored)
        with pytest.raises(BufferWriteError, match="disk is full"):
            await buf.ack([(b.stream, b.seq) for b in sent])
        assert (await buf.stats()).pending_points == stored * POINTS
        # rolled back: the batches are no longer in flight, they are handed out again
        assert [b.seq for b in await buf.next_unsent(stored)] == [b.seq for b in sent]
        with pytest.raises(DiskFull):
            await buf.put("gen", _batch(99), "100")
        filler.unlink()
        assert await buf.ack([(b.stream, b.seq) for b in sent]) == stored * POINTS
        assert await buf.put("gen", _batch(100), "101") == stored + 1
        st = await buf.stats()
        assert (st.acked_points, st.pending_points, st.dropped_disk_full_points) == (
            stored * POINTS,
            POINTS,
            POINTS,
        )
        await buf.close()

    asyncio.run(go())


def test_reject_new_moves_the_cursor_so_a_restart_does_not_count_twice(tmp_path: Path) -> None:
    async def go() -> None:
        path = tmp_path / "buffer.db"
        buf = await EdgeBuffer.open(path, 30_000, "reject_new")
        await buf.put("gen", _batch(0), "1")
        with pytest.raises(BufferFull):
            await buf.put("gen", _batch(1), "2")
        assert await buf.cursor("gen") == "2"
        await buf.close()
        buf = await EdgeBuffer.open(path, 30_000, "reject_new")
        # a connector resumes after the dropped batch, not before it
        assert await buf.cursor("gen") == "2"
        st = await buf.stats()
        assert (st.dropped_points, st.put_points) == (POINTS, POINTS)
        await buf.ack([("gen", 1)])
        assert await buf.put("gen", _batch(2), "3") == 2  # sequence numbers unaffected
        await buf.close()

    asyncio.run(go())
