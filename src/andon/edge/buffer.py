"""The edge agent's durable buffer: every batch is on disk before it is acknowledged.

One SQLite database in WAL mode with ``synchronous=FULL``: ``put`` returns only after the
transaction holding the batch (and the stream's next sequence number and source cursor) has
been fsynced, so a batch whose ``put`` returned survives ``kill -9`` and power loss. Batches are
stored columnar (``wire.body_of``: the four NumPy columns back to back) with their name
dictionary as JSON, keyed by a global insertion id and by ``(stream, seq)``.

* **Sequence numbers** are per stream, start at 1 and never repeat, even after the rows that
  used them are acknowledged and deleted (``streams.next_seq``).
* **Cursor**: a connector may store its source position with each batch (same transaction), so
  after a crash it resumes exactly after the last batch the buffer holds.
* **Disk cap**: ``max_bytes`` bounds the stored column bytes. When a batch does not fit,
  ``reject_new`` refuses it (``BufferFull``) and ``drop_oldest`` deletes the oldest batches not
  currently on the wire. Either way the points are added to durable counters, so the drop
  count is exact across restarts.
* **Live ahead of backlog**: ``mark_backlog`` makes every batch held now *backlog*; batches put
  later are *live*. ``next_unsent`` hands out live batches first (oldest first), then backlog,
  skipping the ones in flight.

The database is used from one worker thread (``EdgeBuffer`` is the asyncio face), so the
in-memory index needs no lock.

>>> import asyncio, tempfile, pathlib
>>> from andon.model.types import SampleBatch
>>> async def demo() -> tuple[int, int]:
...     with tempfile.TemporaryDirectory() as d:
...         buf = await EdgeBuffer.open(pathlib.Path(d) / "b.db")
...         seq = await buf.put("m1", SampleBatch.build(["x"], [0], [1], [2.0]))
...         rows = await buf.next_unsent(10)
...         await buf.ack([("m1", seq)])
...         pending = (await buf.stats()).pending_points
...         await buf.close()
...         return seq, pending
>>> asyncio.run(demo())
(1, 0)
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeVar

from andon.edge.wire import body_of
from andon.model.types import Micros, SampleBatch

__all__ = ["BufferFull", "BufferStats", "DropPolicy", "EdgeBuffer", "StoredBatch"]

_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, seq INTEGER NOT NULL,
    created_us INTEGER NOT NULL, points INTEGER NOT NULL, nbytes INTEGER NOT NULL,
    names TEXT NOT NULL, body BLOB NOT NULL, UNIQUE (stream, seq)
);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, cursor TEXT
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COUNTERS: Final = (
    "put_points",
    "acked_points",
    "rejected_by_platform_points",
    "dropped_points",
    "dropped_batches",
)


class DropPolicy(StrEnum):
    """What happens when a batch does not fit under the disk cap."""

    REJECT_NEW = "reject_new"
    DROP_OLDEST = "drop_oldest"


class BufferFull(Exception):
    """``put`` refused a batch under ``reject_new``; its points were counted as dropped."""


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A buffered batch as the uplink sends it."""

    id: int
    stream: str
    seq: int
    created_us: Micros
    points: int
    historical: bool
    names_json: str
    body: bytes


@dataclass(frozen=True, slots=True)
class BufferStats:
    """Durable counters plus what the buffer holds now."""

    pending_batches: int
    pending_points: int
    pending_bytes: int
    max_bytes: int
    put_points: int
    acked_points: int
    rejected_by_platform_points: int
    dropped_points: int
    dropped_batches: int


@dataclass(slots=True)
class _Row:
    stream: str
    seq: int
    points: int
    nbytes: int


