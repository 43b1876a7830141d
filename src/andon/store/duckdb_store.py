"""``DuckDBStore``: the embedded, single-file implementation of ``TelemetryStore``.

Design, chosen for batched-ingest throughput and low query latency on small machines:

* **One writer thread, a few reader threads.** DuckDB's Python API is synchronous, so every
  operation runs on a thread through ``run_in_executor`` and the event loop is never blocked.
  Writes (appends, retention) run on one dedicated writer thread on the store's connection:
  they are serialised in arrival order and never conflict. Reads run on a small pool
  (``read_threads``, default 4), each reader thread with its own cursor (a connection to the
  same database): a read never waits for a write in progress, and DuckDB's MVCC gives each
  read statement a consistent snapshot (a batch is seen entirely or not at all). The in-memory
  dictionaries and last values below are written only by the writer thread, under a lock that
  readers also take for the moment they look at them (decision 0313).
* **Schema.** Signal paths are mapped to dense integer ids (``signals(id, tenant_id, path)``,
  ids global across tenants and cached in memory); tenants likewise (``tenants(id, name)``).
  ``samples(tenant_id INTEGER, signal_id INTEGER, ts BIGINT, value DOUBLE, quality UTINYINT)``
  keeps the tenant on every row and stores timestamps as raw ``Micros`` (no conversion on the
  way in or out). There are no indexes on ``samples``: appends stay at memory speed and reads
  rely on DuckDB's per-row-group min/max zone maps, which prune well because each appended
  batch is written sorted by ``(signal_id, ts)`` and batches arrive roughly in time order.
* **Columnar append.** A batch is never touched row by row: NumPy maps names to ids, sorts
  by ``(signal, ts)`` (stable, so the first occurrence of a duplicate stays first), flags
  in-batch duplicates, and the kept rows are handed to DuckDB as a zero-copy Arrow table.
* **Duplicates against stored rows.** An in-memory high-water mark (greatest stored ``ts``)
  per signal, rebuilt from the ``latest`` table on open, splits each batch: samples above it
  are new by construction (the fast path, no lookup at all); only samples at or below it are
  anti-joined against ``samples`` (restricted to their tenant and ts range so zone maps
  prune). Every skipped duplicate is counted.
* **Last values.** ``latest(tenant_id, signal_id PRIMARY KEY, ts, value, quality)`` holds the
  sample with the greatest ``ts`` per signal. It is upserted in the same transaction as the
  samples it derives from, and mirrored in NumPy arrays indexed by signal id, so
  ``last_values`` never scans ``samples`` (microseconds for thousands of signals).
* **Aggregates** are computed in SQL: ``min``, ``max``, ``avg``, ``arg_max(value, ts)`` and
  ``count`` grouped by ``(signal, start + (ts - start) // width * width)``, bad quality
  excluded.
  Note that DuckDB orders NaN above +inf, so a NaN value is the ``max`` of its bucket and
  never its ``min``; ``mean`` of a bucket holding NaN is NaN.
* **Text values** (decision 0202) live in ``texts(tenant_id, signal_id, ts, value VARCHAR,
  code DOUBLE, quality)``, ids from the same signal dictionary; a NaN code is ``NULL``. They
  change rarely (a state, a program name), so every append is checked against the stored
  rows of its signals and ts range, without a high-water mark; the rule is the samples'.
* **States and parts** are small tables keyed by machine name (``VARCHAR``); a state's empty
  reason ``''`` is stored as ``NULL`` and read back as ``''``.

Result conventions: ``read`` and ``aggregate`` return ``names`` equal to the requested signals,
de-duplicated, in request order (signals without rows included, so positions are stable);
rows are ordered by ``(index, ts)``/``(index, bucket)``. ``read_states``/``read_parts`` do the
same with the requested machines; with ``machines=None`` their ``names`` are the machines that
have rows in the range, sorted by name. Zero-length state intervals are never returned
(their overlap with any range is empty). Retention removes samples with ``ts < cutoff``,
states with ``end <= cutoff`` (entirely before it) and parts with ``ts < cutoff``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from andon.model.types import (
    F64,
    I32,
    I64,
    Micros,
    PartBatch,
    Quality,
    SampleBatch,
    StateBatch,
    TextBatch,
)
from andon.store.base import Aggregates, AppendResult, LastValue

__all__ = ["DuckDBStore"]

_T = TypeVar("_T")

SCHEMA_VERSION: Final = "1"
DEFAULT_READ_THREADS: Final = min(4, max(2, os.cpu_count() or 2))
"""Reader threads of a store by default: 2 to 4 (each read is itself parallel inside DuckDB)."""
DEFAULT_MEMORY_LIMIT: Final = "256MB"
"""DuckDB's memory limit for a file store by default. DuckDB's own default (80 % of the
machine's RAM) lets its buffer pool keep every block of the file it has written or read:
a process that stores all day grows with its file (the web demo: about 3 MB a minute at
60x). Over the limit, DuckDB evicts cached blocks and spills to ``<file>.tmp``."""
_NO_TS: Final = np.iinfo(np.int64).min
"""High-water mark of a signal with no stored samples."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, path VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    tenant_id INTEGER NOT NULL, signal_id INTEGER NOT NULL, ts BIGINT NOT NULL,
    value DOUBLE NOT NULL, quality UTINYINT NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    signal_id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, ts BIGINT NOT NULL,
    value DOUBLE NOT NULL, quality UTINYINT NOT NULL
);
CREATE TABLE IF NOT EXISTS texts (
    tenant_id INTEGER NOT NULL, signal_id INTEGER NOT NULL, ts BIGINT NOT NULL,
    value VARCHAR NOT NULL, code DOUBLE, quality UTINYINT NOT NULL
);
CREATE TABLE IF NOT EXISTS states (
    tenant_id INTEGER NOT NULL, machine VARCHAR NOT NULL, start_ts BIGINT NOT NULL,
    end_ts BIGINT NOT NULL, state UTINYINT NOT NULL, reason VARCHAR
);
CREATE TABLE IF NOT EXISTS open_states (
    tenant_id INTEGER NOT NULL, machine VARCHAR NOT NULL, start_ts BIGINT NOT NULL,
    end_ts BIGINT NOT NULL, state UTINYINT NOT NULL, reason VARCHAR,
    PRIMARY KEY (tenant_id, machine)
);
CREATE TABLE IF NOT EXISTS parts (
    tenant_id INTEGER NOT NULL, machine VARCHAR NOT NULL, ts BIGINT NOT NULL,
    product VARCHAR NOT NULL, good INTEGER NOT NULL, scrap INTEGER NOT NULL
);
"""


# ---------------------------------------------------------------------------------------------
# Argument validation (runs on the caller's thread, before any work is queued)
# ---------------------------------------------------------------------------------------------


def _tenant(tenant: object) -> str:
    if not isinstance(tenant, str) or not tenant:
        raise ValueError(f"tenant must be a non-empty string, got {tenant!r}")
    return tenant


def _int(what: str, value: object) -> int:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"{what} must be an integer, got {value!r}")


def _range(start: object, end: object) -> tuple[int, int]:
    s, e = _int("start (Micros)", start), _int("end (Micros)", end)
    if not s < e:
        raise ValueError(f"empty or reversed time range: start ({s}) must be < end ({e})")
    return s, e


def _names(kind: str, names: object) -> tuple[str, ...]:
    """Requested names, de-duplicated in request order."""
    if isinstance(names, str | bytes):
        raise ValueError(f"{kind} must be a sequence of names, not a single string")
    if not isinstance(names, Sequence):
        raise ValueError(f"{kind} must be a sequence of names, got {type(names).__name__}")
    out = tuple(dict.fromkeys(names))
    for n in out:
        if not isinstance(n, str):
            raise ValueError(f"{kind} must be strings, got {n!r}")
    return out


def _order_by_index(index: I32, key: I64) -> npt.NDArray[np.intp] | None:
    """Permutation sorting rows by ``(index, key)``, or None when already sorted."""
    if len(index) < 2:
        return None
    if _is_sorted(index, key):
        return None
    # Usual case: each signal's samples already arrive in time order (a poller's batches are
    # time-major), so a stable sort by signal alone (a cheap merge of presorted runs) suffices.
    order = np.argsort(index, kind="stable")
    if _is_sorted(index[order], key[order]):
        return order
    # Out-of-order samples: one stable sort on a packed (index, key) int64 when it fits.
    i_lo, k_lo = int(index.min()), int(key.min())
    i_bits = (int(index.max()) - i_lo).bit_length()
    k_bits = (int(key.max()) - k_lo).bit_length()
    if i_bits + k_bits <= 62:
        packed = ((index.astype(np.int64) - i_lo) << k_bits) | (key - k_lo)
        return np.argsort(packed, kind="stable")
    return np.lexsort((key, index))


def _same(value: F64, quality: npt.NDArray[np.uint8], first: npt.NDArray[np.intp]) -> Any:
    """Whether each row's value and quality equal those of row ``first[i]`` (NaN equals NaN:
    a resent bad-quality NaN is a resend, not a conflict)."""
    v0 = value[first]
    return ((value == v0) | (np.isnan(value) & np.isnan(v0))) & (quality == quality[first])


def _is_sorted(index: I32, key: I64) -> bool:
    """Whether rows are ordered by ``(index, key)``."""
    i0, i1 = index[:-1], index[1:]
    return bool(np.all((i1 > i0) | ((i1 == i0) & (key[1:] >= key[:-1]))))


# ---------------------------------------------------------------------------------------------
# The synchronous engine: writes run on the store's writer thread, reads on its reader threads.
# ---------------------------------------------------------------------------------------------


class _Engine:
    """Connection plus in-memory dictionaries and high-water marks.

    Writes (``append*``, ``put_open_states``, ``delete_before``, and the dictionaries they
    grow) run only on the owning ``DuckDBStore``'s writer thread, on ``con``. Reads run on
    reader threads, each on its own cursor (``reader()``). ``lock`` guards the in-memory state
    that both see: the writer holds it while it changes the dictionaries or last values, a
    reader while it looks them up (never while SQL runs)."""

    def __init__(
        self,
        database: str,
        max_signals_per_tenant: int | None = None,
        readers: int = 0,
        memory_limit: str | None = None,
    ) -> None:
        self.max_signals = max_signals_per_tenant
        """Cap of each tenant's signal dictionary (``None``: none); rows of a new signal
        beyond it are refused and counted (``AppendResult.refused``)."""
        self.lock = threading.Lock()
        self._local = threading.local()
        config: dict[str, str | bool | int | float | list[str]] = {}
        if memory_limit is not None:
            config["memory_limit"] = memory_limit
        self.con = duckdb.connect(database, config=config)
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        try:
            self._load(database)
            # made here, on the opening thread, not by each reader thread on first use:
            # ``cursor()`` must not race the writer on ``con``
            for _ in range(readers):
                cur = self.con.cursor()
                self._cursors.append(cur)
                self._free.put(cur)
        except BaseException:
            self.close()
            raise

    def bind_reader(self) -> None:
        """Give the calling (reader) thread a cursor of its own; a reader pool's initializer."""
        self._local.con = self._free.get_nowait()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """The calling thread's connection for reads: its own cursor on a reader thread."""
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        return self.con if con is None else con

    def _load(self, database: str) -> None:
        """Create the schema if needed and load the dictionaries and last values."""
        self.con.execute(_SCHEMA)
        row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        elif row[0] != SCHEMA_VERSION:
            raise ValueError(
                f"{database}: store schema version {row[0]}, this andon needs {SCHEMA_VERSION}"
            )
        self.tenants: dict[str, int] = {
            name: int(tid)
            for tid, name in self.con.execute("SELECT id, name FROM tenants").fetchall()
        }
        self.signals: dict[int, dict[str, int]] = {tid: {} for tid in self.tenants.values()}
        self.paths: list[str] = []
        rows = self.con.execute("SELECT id, tenant_id, path FROM signals ORDER BY id").fetchall()
        for sid, tid, path in rows:
            if sid != len(self.paths):
                raise ValueError(f"{database}: signal ids are not dense (at {sid})")
            self.paths.append(path)
            self.signals.setdefault(int(tid), {})[path] = int(sid)
        cap = max(1024, 2 * len(self.paths))
        self.hwm: I64 = np.full(cap, _NO_TS, dtype=np.int64)
        self.last_value = np.zeros(cap, dtype=np.float64)
        self.last_quality = np.zeros(cap, dtype=np.uint8)
        got = self.con.execute("SELECT signal_id, ts, value, quality FROM latest").fetchnumpy()
        ids = np.asarray(got["signal_id"], dtype=np.int64)
        self.hwm[ids] = got["ts"]
        self.last_value[ids] = got["value"]
        self.last_quality[ids] = got["quality"]

    # -- dictionaries ---------------------------------------------------------------------

    def tenant_id(self, tenant: str, *, create: bool) -> int | None:
        tid = self.tenants.get(tenant)
        if tid is None and create:
            tid = len(self.tenants)
            self.con.execute("INSERT INTO tenants VALUES (?, ?)", [tid, tenant])
            with self.lock:
                self.signals[tid] = {}
                self.tenants[tenant] = tid
        return tid

    def signal_ids(self, tid: int, names: Sequence[str]) -> I32:
        """Ids of ``names`` for tenant ``tid``, creating the missing ones in one insert; -1
        for a new name that the tenant's cap (``max_signals``) leaves no room for."""
        known = self.signals[tid]
        new = [n for n in dict.fromkeys(names) if n not in known]
        if self.max_signals is not None and len(known) + len(new) > self.max_signals:
            new = new[: max(0, self.max_signals - len(known))]
        if new:
            first = len(self.paths)
            ids = np.arange(first, first + len(new), dtype=np.int32)
            table = pa.table({"id": ids, "path": pa.array(new, pa.string())})
            self.con.register("_new_signals", table)
            try:
                self.con.execute("INSERT INTO signals SELECT id, ?, path FROM _new_signals", [tid])
            finally:
                self.con.unregister("_new_signals")
            with self.lock:  # arrays grown before readers can see the new ids
                self._grow(first + len(new))
                self.paths.extend(new)
                for i, n in enumerate(new):
                    known[n] = first + i
        return np.fromiter((known.get(n, -1) for n in names), dtype=np.int32, count=len(names))

    def _grow(self, size: int) -> None:
        cap = len(self.hwm)
        if size <= cap:
            return
        while cap < size:
            cap *= 2
        extra = cap - len(self.hwm)
        self.hwm = np.concatenate([self.hwm, np.full(extra, _NO_TS, dtype=np.int64)])
        self.last_value = np.concatenate([self.last_value, np.zeros(extra)])
        self.last_quality = np.concatenate([self.last_quality, np.zeros(extra, np.uint8)])

    def lookup(self, tenant: str, names: tuple[str, ...]) -> tuple[int, I32, I32] | None:
        """``(tenant id, signal ids, their positions in names)`` for known signals only."""
        with self.lock:
            tid = self.tenants.get(tenant)
            if tid is None:
                return None
            known = self.signals[tid]
            pos = [i for i, n in enumerate(names) if n in known]
            if not pos:
                return None
            ids = np.fromiter((known[names[i]] for i in pos), dtype=np.int32, count=len(pos))
        return tid, ids, np.asarray(pos, dtype=np.int32)

    # -- samples --------------------------------------------------------------------------

    def append(self, tenant: str, batch: SampleBatch) -> AppendResult:
        n = len(batch)
        if n == 0:
            return AppendResult(0, 0)
        if int(batch.quality.max()) > Quality.BAD:
            raise ValueError(f"quality must be 0..{int(Quality.BAD)}, got {batch.quality.max()}")
        tid = self.tenant_id(tenant, create=True)
        assert tid is not None
        # ids only for the names rows use: a name table may list names whose rows were
        # refused upstream, and those must not grow the dictionary
        used = np.flatnonzero(np.bincount(batch.index, minlength=len(batch.names)))  # O(n)
        lut = np.full(len(batch.names), -1, dtype=np.int32)
        lut[used] = self.signal_ids(tid, [batch.names[i] for i in used])
        sig = lut[batch.index]
        ts, value, quality = batch.ts, batch.value, batch.quality
        refused = 0
        if lut[used].min() < 0:
            room = sig >= 0
            refused = n - int(np.count_nonzero(room))
            sig, ts, value, quality = sig[room], ts[room], value[room], quality[room]
            n = len(sig)
            if n == 0:
                return AppendResult(0, 0, 0, refused)
        order = _order_by_index(sig, ts)
        if order is not None:
            sig, ts, value, quality = sig[order], ts[order], value[order], quality[order]

        # In-batch duplicates: equal neighbours after the stable sort; the first one is kept.
        dup = np.zeros(n, dtype=bool)
        np.logical_and(sig[1:] == sig[:-1], ts[1:] == ts[:-1], out=dup[1:])
        conflicts = 0
        if dup.any():  # compared with the first of their run, the one kept
            first = np.maximum.accumulate(np.where(dup, 0, np.arange(n)))
            conflicts += int(np.count_nonzero(dup & ~_same(value, quality, first)))
        # Stored duplicates: only samples at or below their signal's high-water mark can be.
        hwm = self.hwm[sig]
        maybe = (ts <= hwm) & ~dup
        if maybe.any():
            rows, old_value, old_quality = self._stored(tid, np.flatnonzero(maybe), sig, ts)
            dup[rows] = True
            differ = (value[rows] != old_value) & ~(np.isnan(value[rows]) & np.isnan(old_value))
            conflicts += int(np.count_nonzero(differ | (quality[rows] != old_quality)))
        duplicates = int(np.count_nonzero(dup))
        if duplicates:
            keep = ~dup
            sig, ts, value, quality, hwm = (
                sig[keep],
                ts[keep],
                value[keep],
                quality[keep],
                hwm[keep],
            )
        written = len(sig)
        if written == 0:
            return AppendResult(0, duplicates, conflicts, refused)

        # Last row of each signal's run is its newest sample in the batch.
        ends = np.flatnonzero(np.append(sig[1:] != sig[:-1], True))
        ends = ends[ts[ends] > hwm[ends]]
        table = pa.table({"sid": sig, "ts": ts, "value": value, "quality": quality})
        self.con.begin()
        try:
            self.con.register("_batch", table)
            self.con.execute(
                "INSERT INTO samples SELECT ?, sid, ts, value, quality FROM _batch", [tid]
            )
            if len(ends):
                self.con.register("_latest", table.take(pa.array(ends)))
                self.con.execute(
                    "INSERT INTO latest SELECT sid, ?, ts, value, quality FROM _latest "
                    "ON CONFLICT (signal_id) DO UPDATE SET ts = excluded.ts, "
                    "value = excluded.value, quality = excluded.quality",
                    [tid],
                )
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        finally:
            self.con.unregister("_batch")
            self.con.unregister("_latest")
        upd = sig[ends]
        with self.lock:
            self.hwm[upd] = ts[ends]
            self.last_value[upd] = value[ends]
            self.last_quality[upd] = quality[ends]
        return AppendResult(written, duplicates, conflicts, refused)

    def _stored(
        self, tid: int, rows: npt.NDArray[np.intp], sig: I32, ts: I64
    ) -> tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.uint8]]:
        """Which of ``rows`` (positions into sig/ts) are already stored, with the stored
        value and quality of each: a join against ``samples`` limited to the candidates'
        tenant and ts range."""
        cand_ts = ts[rows]
        table = pa.table({"i": rows.astype(np.int64), "sid": sig[rows], "ts": cand_ts})
        self.con.register("_cand", table)
        try:
            found = self.con.execute(
                "SELECT c.i, s.value, s.quality FROM _cand AS c JOIN ("
                "  SELECT signal_id, ts, value, quality FROM samples"
                "  WHERE tenant_id = ? AND ts >= ? AND ts <= ?"
                ") AS s ON s.signal_id = c.sid AND s.ts = c.ts",
                [tid, int(cand_ts.min()), int(cand_ts.max())],
            ).fetchnumpy()
        finally:
            self.con.unregister("_cand")
        return (
            np.asarray(found["i"], dtype=np.int64),
            np.asarray(found["value"], dtype=np.float64),
            np.asarray(found["quality"], dtype=np.uint8),
        )

    def _query_signals(self, ids: I32, pos: I32, sql: str, params: list[object]) -> Any:
        """Run ``sql`` over the samples of signals ``ids``, exposing each row's position in
        the requested names as ``pos``. ``sql`` selects from ``{rows}`` and filters with
        ``WHERE {where} ...``.

        One signal: an equality filter, which DuckDB pushes into the scan (zone-map pruning).
        More: a join against a registered ``(sid, pos)`` table, several times faster than an
        inlined ``IN`` list (which DuckDB turns into a mark join over every row).
        """
        con = self.reader()
        if len(ids) == 1:
            # Integer literals this engine generated: safe to inline.
            rows = f"(SELECT {int(pos[0])}::INTEGER AS pos, * FROM samples)"
            where = f"signal_id = {int(ids[0])}"
            return con.execute(sql.format(rows=rows, where=where), params).fetchnumpy()
        con.register("_signals", pa.table({"sid": ids, "pos": pos}))
        try:
            rows = "samples JOIN _signals ON samples.signal_id = _signals.sid"
            return con.execute(sql.format(rows=rows, where="true"), params).fetchnumpy()
        finally:
            con.unregister("_signals")

    def read(self, tenant: str, names: tuple[str, ...], start: int, end: int) -> SampleBatch:
        found = self.lookup(tenant, names)
        if found is None:
            return SampleBatch.build(names, [], [], [], [])
        tid, ids, pos = found
        got = self._query_signals(
            ids,
            pos,
            "SELECT pos, ts, value, quality FROM {rows} "
            "WHERE {where} AND tenant_id = ? AND ts >= ? AND ts < ?",
            [tid, start, end],
        )
        index = np.asarray(got["pos"], dtype=np.int32)
        ts = np.asarray(got["ts"], dtype=np.int64)
        value = np.asarray(got["value"], dtype=np.float64)
        quality = np.asarray(got["quality"], dtype=np.uint8)
        order = _order_by_index(index, ts)
        if order is not None:
            index, ts, value, quality = index[order], ts[order], value[order], quality[order]
        return SampleBatch(names, index, ts, value, quality)

    def aggregate(
        self, tenant: str, names: tuple[str, ...], start: int, end: int, width: int
    ) -> Aggregates:
        found = self.lookup(tenant, names)
        if found is None:
            e64, ef = np.zeros(0, np.int64), np.zeros(0, np.float64)
            return Aggregates(names, np.zeros(0, np.int32), e64, ef, ef, ef, ef, e64)
        tid, ids, pos = found
        got = self._query_signals(
            ids,
            pos,
            "SELECT pos, ? + (ts - ?) // ? * ? AS bucket, min(value) AS mn, max(value) AS mx, "
            "avg(value) AS mean, arg_max(value, ts) AS last, count(*)::BIGINT AS n "
            "FROM {rows} WHERE {where} AND tenant_id = ? AND ts >= ? AND ts < ? "
            f"AND quality <> {int(Quality.BAD)} GROUP BY pos, bucket",
            [start, start, width, width, tid, start, end],
        )
        index = np.asarray(got["pos"], dtype=np.int32)
        bucket = np.asarray(got["bucket"], dtype=np.int64)
        cols = [np.asarray(got[k], dtype=np.float64) for k in ("mn", "mx", "mean", "last")]
        count = np.asarray(got["n"], dtype=np.int64)
        order = _order_by_index(index, bucket)
        if order is not None:
            index, bucket, count = index[order], bucket[order], count[order]
            cols = [c[order] for c in cols]
        return Aggregates(names, index, bucket, cols[0], cols[1], cols[2], cols[3], count)

    def last_values(self, tenant: str, names: tuple[str, ...] | None) -> dict[str, LastValue]:
        with self.lock:  # one consistent view: no value torn between two appends
            tid = self.tenants.get(tenant)
            if tid is None:
                return {}
            known = self.signals[tid]
            if names is None:
                names = tuple(known)
            pairs = [(n, known[n]) for n in names if n in known]
            if not pairs:
                return {}
            ids = np.fromiter((i for _, i in pairs), dtype=np.int64, count=len(pairs))
            ts = self.hwm[ids]
            val, q = self.last_value[ids], self.last_quality[ids]
        has = ts != _NO_TS
        ts_l, val_l, q_l = ts.tolist(), val.tolist(), q.tolist()
        return {
            n: LastValue(t, v, q)
            for (n, _), t, v, q, h in zip(pairs, ts_l, val_l, q_l, has.tolist(), strict=True)
            if h
        }

    # -- text values ----------------------------------------------------------------------

    def append_text(self, tenant: str, batch: TextBatch) -> AppendResult:
        n = len(batch)
        if n == 0:
            return AppendResult(0, 0)
        if int(batch.quality.max()) > Quality.BAD:
            raise ValueError(f"quality must be 0..{int(Quality.BAD)}, got {batch.quality.max()}")
        tid = self.tenant_id(tenant, create=True)
        assert tid is not None
        used = np.flatnonzero(np.bincount(batch.index, minlength=len(batch.names)))
        lut = np.full(len(batch.names), -1, dtype=np.int32)
        lut[used] = self.signal_ids(tid, [batch.names[i] for i in used])
        sig = lut[batch.index]
        rows = np.flatnonzero(sig >= 0)
        refused = n - len(rows)
        if len(rows) == 0:
            return AppendResult(0, 0, 0, refused)
        order = _order_by_index(sig[rows], batch.ts[rows])
        if order is not None:
            rows = rows[order]
        sig, ts = sig[rows], batch.ts[rows]
        value = [batch.value[i] for i in rows.tolist()]
        quality, code = batch.quality[rows], batch.code[rows]
        m = len(rows)
        dup = np.zeros(m, dtype=bool)
        np.logical_and(sig[1:] == sig[:-1], ts[1:] == ts[:-1], out=dup[1:])
        conflicts = 0
        if dup.any():  # compared with the first of their run, the one kept
            first = np.maximum.accumulate(np.where(dup, 0, np.arange(m))).tolist()
            for i in np.flatnonzero(dup).tolist():
                j = first[i]
                conflicts += value[i] != value[j] or quality[i] != quality[j]
        cand = np.flatnonzero(~dup)
        table = pa.table({"i": cand.astype(np.int64), "sid": sig[cand], "ts": ts[cand]})
        self.con.register("_cand", table)
        try:
            found = self.con.execute(
                "SELECT c.i, t.value, t.quality FROM _cand AS c JOIN ("
                "  SELECT signal_id, ts, value, quality FROM texts"
                "  WHERE tenant_id = ? AND ts >= ? AND ts <= ?"
                ") AS t ON t.signal_id = c.sid AND t.ts = c.ts",
                [tid, int(ts[cand].min()), int(ts[cand].max())],
            ).fetchall()
        finally:
            self.con.unregister("_cand")
        for i, old_value, old_quality in found:
            dup[i] = True
            conflicts += value[i] != old_value or int(quality[i]) != int(old_quality)
        keep = np.flatnonzero(~dup)
        duplicates = m - len(keep)
        if len(keep) == 0:
            return AppendResult(0, duplicates, conflicts, refused)
        kept_code = code[keep]
        out = pa.table(
            {
                "sid": sig[keep],
                "ts": ts[keep],
                "value": pa.array([value[i] for i in keep.tolist()], pa.string()),
                "code": pa.array(kept_code, pa.float64(), mask=np.isnan(kept_code)),
                "quality": quality[keep],
            }
        )
        self.con.register("_texts", out)
        try:
            self.con.execute(
                "INSERT INTO texts SELECT ?, sid, ts, value, code, quality FROM _texts", [tid]
            )
        finally:
            self.con.unregister("_texts")
        return AppendResult(len(keep), duplicates, conflicts, refused)

    def read_text(self, tenant: str, names: tuple[str, ...], start: int, end: int) -> TextBatch:
        found = self.lookup(tenant, names)
        if found is None:
            return TextBatch.build(names, [], [], [])
        tid, ids, pos = found
        con = self.reader()
        con.register("_tsignals", pa.table({"sid": ids, "pos": pos}))
        try:
            got = con.execute(
                "SELECT s.pos, t.ts, t.value, coalesce(t.code, 'NaN'::DOUBLE) AS code, "
                "t.quality FROM texts AS t JOIN _tsignals AS s ON t.signal_id = s.sid "
                "WHERE t.tenant_id = ? AND t.ts >= ? AND t.ts < ? ORDER BY s.pos, t.ts",
                [tid, start, end],
            ).fetchnumpy()
        finally:
            con.unregister("_tsignals")
        return TextBatch(
            names,
            np.asarray(got["pos"], dtype=np.int32),
            np.asarray(got["ts"], dtype=np.int64),
            tuple(str(v) for v in got["value"].tolist()),
            np.asarray(got["quality"], dtype=np.uint8),
            np.asarray(got["code"], dtype=np.float64),
        )

    # -- states and parts -----------------------------------------------------------------

    @staticmethod
    def _machines(names: tuple[str, ...], index: I32) -> pa.Array:
        return pa.array(np.asarray(names, dtype=object)[index], type=pa.string())

    def append_states(self, tenant: str, batch: StateBatch) -> int:
        if len(batch) == 0:
            return 0
        tid = self.tenant_id(tenant, create=True)
        table = pa.table(
            {
                "machine": self._machines(batch.names, batch.index),
                "start_ts": batch.start,
                "end_ts": batch.end,
                "state": batch.state,
                "reason": pa.array([r or None for r in batch.reason], type=pa.string()),
            }
        )
        self.con.register("_states", table)
        try:
            self.con.execute(
                "INSERT INTO states SELECT ?, machine, start_ts, end_ts, state, reason "
                "FROM _states",
                [tid],
            )
        finally:
            self.con.unregister("_states")
        return len(batch)

    def put_open_states(self, tenant: str, batch: StateBatch) -> int:
        if len(batch) == 0:
            return 0
        # one row per machine: the one confirmed last (an upsert may not touch a row twice)
        order = np.lexsort((batch.end, batch.index))
        idx = batch.index[order]
        last = order[np.append(idx[1:] != idx[:-1], True)]
        tid = self.tenant_id(tenant, create=True)
        table = pa.table(
            {
                "machine": self._machines(batch.names, batch.index[last]),
                "start_ts": batch.start[last],
                "end_ts": batch.end[last],
                "state": batch.state[last],
                "reason": pa.array([batch.reason[i] or None for i in last], type=pa.string()),
            }
        )
        self.con.register("_open", table)
        try:
            self.con.execute(
                "INSERT INTO open_states SELECT ?, machine, start_ts, end_ts, state, reason "
                "FROM _open ON CONFLICT (tenant_id, machine) DO UPDATE SET "
                "start_ts = excluded.start_ts, end_ts = excluded.end_ts, "
                "state = excluded.state, reason = excluded.reason "
                "WHERE excluded.end_ts >= open_states.end_ts",
                [tid],
            )
        finally:
            self.con.unregister("_open")
        return len(last)

    def open_states(self, tenant: str, machines: tuple[str, ...] | None) -> StateBatch:
        got = self._select_by_machine(
            tenant,
            machines,
            "start_ts AS s, end_ts AS e, state, coalesce(reason, '') AS reason",
            "open_states",
            [],
            "TRUE",
            [],
            "s",
        )
        return self._state_batch(machines, got)

    @staticmethod
    def _state_batch(
        machines: tuple[str, ...] | None,
        got: tuple[tuple[str, ...], I32, dict[str, npt.NDArray[Any]]] | None,
    ) -> StateBatch:
        """Rows selected as ``s, e, state, reason`` into a ``StateBatch``."""
        if got is None:
            return StateBatch.build(machines or (), [], [], [], [])
        names, index, cols = got
        return StateBatch(
            names,
            index,
            np.asarray(cols["s"], dtype=np.int64),
            np.asarray(cols["e"], dtype=np.int64),
            np.asarray(cols["state"], dtype=np.uint8),
            tuple(cols["reason"].tolist()),
        )

    def _select_by_machine(
        self,
        tenant: str,
        machines: tuple[str, ...] | None,
        columns: str,
        table: str,
        col_params: list[object],
        where: str,
        where_params: list[object],
        order: str,
    ) -> tuple[tuple[str, ...], I32, dict[str, npt.NDArray[Any]]] | None:
        """Rows of ``table`` for a tenant and machine list, with machine codes into names."""
        tid = self.tenants.get(tenant)
        if tid is None or (machines is not None and not machines):
            return None
        con = self.reader()
        if machines is None:
            sql = (
                f"SELECT machine, {columns} FROM {table} WHERE tenant_id = ? AND {where} "
                f"ORDER BY machine, {order}"
            )
            arrow = con.sql(sql, params=[*col_params, tid, *where_params]).to_arrow_table()
            encoded = arrow.column("machine").combine_chunks().dictionary_encode()
            names = tuple(encoded.dictionary.to_pylist())
            index = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
            cols = {c: arrow.column(c).to_numpy() for c in arrow.column_names if c != "machine"}
            return names, index, cols
        sql = (
            f"SELECT list_position(?, machine) - 1 AS pos, {columns} FROM {table} "
            f"WHERE tenant_id = ? AND list_contains(?, machine) AND {where} "
            f"ORDER BY pos, {order}"
        )
        wanted = list(machines)
        got = con.execute(sql, [wanted, *col_params, tid, wanted, *where_params]).fetchnumpy()
        index = np.asarray(got.pop("pos"), dtype=np.int32)
        return machines, index, got

    def read_states(
        self, tenant: str, machines: tuple[str, ...] | None, start: int, end: int
    ) -> StateBatch:
        got = self._select_by_machine(
            tenant,
            machines,
            "greatest(start_ts, ?) AS s, least(end_ts, ?) AS e, state, "
            "coalesce(reason, '') AS reason",
            "states",
            [start, end],
            "start_ts < ? AND end_ts > ? AND start_ts < end_ts",
            [end, start],
            "s, e",
        )
        return self._state_batch(machines, got)

    def append_parts(self, tenant: str, batch: PartBatch) -> int:
        if len(batch) == 0:
            return 0
        tid = self.tenant_id(tenant, create=True)
        table = pa.table(
            {
                "machine": self._machines(batch.names, batch.index),
                "ts": batch.ts,
                "product": pa.array(batch.product, type=pa.string()),
                "good": batch.good,
                "scrap": batch.scrap,
            }
        )
        self.con.register("_parts", table)
        try:
            self.con.execute(
                "INSERT INTO parts SELECT ?, machine, ts, product, good, scrap FROM _parts",
                [tid],
            )
        finally:
            self.con.unregister("_parts")
        return len(batch)

    def read_parts(
        self, tenant: str, machines: tuple[str, ...] | None, start: int, end: int
    ) -> PartBatch:
        got = self._select_by_machine(
            tenant,
            machines,
            "ts, product, good, scrap",
            "parts",
            [],
            "ts >= ? AND ts < ?",
            [start, end],
            "ts",
        )
        if got is None:
            return PartBatch.build(machines or (), [], [], [], [], [])
        names, index, cols = got
        return PartBatch(
            names,
            index,
            np.asarray(cols["ts"], dtype=np.int64),
            tuple(cols["product"].tolist()),
            np.asarray(cols["good"], dtype=np.int32),
            np.asarray(cols["scrap"], dtype=np.int32),
        )

    # -- retention and lifecycle ----------------------------------------------------------

    def delete_before(self, tenant: str | None, cutoff: int) -> int:
        if tenant is None:
            scope, params = "", [cutoff]
        else:
            tid = self.tenants.get(tenant)
            if tid is None:
                return 0
            scope, params = " AND tenant_id = ?", [cutoff, tid]
        deleted = 0
        self.con.begin()
        try:
            for sql in (
                f"DELETE FROM samples WHERE ts < ?{scope}",
                f"DELETE FROM texts WHERE ts < ?{scope}",
                f"DELETE FROM states WHERE end_ts <= ?{scope}",
                f"DELETE FROM open_states WHERE end_ts < ?{scope}",
                f"DELETE FROM parts WHERE ts < ?{scope}",
            ):
                row = self.con.execute(sql, params).fetchone()
                deleted += int(row[0]) if row else 0
            # A signal whose newest sample is older than the cutoff now has no samples at all.
            gone = self.con.execute(
                f"DELETE FROM latest WHERE ts < ?{scope} RETURNING signal_id", params
            ).fetchnumpy()["signal_id"]
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        with self.lock:
            self.hwm[np.asarray(gone, dtype=np.int64)] = _NO_TS
        return deleted

    def close(self) -> None:
        """Close the readers' cursors, then the connection (which checkpoints a file)."""
        for cur in self._cursors:
            cur.close()
        self.con.close()


