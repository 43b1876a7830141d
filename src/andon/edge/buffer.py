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
  count is exact across restarts; a refused batch still moves its stream's cursor on, so a
  restarted connector does not read (and count) the dropped points a second time.
* **Disk full** below the cap (SQLite: "database or disk is full", or a write I/O error):
  the transaction is rolled back (only if SQLite has not already done so), the buffer gives
  back the disk space it reserved at start (``reserve_bytes``, in ``<path>.reserve``: even a
  delete needs WAL space first), checkpoints its WAL, under ``drop_oldest`` deletes the
  oldest batches not on the wire, and tries once more. What still cannot be stored raises
  ``DiskFull`` with SQLite's own error, counted as dropped (``dropped_disk_full_points``).
  Counts that cannot be written on a full disk are kept in memory and written with the next
  transaction that succeeds (until then the cursor has not moved either, so a crash re-reads,
  never loses). An acknowledgement whose commit fails is rolled back (``BufferWriteError``)
  and its batches are sent again.
* **Shrinking**: a new database uses ``auto_vacuum=INCREMENTAL``. Acknowledged batches leave
  free pages, which later batches reuse; once the free pages are at least half the file and
  twice the reserve (``SHRINK_MIN_BYTES`` without one) and the disk is not full, they are
  given back to the file system (``incremental_vacuum``, then a WAL checkpoint), so a backlog
  that filled the disk does not keep it full after it drained. (A database made before this
  stays its size: ``auto_vacuum`` can only be set on an empty one.)
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
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeVar

from andon.model.types import Micros, SampleBatch
from andon.wire.frames import body_of

__all__ = [
    "BufferFull",
    "BufferStats",
    "BufferWriteError",
    "DiskFull",
    "DropPolicy",
    "EdgeBuffer",
    "StoredBatch",
]

_T = TypeVar("_T")

log = logging.getLogger("andon.edge.buffer")

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
    "dropped_disk_full_points",
)
SHRINK_MIN_BYTES: Final = 1 << 20
"""Free pages worth giving back to the file system when the buffer holds no reserve."""
RESERVE_RETRY_S: Final = 5.0
_SQLITE_FULL: Final = 13
_SQLITE_IOERR: Final = 10


class DropPolicy(StrEnum):
    """What happens when a batch does not fit under the disk cap."""

    REJECT_NEW = "reject_new"
    DROP_OLDEST = "drop_oldest"


class BufferFull(Exception):
    """``put`` refused a batch under ``reject_new``; its points were counted as dropped."""