class _Engine:
    """The SQLite side; only the buffer's worker thread touches it."""

    def __init__(self, path: Path, max_bytes: int, policy: DropPolicy) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(_SCHEMA)
        self.max_bytes = max_bytes
        self.policy = policy
        self.counters = dict.fromkeys(_COUNTERS, 0)
        for name, value in self.con.execute("SELECT name, value FROM counters"):
            self.counters[name] = int(value)
        self.next_seq: dict[str, int] = {}
        self.cursors: dict[str, str | None] = {}
        for stream, nxt, cursor in self.con.execute("SELECT stream, next_seq, cursor FROM streams"):
            self.next_seq[stream] = int(nxt)
            self.cursors[stream] = cursor
        # ids ascend with insertion, so dict order is age order
        self.backlog: dict[int, _Row] = {}
        self.live: dict[int, _Row] = {}
        self.by_key: dict[tuple[str, int], int] = {}
        for rid, stream, seq, points, nbytes in self.con.execute(
            "SELECT id, stream, seq, points, nbytes FROM batches ORDER BY id"
        ):
            self.backlog[rid] = _Row(stream, seq, points, nbytes)
            self.by_key[(stream, seq)] = rid
        self.used = sum(r.nbytes for r in self.backlog.values())
        self.inflight: set[int] = set()

    def _bump(self, **deltas: int) -> None:
        for name, d in deltas.items():
            self.counters[name] += d
            self.con.execute(
                "INSERT INTO counters VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, d),
            )

    def put(self, stream: str, batch: SampleBatch, cursor: str | None, created_us: Micros) -> int:
        body = body_of(batch)
        names = json.dumps(list(batch.names))
        nbytes = len(body) + len(names)
        seq = self.next_seq.get(stream, 1)
        self.con.execute("BEGIN IMMEDIATE")
        try:
            if self.used + nbytes > self.max_bytes:
                freed = self._make_room(nbytes) if self.policy is DropPolicy.DROP_OLDEST else False
                if not freed:
                    self._bump(dropped_points=len(batch), dropped_batches=1)
                    self.con.execute("COMMIT")
                    raise BufferFull(
                        f"edge buffer full ({self.used} of {self.max_bytes} bytes): "
                        f"{len(batch)} points of stream {stream!r} dropped"
                    )
            cur = self.con.execute(
                "INSERT INTO batches (stream, seq, created_us, points, nbytes, names, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stream, seq, created_us, len(batch), nbytes, names, body),
            )
            self.con.execute(
                "INSERT INTO streams VALUES (?, ?, ?) ON CONFLICT(stream) "
                "DO UPDATE SET next_seq = excluded.next_seq, cursor = excluded.cursor",
                (stream, seq + 1, cursor),
            )
            self._bump(put_points=len(batch))
            self.con.execute("COMMIT")
        except BufferFull:
            raise
        except BaseException:
            self.con.execute("ROLLBACK")
            self._reload_counters()
            raise
        rid = int(cur.lastrowid or 0)
        self.next_seq[stream] = seq + 1
        self.cursors[stream] = cursor
        self.live[rid] = _Row(stream, seq, len(batch), nbytes)
        self.by_key[(stream, seq)] = rid
        self.used += nbytes
        return seq

    def _reload_counters(self) -> None:
        for name, value in self.con.execute("SELECT name, value FROM counters"):
            self.counters[name] = int(value)

    def _make_room(self, nbytes: int) -> bool:
        """Delete the oldest batches not in flight until ``nbytes`` fit (inside the caller's
        transaction). False, deleting nothing, when even that cannot make room."""
        if nbytes > self.max_bytes:
            return False
        victims: list[int] = []
        free = self.max_bytes - self.used
        for rows in (self.backlog, self.live):
            for rid, row in rows.items():
                if free >= nbytes:
                    break
                if rid in self.inflight:
                    continue
                victims.append(rid)
                free += row.nbytes
        if free < nbytes:
            return False
        points = 0
        for rid in victims:
            row = self.backlog.pop(rid) if rid in self.backlog else self.live.pop(rid)
            del self.by_key[(row.stream, row.seq)]
            self.used -= row.nbytes
            points += row.points
        self.con.executemany("DELETE FROM batches WHERE id = ?", [(v,) for v in victims])
        self._bump(dropped_points=points, dropped_batches=len(victims))
        return True

    def next_unsent(self, limit: int) -> list[StoredBatch]:
        picked: list[tuple[int, bool]] = []
        for rows, historical in ((self.live, False), (self.backlog, True)):
            for rid in rows:
                if len(picked) >= limit:
                    break
                if rid not in self.inflight:
                    picked.append((rid, historical))
        if not picked:
            return []
        hist = dict(picked)
        marks = ",".join("?" * len(picked))
        out = [
            StoredBatch(rid, stream, seq, created, points, hist[rid], names, body)
            for rid, stream, seq, created, points, names, body in self.con.execute(
                "SELECT id, stream, seq, created_us, points, names, body FROM batches "
                f"WHERE id IN ({marks})",
                [rid for rid, _ in picked],
            )
        ]
        order = {rid: i for i, (rid, _) in enumerate(picked)}
        out.sort(key=lambda b: order[b.id])
        self.inflight.update(b.id for b in out)
        return out

    def release(self, ids: Iterable[int] | None) -> None:
        if ids is None:
            self.inflight.clear()
        else:
            self.inflight.difference_update(ids)

    def mark_backlog(self) -> None:
        self.backlog.update(self.live)
        self.live.clear()

    def ack(self, keys: Iterable[tuple[str, int]], rejected: bool) -> int:
        ids = list(dict.fromkeys(rid for k in keys if (rid := self.by_key.get(k)) is not None))
        if not ids:
            return 0
        rows = [self.backlog.get(rid) or self.live[rid] for rid in ids]
        points = sum(r.points for r in rows)
        self.con.execute("BEGIN IMMEDIATE")
        self.con.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in ids])
        if rejected:
            self._bump(rejected_by_platform_points=points)
        else:
            self._bump(acked_points=points)
        self.con.execute("COMMIT")
        for rid, row in zip(ids, rows, strict=True):
            self.backlog.pop(rid, None)
            self.live.pop(rid, None)
            del self.by_key[(row.stream, row.seq)]
            self.used -= row.nbytes
            self.inflight.discard(rid)
        return points

    def stats(self) -> BufferStats:
        rows = [*self.backlog.values(), *self.live.values()]
        return BufferStats(
            len(rows),
            sum(r.points for r in rows),
            self.used,
            self.max_bytes,
            **self.counters,
        )

    def close(self) -> None:
        self.con.close()


