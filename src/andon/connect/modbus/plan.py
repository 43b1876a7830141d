"""Request planning: points of one device and table become as few reads as possible.

Points are sorted by address and merged into one request while the span stays within the
protocol's limit (125 registers, 2000 bits) and the hole between neighbours is at most
``max_gap`` addresses (reading a few unused registers is cheaper than another round trip).

>>> from andon.connect.modbus.plan import Point, plan
>>> pts = [Point("a", "holding", 0, "float32"), Point("b", "holding", 2, "uint16"),
...        Point("c", "holding", 40, "int16")]
>>> [(r.table, r.address, r.count, len(r.points)) for r in plan(pts, max_gap=8)]
[('holding', 0, 3, 2), ('holding', 40, 1, 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from andon.connect.modbus.codec import WIDTH, ByteOrder, DataType

__all__ = ["LIMIT", "Point", "Read", "Table", "plan"]

Table = Literal["holding", "input", "coil", "discrete"]
_TABLES: Final[tuple[Table, ...]] = ("coil", "discrete", "holding", "input")
LIMIT: Final[dict[str, int]] = {"holding": 125, "input": 125, "coil": 2000, "discrete": 2000}


@dataclass(frozen=True)
class Point:
    """One value on a device, mapped to a signal path."""

    signal: str
    table: Table
    address: int
    dtype: DataType = "uint16"
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    scale: float = 1.0
    offset: float = 0.0

    @property
    def width(self) -> int:
        return 1 if self.table in ("coil", "discrete") else WIDTH[self.dtype]


@dataclass(frozen=True)
class Read:
    """One request: ``count`` addresses from ``address`` in ``table``, serving ``points``."""

    table: Table
    address: int
    count: int
    points: tuple[Point, ...]


def plan(points: Sequence[Point], max_gap: int = 0) -> list[Read]:
    """The requests that read every point, contiguous points merged."""
    out: list[Read] = []
    for table in _TABLES:
        pts = sorted((p for p in points if p.table == table), key=lambda p: p.address)
        group: list[Point] = []
        start = end = 0
        for p in pts:
            p_end = p.address + p.width
            if group and p.address - end <= max_gap and p_end - start <= LIMIT[table]:
                group.append(p)
                end = max(end, p_end)
                continue
            if group:
                out.append(Read(table, start, end - start, tuple(group)))
            group, start, end = [p], p.address, p_end
        if group:
            out.append(Read(table, start, end - start, tuple(group)))
    return out
