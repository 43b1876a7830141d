"""Core value types shared by every package: machine states, sample quality and the
columnar batches that carry telemetry, state timelines and part counters.

Timestamps are integers: microseconds since the Unix epoch, UTC (``Micros``). Batches are
columnar (NumPy arrays plus a small dictionary of names), never lists of Python objects, so
that hot paths stay vectorised. A batch's ``names`` tuple is a dictionary; ``index`` holds
int32 codes into it, as in an Arrow dictionary array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

Micros = int
"""Microseconds since 1970-01-01T00:00:00Z."""

US_PER_S = 1_000_000

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


def to_micros(value: datetime) -> Micros:
    """UTC microseconds of an aware datetime (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def from_micros(value: Micros) -> datetime:
    """Aware UTC datetime of a microsecond timestamp."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


class Quality(IntEnum):
    """OPC UA's three status classes."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class MachineState(IntEnum):
    """Machine states. ``category`` gives the five top-level classes used by OEE."""

    RUNNING = 0
    STARVED = 1
    BLOCKED = 2
    DOWN = 3
    PLANNED_STOP = 4
    OFFLINE = 5

    @property
    def category(self) -> str:
        return _CATEGORY[self]

    @property
    def label(self) -> str:
        return self.name.lower()


_CATEGORY = {
    MachineState.RUNNING: "running",
    MachineState.STARVED: "idle",
    MachineState.BLOCKED: "idle",
    MachineState.DOWN: "down",
    MachineState.PLANNED_STOP: "planned_stop",
    MachineState.OFFLINE: "offline",
}


def _codes(index: Sequence[int] | npt.NDArray[Any]) -> I32:
    return np.ascontiguousarray(index, dtype=np.int32)


def _check_lengths(kind: str, **arrays: npt.NDArray[Any]) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{kind}: column lengths differ: {lengths}")
    return next(iter(lengths.values()), 0)


def _check_index(kind: str, index: I32, names: tuple[str, ...]) -> None:
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(names)):
        raise ValueError(f"{kind}: index out of range of its {len(names)} names")


@dataclass(frozen=True, slots=True, eq=False)
class TextBatch:
    """Non-numeric values ``(signal, ts, value, quality, code)`` as columns: strings,
    enumeration labels, events (an MTConnect ``Execution`` of ``ACTIVE``, a program name).
    ``code`` is an enumeration's numeric code where the protocol gives one, NaN otherwise
    (decision 0202). Booleans stay numeric samples (0/1).

    >>> t = TextBatch.build(["s/a/l/m/execution"], [0, 0], [1, 2], ["READY", "ACTIVE"])
    >>> len(t), t.value[1], t.signal_at(1)
    (2, 'ACTIVE', 's/a/l/m/execution')
    """

    names: tuple[str, ...]
    index: I32
    ts: I64
    value: tuple[str, ...]
    quality: U8
    code: F64

    def __post_init__(self) -> None:
        n = _check_lengths(
            "TextBatch", index=self.index, ts=self.ts, quality=self.quality, code=self.code
        )
        if len(self.value) != n:
            raise ValueError("TextBatch: value column length differs")
        _check_index("TextBatch", self.index, self.names)

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        index: Sequence[int] | npt.NDArray[Any],
        ts: Sequence[int] | npt.NDArray[Any],
        value: Sequence[str],
        quality: Sequence[int] | npt.NDArray[Any] | None = None,
        code: Sequence[float] | npt.NDArray[Any] | None = None,
    ) -> TextBatch:
        idx = _codes(index)
        return cls(
            tuple(names),
            idx,
            np.ascontiguousarray(ts, dtype=np.int64),
            tuple(value),
            (
                np.zeros(len(idx), dtype=np.uint8)
                if quality is None
                else np.ascontiguousarray(quality, dtype=np.uint8)
            ),
            (
                np.full(len(idx), np.nan)
                if code is None
                else np.ascontiguousarray(code, dtype=np.float64)
            ),
        )

    @classmethod
    def empty(cls) -> TextBatch:
        return cls.build((), [], [], [])

    @classmethod
    def concat(cls, batches: Sequence[TextBatch]) -> TextBatch:
        """One batch of many; the name dictionaries are merged."""
        batches = [b for b in batches if len(b)]
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return cls.empty()
        names: dict[str, int] = {}
        parts = []
        for b in batches:
            remap = np.array([names.setdefault(n, len(names)) for n in b.names], dtype=np.int32)
            parts.append(remap[b.index])
        return cls(
            tuple(names),
            np.concatenate(parts),
            np.concatenate([b.ts for b in batches]),
            tuple(v for b in batches for v in b.value),
            np.concatenate([b.quality for b in batches]),
            np.concatenate([b.code for b in batches]),
        )

    def __len__(self) -> int:
        return len(self.ts)

    def signal_at(self, i: int) -> str:
        return self.names[int(self.index[i])]

    def take(self, mask_or_idx: npt.NDArray[Any]) -> TextBatch:
        rows = np.arange(len(self))[mask_or_idx]
        return TextBatch(
            self.names,
            self.index[rows],
            self.ts[rows],
            tuple(self.value[i] for i in rows.tolist()),
            self.quality[rows],
            self.code[rows],
        )