class EdgeBuffer:
    """Asyncio face of the durable buffer: every call runs on one worker thread, in order."""

    def __init__(self, engine: _Engine, pool: ThreadPoolExecutor) -> None:
        self._engine = engine
        self._pool = pool
        self.changed = asyncio.Event()
        """Set whenever a batch is put; the uplink waits on it when it has nothing to send."""

    @classmethod
    async def open(
        cls,
        path: Path,
        max_bytes: int = 1 << 30,
        policy: DropPolicy | str = DropPolicy.DROP_OLDEST,
    ) -> EdgeBuffer:
        """Open (or create) the buffer at ``path`` with a cap of ``max_bytes`` column bytes."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="andon-edge-buffer")
        loop = asyncio.get_running_loop()
        try:
            engine = await loop.run_in_executor(
                pool, _Engine, Path(path), max_bytes, DropPolicy(policy)
            )
        except BaseException:
            pool.shutdown(wait=False)
            raise
        return cls(engine, pool)

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def put(
        self,
        stream: str,
        batch: SampleBatch,
        cursor: str | None = None,
        created_us: Micros | None = None,
    ) -> int:
        """Store ``batch`` durably; returns its sequence number in ``stream``.

        ``cursor`` (the source position after this batch) is stored in the same transaction;
        ``created_us`` (default: the batch's newest timestamp) is when the data was read.
        Raises ``BufferFull`` under ``reject_new`` when it does not fit (points counted).
        """
        if not stream:
            raise ValueError("stream must be a non-empty string")
        created = created_us if created_us is not None else int(batch.ts.max(initial=0))
        seq = await self._run(lambda: self._engine.put(stream, batch, cursor, created))
        self.changed.set()
        return seq

    async def cursor(self, stream: str) -> str | None:
        """The cursor stored with the stream's latest batch (None when there is none)."""
        return await self._run(lambda: self._engine.cursors.get(stream))

    async def next_unsent(self, limit: int) -> list[StoredBatch]:
        """Up to ``limit`` batches not in flight, live first, then backlog; marks them in
        flight."""
        return await self._run(lambda: self._engine.next_unsent(limit))

    async def release(self, ids: Iterable[int] | None = None) -> None:
        """Put batches back to be sent again (all in-flight ones when ``ids`` is None)."""
        ids_list = None if ids is None else list(ids)
        await self._run(lambda: self._engine.release(ids_list))

    async def mark_backlog(self) -> None:
        """Everything held now becomes backlog (sent after newer, live batches)."""
        await self._run(self._engine.mark_backlog)

    async def ack(self, keys: Iterable[tuple[str, int]], *, rejected: bool = False) -> int:
        """Delete acknowledged batches ``(stream, seq)``; returns their points. Unknown keys
        (already acknowledged or dropped) are ignored."""
        k = list(keys)
        return await self._run(lambda: self._engine.ack(k, rejected))

    async def stats(self) -> BufferStats:
        return await self._run(self._engine.stats)

    async def close(self) -> None:
        await self._run(self._engine.close)
        self._pool.shutdown(wait=True)