class BufferWriteError(Exception):
    """The buffer's database could not write (``reason``: ``disk_full`` or ``io_error``);
    the message carries SQLite's own error. The transaction was rolled back."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DiskFull(BufferWriteError):
    """``put`` could not store a batch because the disk is full (or failed to write); its
    points were counted as dropped with reason ``disk_full``."""


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
    dropped_disk_full_points: int
    """Of ``dropped_points``, those dropped because the disk was full."""


@dataclass(slots=True)
class _Row:
    stream: str
    seq: int
    points: int
    nbytes: int


class _Engine:
    """The SQLite side; only the buffer's worker thread touches it."""

    def __init__(
        self, path: Path, max_bytes: int, policy: DropPolicy, reserve_bytes: int = 0
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.reserve = path.with_name(path.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        self.reserve_tried = -1e9
        self.disk_full = False
        self._ensure_reserve()
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # before anything is written: only an empty database takes it
        self.con.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        # deleting an acknowledged batch must not write its pages again (some SQLite builds
        # zero deleted content by default): that doubles the I/O and, on a full disk, the
        # delete that would free space cannot be written
        self.con.execute("PRAGMA secure_delete=FAST")
        if reserve_bytes > 0:
            # a WAL bounded to a quarter of the reserve: on a full disk, the reserve given
            # back is enough to checkpoint it into the database
            (page,) = self.con.execute("PRAGMA page_size").fetchone()
            self.con.execute(f"PRAGMA wal_autocheckpoint={max(16, reserve_bytes // 4 // page)}")
            self.con.execute(f"PRAGMA journal_size_limit={reserve_bytes // 4}")
        self.con.executescript(_SCHEMA)
        (vacuum,) = self.con.execute("PRAGMA auto_vacuum").fetchone()
        self.shrinkable = int(vacuum) == 2  # incremental
        self.shrink_min_bytes = 2 * reserve_bytes if reserve_bytes > 0 else SHRINK_MIN_BYTES
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
        # counts not yet on disk (made while the disk was full), written by the next commit
        self.unwritten: dict[str, int] = {}

    def _bump(self, **deltas: int) -> None:
        """Add to durable counters inside the caller's transaction (with any counts a full
        disk kept from being written)."""
        for name, d in deltas.items():
            self.counters[name] += d
        todo = dict(self.unwritten)
        for name, d in deltas.items():
            todo[name] = todo.get(name, 0) + d
        self.con.executemany(
            "INSERT INTO counters VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            list(todo.items()),
        )

    def _committed(self) -> None:
        self.con.execute("COMMIT")
        self.unwritten.clear()

    def _rollback(self) -> None:
        """Roll back if a transaction is open: SQLite rolls back by itself on some errors
        (a full disk among them), and a ROLLBACK then would raise and hide the real error."""
        if self.con.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.con.execute("ROLLBACK")

    def _count_unwritten(self, **deltas: int) -> None:
        for name, d in deltas.items():
            self.counters[name] += d
            self.unwritten[name] = self.unwritten.get(name, 0) + d

    def put(self, stream: str, batch: SampleBatch, cursor: str | None, created_us: Micros) -> int:
        body = body_of(batch)
        names = json.dumps(list(batch.names))
        nbytes = len(body) + len(names)
        args = (stream, batch, cursor, created_us, body, names, nbytes)
        first: sqlite3.OperationalError | None = None
        reason = "disk_full"
        # on a full disk, try only when freed pages inside the database can take the batch:
        # the space given back by the reserve is for acknowledgements and deletes
        if self.disk_full and self._ensure_reserve():  # space is back (checked every 5 s)
            self.disk_full = False
            log.warning("edge buffer: disk space is back, storing again")
        if not self.disk_full or self._room_inside(nbytes):
            try:
                seq = self._put(*args)
            except sqlite3.OperationalError as exc:
                if (failure := _write_failure(exc)) is None:
                    raise
                first, reason = exc, failure
                self._enter_disk_full(exc)
            else:
                self._after_write()
                return seq
        if self.policy is DropPolicy.DROP_OLDEST and self._free_some(nbytes):
            try:
                seq = self._put(*args)
            except sqlite3.OperationalError as exc:
                if _write_failure(exc) is None:
                    raise
                first = first or exc
            else:
                self._after_write()
                return seq
        n = len(batch)
        self._count_unwritten(dropped_points=n, dropped_batches=1, dropped_disk_full_points=n)
        self.cursors[stream] = cursor  # kept with the counts: written by the next put
        raise DiskFull(
            reason,
            f"edge buffer cannot write ({first or 'the disk is full'}): {n} points of stream "
            f"{stream!r} dropped (disk_full; {self.used} of {self.max_bytes} bytes used)",
        ) from first

    def _enter_disk_full(self, exc: Exception) -> None:
        if not self.disk_full:
            self.disk_full = True
            log.error("edge buffer: the disk is full (%s); dropping what cannot be stored", exc)
        self._release_reserve()
        self._checkpoint()

    def _after_write(self) -> None:
        """While the disk is full: keep the WAL empty (its space is the only free space) and
        leave that state once the reserve could be taken again."""
        if not self.disk_full:
            return
        self._checkpoint()
        if self._ensure_reserve():
            self.disk_full = False
            log.warning("edge buffer: disk space is back, storing again")

    def _room_inside(self, nbytes: int) -> bool:
        """Free pages inside the database hold ``nbytes`` (with room for its index pages)."""
        (free,) = self.con.execute("PRAGMA freelist_count").fetchone()
        (size,) = self.con.execute("PRAGMA page_size").fetchone()
        return int(free) * int(size) >= nbytes + 4 * int(size)

    def _put(
        self,
        stream: str,
        batch: SampleBatch,
        cursor: str | None,
        created_us: Micros,
        body: bytes,
        names: str,
        nbytes: int,
    ) -> int:
        seq = self.next_seq.get(stream, 1)
        self.con.execute("BEGIN IMMEDIATE")
        try:
            if self.used + nbytes > self.max_bytes:
                freed = self._make_room(nbytes) if self.policy is DropPolicy.DROP_OLDEST else False
                if not freed:
                    self._bump(dropped_points=len(batch), dropped_batches=1)
                    # the refused points are gone for good: the source moves on past them
                    self.con.execute(
                        "INSERT INTO streams VALUES (?, ?, ?) "
                        "ON CONFLICT(stream) DO UPDATE SET cursor = excluded.cursor",
                        (stream, seq, cursor),
                    )
                    self._committed()
                    self.cursors[stream] = cursor
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
            self._committed()
        except BufferFull:
            raise
        except BaseException:
            self._rollback()
            self._reload_counters()
            raise
        rid = int(cur.lastrowid or 0)
        self.next_seq[stream] = seq + 1
        self.cursors[stream] = cursor
        self.live[rid] = _Row(stream, seq, len(batch), nbytes)
        self.by_key[(stream, seq)] = rid
        self.used += nbytes
        return seq

    def _ensure_reserve(self) -> bool:
        """Hold ``reserve_bytes`` of disk in a file of its own, given back when the disk is
        full so that SQLite can checkpoint, delete and acknowledge (every write, a delete
        too, needs WAL space first). Taken again only while twice as much is free, tried at
        most every ``RESERVE_RETRY_S``. True when the reserve is in place."""
        if self.reserve_bytes <= 0:
            return True
        try:
            if self.reserve.stat().st_size >= self.reserve_bytes:
                return True
        except FileNotFoundError:
            pass
        now = time.monotonic()
        if now - self.reserve_tried < RESERVE_RETRY_S:
            return False
        self.reserve_tried = now
        try:
            st = os.statvfs(self.reserve.parent)
            if st.f_bavail * st.f_frsize < 2 * self.reserve_bytes:
                return False
            with self.reserve.open("wb") as f:
                f.write(bytes(self.reserve_bytes))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            self.reserve.unlink(missing_ok=True)
            return False
        return True

    def _release_reserve(self) -> None:
        if self.reserve.exists():
            log.error(
                "edge buffer: disk full, giving back the %d reserved bytes", self.reserve_bytes
            )
            self.reserve.unlink(missing_ok=True)
            self.reserve_tried = time.monotonic()

    def _checkpoint(self) -> None:
        """Give the WAL's disk space back (a full disk may be mostly WAL)."""
        try:
            self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("edge buffer: WAL checkpoint on a full disk failed: %s", exc)

    def _free_some(self, nbytes: int) -> bool:
        """``drop_oldest`` on a full disk: delete the oldest batches not in flight, at least
        ``nbytes`` worth (and at least one), counted with reason ``disk_full``."""
        victims: list[int] = []
        freed = 0
        for rows in (self.backlog, self.live):
            for rid, row in rows.items():
                if freed >= nbytes:
                    break
                if rid not in self.inflight:
                    victims.append(rid)
                    freed += row.nbytes
        if not victims:
            return False
        rows_of = {rid: self.backlog.get(rid) or self.live[rid] for rid in victims}
        points = sum(r.points for r in rows_of.values())
        try:
            self.con.execute("BEGIN IMMEDIATE")
            self.con.executemany("DELETE FROM batches WHERE id = ?", [(v,) for v in victims])
            self._bump(
                dropped_points=points,
                dropped_batches=len(victims),
                dropped_disk_full_points=points,
            )
            self._committed()
        except sqlite3.Error as exc:
            self._rollback()
            self._reload_counters()
            log.warning("edge buffer: could not drop the oldest batches on a full disk: %s", exc)
            return False
        for rid, row in rows_of.items():
            self.backlog.pop(rid, None)
            self.live.pop(rid, None)
            del self.by_key[(row.stream, row.seq)]
            self.used -= row.nbytes
        log.debug(  # the agent logs drops, rate-limited
            "edge buffer: disk full, dropped the %d oldest batches (%d points, disk_full)",
            len(victims),
            points,
        )
        self._checkpoint()
        return True

    def _reload_counters(self) -> None:
        """In-memory counters = what is on disk + what a full disk kept from being written
        (a counter with no row yet included: a rolled-back first bump must not survive)."""
        on_disk = dict(self.con.execute("SELECT name, value FROM counters").fetchall())
        for name in self.counters:
            self.counters[name] = int(on_disk.get(name, 0)) + self.unwritten.get(name, 0)

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
        try:
            self.con.execute("BEGIN IMMEDIATE")
            self.con.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in ids])
            if rejected:
                self._bump(rejected_by_platform_points=points)
            else:
                self._bump(acked_points=points)
            self._committed()
        except sqlite3.Error as exc:
            # rolled back, so the batches are still held: they go out again, and the
            # platform's acknowledgement of the resent frame deletes them then
            self._rollback()
            self._reload_counters()
            self.inflight.difference_update(ids)
            if isinstance(exc, sqlite3.OperationalError) and _write_failure(exc):
                self._enter_disk_full(exc)
            reason = _write_failure(exc) if isinstance(exc, sqlite3.OperationalError) else None
            raise BufferWriteError(
                reason or "io_error", f"edge buffer: acknowledgement not recorded ({exc})"
            ) from exc
        for rid, row in zip(ids, rows, strict=True):
            self.backlog.pop(rid, None)
            self.live.pop(rid, None)
            del self.by_key[(row.stream, row.seq)]
            self.used -= row.nbytes
            self.inflight.discard(rid)
        self._after_write()
        self._shrink()
        return points

    def maintain(self) -> None:
        if self.disk_full and self._ensure_reserve():  # checked at most every 5 s
            self.disk_full = False
            log.warning("edge buffer: disk space is back, storing again")
        self._shrink()

    def _shrink(self) -> None:
        """Give the free pages back to the file system once they are many (see the module
        docstring); never while the disk is full (the reserve is not back yet)."""
        if not self.shrinkable or self.disk_full:
            return
        (free,) = self.con.execute("PRAGMA freelist_count").fetchone()
        (pages,) = self.con.execute("PRAGMA page_count").fetchone()
        (size,) = self.con.execute("PRAGMA page_size").fetchone()
        if int(free) * int(size) < self.shrink_min_bytes or 2 * int(free) < int(pages):
            return
        try:
            # executescript steps the pragma to its end (execute frees one page per step)
            self.con.executescript("PRAGMA incremental_vacuum;")
        except sqlite3.Error as exc:
            log.warning("edge buffer: giving free space back failed: %s", exc)
            return
        self._checkpoint()  # the file is cut when the WAL is checkpointed
        log.info("edge buffer: %d free bytes given back to the file system", free * size)

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
        if self.unwritten:  # counts a full disk kept back: one last try
            try:
                self.con.execute("BEGIN IMMEDIATE")
                self._bump()
                self._committed()
            except sqlite3.Error as exc:
                self._rollback()
                log.error("edge buffer: counts not written at close (%s): %s", exc, self.unwritten)
        self.con.close()