# ---------------------------------------------------------------------------------------------
# The async facade
# ---------------------------------------------------------------------------------------------


class DuckDBStore:
    """``TelemetryStore`` on an embedded DuckDB database (one file, or in memory).

    Create with :meth:`open`; use as an async context manager or call :meth:`close`.
    """

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        engine: _Engine,
        database: str,
        readers: ThreadPoolExecutor | None = None,
    ) -> None:
        self._executor = executor
        self._readers = readers or executor
        """Where reads run: the reader pool (each thread its own cursor), or the writer."""
        self._engine = engine
        self._closed = False
        self.database = database
        """The DuckDB database this store opened: a file path, or ``:memory:``."""

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        max_signals_per_tenant: int | None = None,
        read_threads: int = DEFAULT_READ_THREADS,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
    ) -> DuckDBStore:
        """Open (creating if needed) the store at ``path``; ``None`` or ``":memory:"`` gives a
        private in-memory store. The parent directory of a file is created.
        ``max_signals_per_tenant`` caps each tenant's signal dictionary (rows of new signals
        beyond it are refused and counted in ``AppendResult.refused``). ``read_threads``
        reader threads (each with its own cursor) serve reads while a write is in progress;
        ``0`` runs reads on the writer thread, queued behind writes. ``memory_limit`` bounds
        DuckDB's memory for a file store (``DEFAULT_MEMORY_LIMIT``; ``None``: DuckDB's own
        default, 80 % of RAM); an in-memory store holds all its data in memory and has none.

        Opening is synchronous: it connects on the writer thread and waits for it, loading only
        the small dictionaries and the ``latest`` table, never the samples.
        """
        if isinstance(read_threads, bool) or not isinstance(read_threads, int) or read_threads < 0:
            raise ValueError(f"read_threads must be an integer >= 0, got {read_threads!r}")
        if path is None or str(path) == ":memory:":
            database = ":memory:"
            memory_limit = None
        else:
            p = Path(path).expanduser()
            p.parent.mkdir(parents=True, exist_ok=True)
            database = str(p)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="andon-duckdb")
        try:
            engine = executor.submit(
                _Engine, database, max_signals_per_tenant, read_threads, memory_limit
            ).result()
        except BaseException:
            executor.shutdown(wait=False)
            raise
        readers = None
        if read_threads:
            readers = ThreadPoolExecutor(
                max_workers=read_threads,
                thread_name_prefix="andon-duckdb-read",
                initializer=engine.bind_reader,
            )
        return cls(executor, engine, database, readers)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"DuckDBStore({self.database!r}, {state})"

    async def memory_bytes(self) -> int:
        """The bytes DuckDB holds now (``duckdb_memory()``): its buffer pool, the rows not
        yet checkpointed and its indexes; at most about the store's ``memory_limit``."""

        def go() -> int:
            row = (
                self._engine.reader()
                .execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
                .fetchone()
            )
            return int(row[0] or 0) if row else 0

        return await self._read(go)

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run a write on the writer thread (in arrival order)."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def _read(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run a read on a reader thread: it does not wait for writes queued or in progress."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(fn, *args))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def append(self, tenant: str, batch: SampleBatch) -> AppendResult:
        return await self._run(self._engine.append, _tenant(tenant), batch)

    async def read(
        self, tenant: str, signals: Sequence[str], start: Micros, end: Micros
    ) -> SampleBatch:
        names = _names("signals", signals)
        return await self._read(self._engine.read, _tenant(tenant), names, *_range(start, end))

    async def aggregate(
        self,
        tenant: str,
        signals: Sequence[str],
        start: Micros,
        end: Micros,
        bucket_us: int,
    ) -> Aggregates:
        names = _names("signals", signals)
        s, e = _range(start, end)
        width = _int("bucket_us", bucket_us)
        if width <= 0:
            raise ValueError(f"bucket_us must be > 0, got {width}")
        return await self._read(self._engine.aggregate, _tenant(tenant), names, s, e, width)

    async def last_values(
        self, tenant: str, signals: Sequence[str] | None = None
    ) -> dict[str, LastValue]:
        names = None if signals is None else _names("signals", signals)
        if self._readers is self._executor:  # no reader threads: queued behind the writes
            return await self._run(self._engine.last_values, _tenant(tenant), names)
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        # in memory, under the engine's lock for microseconds: answered here, on the loop,
        # rather than queued behind the SQL reads for a thread that would hold the GIL anyway
        return self._engine.last_values(_tenant(tenant), names)

    async def append_text(self, tenant: str, batch: TextBatch) -> AppendResult:
        return await self._run(self._engine.append_text, _tenant(tenant), batch)

    async def read_text(
        self, tenant: str, signals: Sequence[str], start: Micros, end: Micros
    ) -> TextBatch:
        names = _names("signals", signals)
        return await self._read(self._engine.read_text, _tenant(tenant), names, *_range(start, end))

    async def append_states(self, tenant: str, batch: StateBatch) -> int:
        return await self._run(self._engine.append_states, _tenant(tenant), batch)

    async def read_states(
        self, tenant: str, machines: Sequence[str] | None, start: Micros, end: Micros
    ) -> StateBatch:
        names = None if machines is None else _names("machines", machines)
        s, e = _range(start, end)
        return await self._read(self._engine.read_states, _tenant(tenant), names, s, e)

    async def put_open_states(self, tenant: str, batch: StateBatch) -> int:
        return await self._run(self._engine.put_open_states, _tenant(tenant), batch)

    async def open_states(self, tenant: str, machines: Sequence[str] | None) -> StateBatch:
        names = None if machines is None else _names("machines", machines)
        return await self._read(self._engine.open_states, _tenant(tenant), names)

    async def append_parts(self, tenant: str, batch: PartBatch) -> int:
        return await self._run(self._engine.append_parts, _tenant(tenant), batch)

    async def read_parts(
        self, tenant: str, machines: Sequence[str] | None, start: Micros, end: Micros
    ) -> PartBatch:
        names = None if machines is None else _names("machines", machines)
        s, e = _range(start, end)
        return await self._read(self._engine.read_parts, _tenant(tenant), names, s, e)

    async def delete_before(self, tenant: str | None, cutoff: Micros) -> int:
        scope = None if tenant is None else _tenant(tenant)
        c = _int("cutoff (Micros)", cutoff)
        return await self._run(self._engine.delete_before, scope, c)

    async def close(self) -> None:
        """Checkpoint and close the database, then stop the threads. Idempotent."""
        if self._closed:
            return
        self._closed = True  # new calls fail now; calls already queued still run first
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        """On the writer thread, after the writes queued before it: wait for the reads queued
        or running, then close the cursors and the connection."""
        if self._readers is not self._executor:
            self._readers.shutdown(wait=True)
        self._engine.close()