@dataclass(frozen=True, slots=True, eq=False)
class SampleBatch:
    """Samples ``(signal, ts, value, quality)`` as columns.

    ``text``: non-numeric values read in the same go (``TextBatch``, its own name
    dictionary), carried beside the numeric columns on the same path (connector, edge
    buffer, frame, ingest) and stored apart; ``len`` counts the numeric samples only.

    >>> b = SampleBatch.build(["s/a/l/m/x"], [0, 0], [1, 2], [1.5, 2.5])
    >>> len(b), b.signal_at(1)
    (2, 's/a/l/m/x')
    """

    names: tuple[str, ...]
    index: I32
    ts: I64
    value: F64
    quality: U8
    text: TextBatch | None = None

    def __post_init__(self) -> None:
        _check_lengths(
            "SampleBatch", index=self.index, ts=self.ts, value=self.value, quality=self.quality
        )
        _check_index("SampleBatch", self.index, self.names)

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        index: Sequence[int] | npt.NDArray[Any],
        ts: Sequence[int] | npt.NDArray[Any],
        value: Sequence[float] | npt.NDArray[Any],
        quality: Sequence[int] | npt.NDArray[Any] | None = None,
        text: TextBatch | None = None,
    ) -> SampleBatch:
        idx = _codes(index)
        q = (
            np.zeros(len(idx), dtype=np.uint8)
            if quality is None
            else np.ascontiguousarray(quality, dtype=np.uint8)
        )
        return cls(
            tuple(names),
            idx,
            np.ascontiguousarray(ts, dtype=np.int64),
            np.ascontiguousarray(value, dtype=np.float64),
            q,
            text if text is not None and len(text) else None,
        )

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls.build((), [], [], [])

    @classmethod
    def concat(cls, batches: Sequence[SampleBatch]) -> SampleBatch:
        """One batch of many; the name dictionaries are merged (text parts too)."""
        texts = [b.text for b in batches if b.text is not None and len(b.text)]
        text = TextBatch.concat(texts) if texts else None
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty() if text is None else cls.build((), [], [], [], text=text)
        names: dict[str, int] = {}
        parts = []
        for b in batches:
            remap = np.array([names.setdefault(n, len(names)) for n in b.names], dtype=np.int32)
            parts.append(remap[b.index] if len(remap) else b.index)
        return cls(
            tuple(names),
            np.concatenate(parts),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
            text,
        )

    @property
    def text_points(self) -> int:
        """How many text values ride with the batch."""
        return 0 if self.text is None else len(self.text)

    def numeric(self) -> SampleBatch:
        """The batch without its text part (the same arrays)."""
        if self.text is None:
            return self
        return SampleBatch(self.names, self.index, self.ts, self.value, self.quality)

    def __len__(self) -> int:
        return len(self.ts)

    def signal_at(self, i: int) -> str:
        return self.names[int(self.index[i])]

    def take(self, mask_or_idx: npt.NDArray[Any]) -> SampleBatch:
        """The numeric rows selected; the text part, if any, is kept whole."""
        return SampleBatch(
            self.names,
            self.index[mask_or_idx],
            self.ts[mask_or_idx],
            self.value[mask_or_idx],
            self.quality[mask_or_idx],
            self.text,
        )