def _write_failure(exc: sqlite3.OperationalError) -> str | None:
    """``disk_full`` or ``io_error`` when SQLite failed to write, else None."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # older SQLite modules: only the message
        return "disk_full" if "disk is full" in str(exc) else None
    primary = code & 0xFF
    if primary == _SQLITE_FULL:
        return "disk_full"
    if primary == _SQLITE_IOERR:
        return "io_error"
    return None


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
        reserve_bytes: int = 0,
    ) -> EdgeBuffer:
        """Open (or create) the buffer at ``path`` with a cap of ``max_bytes`` column bytes;
        ``reserve_bytes`` of disk are held in ``<path>.reserve`` for a full disk."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if reserve_bytes < 0:
            raise ValueError("reserve_bytes must not be negative")
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="andon-edge-buffer")
        loop = asyncio.get_running_loop()
        try:
            engine = await loop.run_in_executor(
                pool, _Engine, Path(path), max_bytes, DropPolicy(policy), reserve_bytes
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

    async def maintain(self) -> None:
        """Housekeeping for quiet times (the agent calls it with each status write): leave
        the disk-full state once the reserve can be taken again, and give free pages back to
        the file system once they are many. Acknowledgements do both too, but a drained
        buffer gets no more of them."""
        await self._run(self._engine.maintain)

    async def close(self) -> None:
        await self._run(self._engine.close)
        self._pool.shutdown(wait=True)
