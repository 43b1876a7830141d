"""The ``TelemetryStore`` protocol: what every telemetry store implementation provides.

Semantics every implementation must honour (checked by the conformance suite in
``tests/store/test_conformance.py``):

* Every row carries its tenant; every method takes one; a tenant never sees another's rows.
* Timestamps are ``Micros`` (int64 µs since the epoch, UTC). Ranges are half-open
  ``[start, end)``.
* **Samples**: appended in batches. Samples may arrive out of order; reads always return them
  ordered by ``(signal, ts)``. A sample whose ``(tenant, signal, ts)`` is already stored
  (in the same batch or an earlier one) is a *duplicate*: the first write wins, the duplicate
  is not stored and is counted in ``AppendResult.duplicates``; a duplicate whose value or
  quality differs from the first is also counted in ``AppendResult.conflicts``.
* **Signal dictionary.** Only signals with rows in an append are given ids (a batch's name
  table may list more); a store may cap the signals per tenant and refuse (count in
  ``AppendResult.refused``, never store) rows that would exceed it.
* **Last value** of a signal is the stored sample with the greatest ``ts`` (not the last one
  written), so a late, out-of-order sample never replaces a newer value.
* **Aggregates** are per ``(signal, bucket)`` where ``bucket = start + k * width`` holds
  ``[bucket, bucket + width)``; ``last`` is the value at the greatest ts in the bucket;
  empty buckets are not returned. Bad-quality samples are stored and read back but excluded
  from aggregates and from ``count``.
* **States** are intervals ``[start, end)`` per machine; reads return the intervals that
  overlap the range, clipped to it, ordered by (machine, start).
* **Parts** are counter events; reads return events with ``start <= ts < end``.
* **Text values** (``TextBatch``: strings, enumeration labels, events; decision 0202) are
  kept apart from samples, under the same signal dictionary and the same rule: the first
  write of each ``(tenant, signal, ts)`` wins, a repeat is a duplicate, one with another
  value or quality a conflict too. ``read_text`` returns them like ``read``.
* **Retention** deletes samples and text values (``ts < cutoff``), states
  (``end <= cutoff``) and parts (``ts < cutoff``).
* **Quality** is 0 good, 1 uncertain, 2 bad (``Quality``). Ingest admits a NaN value only
  with bad quality, so NaN never reaches an aggregate.
* **Result shape**: ``read`` and ``aggregate`` return ``names`` equal to the requested
  signals, de-duplicated, in request order (signals without rows included, so positions are
  stable), rows ordered by ``(index, ts)`` / ``(index, bucket)``. ``read_states`` and
  ``read_parts`` do the same for requested machines; with ``machines=None`` their ``names``
  are the machines with rows in the range, sorted. Zero-length intervals are never returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from andon.model.types import (
    F64,
    I32,
    I64,
    Micros,
    PartBatch,
    SampleBatch,
    StateBatch,
    TextBatch,
)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: rows stored, and duplicates skipped (first write wins).

    ``conflicts`` is the part of ``duplicates`` whose value or quality differs from the
    stored (first) sample: not a harmless resend but two readings claiming the same instant
    (decision 0312). ``refused`` rows were not stored because their signal would have
    grown the tenant's signal dictionary beyond its cap (``dictionary_full``)."""

    written: int
    duplicates: int
    conflicts: int = 0
    refused: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class Aggregates:
    """Bucketed aggregates as columns, ordered by (signal, bucket)."""

    names: tuple[str, ...]
    index: I32
    bucket: I64
    min: F64
    max: F64
    mean: F64
    last: F64
    count: I64

    def __len__(self) -> int:
        return len(self.bucket)


@dataclass(frozen=True, slots=True)
class LastValue:
    ts: Micros
    value: float
    quality: int


@runtime_checkable
class TelemetryStore(Protocol):
    """Storage of samples, machine-state timelines and part counters, scoped by tenant."""

    async def append(self, tenant: str, batch: SampleBatch) -> AppendResult: ...

    async def read(
        self, tenant: str, signals: Sequence[str], start: Micros, end: Micros
    ) -> SampleBatch: ...

    async def aggregate(
        self,
        tenant: str,
        signals: Sequence[str],
        start: Micros,
        end: Micros,
        bucket_us: int,
    ) -> Aggregates: ...

    async def last_values(
        self, tenant: str, signals: Sequence[str] | None = None
    ) -> dict[str, LastValue]: ...

    async def append_text(self, tenant: str, batch: TextBatch) -> AppendResult:
        """Store text values; duplicates, conflicts and refusals as for ``append``."""
        ...

    async def read_text(
        self, tenant: str, signals: Sequence[str], start: Micros, end: Micros
    ) -> TextBatch:
        """Text values ``[start, end)``; ``names`` and order as for ``read``."""
        ...

    async def append_states(self, tenant: str, batch: StateBatch) -> int: ...

    async def read_states(
        self, tenant: str, machines: Sequence[str] | None, start: Micros, end: Micros
    ) -> StateBatch: ...

    async def put_open_states(self, tenant: str, batch: StateBatch) -> int:
        """Each machine's state that is still going on: ``start`` is when it began, ``end``
        the time it was last confirmed. Kept apart from the closed intervals of
        ``append_states`` (it is not history: the interval arrives there once it closes); a
        row replaces the machine's open state unless the stored one was confirmed later.
        Returns the number of machines updated."""
        ...

    async def open_states(self, tenant: str, machines: Sequence[str] | None) -> StateBatch:
        """The open state of each machine that has one (rows ordered by machine)."""
        ...

    async def append_parts(self, tenant: str, batch: PartBatch) -> int: ...

    async def read_parts(
        self, tenant: str, machines: Sequence[str] | None, start: Micros, end: Micros
    ) -> PartBatch: ...

    async def delete_before(self, tenant: str | None, cutoff: Micros) -> int: ...

    async def close(self) -> None: ...