@dataclass(frozen=True, slots=True, eq=False)
class StateBatch:
    """Machine-state intervals ``[start, end)`` as columns; ``reason`` is '' when none."""

    names: tuple[str, ...]
    index: I32
    start: I64
    end: I64
    state: U8
    reason: tuple[str, ...]

    def __post_init__(self) -> None:
        n = _check_lengths(
            "StateBatch", index=self.index, start=self.start, end=self.end, state=self.state
        )
        if len(self.reason) != n:
            raise ValueError("StateBatch: reason column length differs")
        _check_index("StateBatch", self.index, self.names)
        if n and bool(np.any(self.end < self.start)):
            raise ValueError("StateBatch: an interval ends before it starts")

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        index: Sequence[int] | npt.NDArray[Any],
        start: Sequence[int] | npt.NDArray[Any],
        end: Sequence[int] | npt.NDArray[Any],
        state: Sequence[int] | npt.NDArray[Any],
        reason: Sequence[str] | None = None,
    ) -> StateBatch:
        idx = _codes(index)
        return cls(
            tuple(names),
            idx,
            np.ascontiguousarray(start, dtype=np.int64),
            np.ascontiguousarray(end, dtype=np.int64),
            np.ascontiguousarray(state, dtype=np.uint8),
            tuple(reason) if reason is not None else ("",) * len(idx),
        )

    @classmethod
    def empty(cls) -> StateBatch:
        return cls.build((), [], [], [], [])

    def __len__(self) -> int:
        return len(self.start)

    def machine_at(self, i: int) -> str:
        return self.names[int(self.index[i])]


@dataclass(frozen=True, slots=True, eq=False)
class PartBatch:
    """Part-counter events: at ``ts`` machine ``index`` finished ``good`` + ``scrap`` parts of
    ``product``."""

    names: tuple[str, ...]
    index: I32
    ts: I64
    product: tuple[str, ...]
    good: I32
    scrap: I32

    def __post_init__(self) -> None:
        n = _check_lengths(
            "PartBatch", index=self.index, ts=self.ts, good=self.good, scrap=self.scrap
        )
        if len(self.product) != n:
            raise ValueError("PartBatch: product column length differs")
        _check_index("PartBatch", self.index, self.names)
        if n and bool(np.any((self.good < 0) | (self.scrap < 0))):
            raise ValueError("PartBatch: negative part count")

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        index: Sequence[int] | npt.NDArray[Any],
        ts: Sequence[int] | npt.NDArray[Any],
        product: Sequence[str],
        good: Sequence[int] | npt.NDArray[Any],
        scrap: Sequence[int] | npt.NDArray[Any],
    ) -> PartBatch:
        return cls(
            tuple(names),
            _codes(index),
            np.ascontiguousarray(ts, dtype=np.int64),
            tuple(product),
            np.ascontiguousarray(good, dtype=np.int32),
            np.ascontiguousarray(scrap, dtype=np.int32),
        )

    @classmethod
    def empty(cls) -> PartBatch:
        return cls.build((), [], [], [], [], [])

    def __len__(self) -> int:
        return len(self.ts)

    def machine_at(self, i: int) -> str:
        return self.names[int(self.index[i])]
