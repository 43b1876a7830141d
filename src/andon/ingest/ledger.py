"""The platform's durable record of which ``(edge, stream, seq)`` batches it has stored.

Per ``(edge, stream)`` it keeps a *low-water mark* ``low`` (every seq ``<= low`` is stored) and
the set of stored seqs above it, so the state stays small however long a stream runs: seqs
arrive nearly in order, and the mark advances over every contiguous run. Both live in SQLite
(WAL, ``synchronous=FULL``); ``record`` commits before the platform acknowledges.

>>> led = DedupLedger.open(None)
>>> led.seen("e", "s", 1)
False
>>> led.record([("e", "s", 1), ("e", "s", 3)])
>>> led.seen("e", "s", 1), led.seen("e", "s", 2), led.seen("e", "s", 3), led.low("e", "s")
(True, False, True, 1)
>>> led.close()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Final

__all__ = ["DedupLedger"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS marks (edge TEXT, stream TEXT, low INTEGER NOT NULL,
    PRIMARY KEY (edge, stream)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (edge TEXT, stream TEXT, seq INTEGER,
    PRIMARY KEY (edge, stream, seq)) WITHOUT ROWID;
"""


class DedupLedger:
    """Which batches are stored; synchronous and small (called from the ingest service)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con
        self._low: dict[tuple[str, str], int] = {}
        self._above: dict[tuple[str, str], set[int]] = {}
        for edge, stream, low in con.execute("SELECT edge, stream, low FROM marks"):
            self._low[(edge, stream)] = int(low)
        for edge, stream, seq in con.execute("SELECT edge, stream, seq FROM seen"):
            self._above.setdefault((edge, stream), set()).add(int(seq))

    @classmethod
    def open(cls, path: Path | None) -> DedupLedger:
        """Open the ledger file (``None``: in memory, for tests)."""
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(
            ":memory:" if path is None else str(path), isolation_level=None, check_same_thread=False
        )
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.executescript(_SCHEMA)
        return cls(con)

    def low(self, edge: str, stream: str) -> int:
        """Every seq up to this one is stored."""
        return self._low.get((edge, stream), 0)

    def seen(self, edge: str, stream: str, seq: int) -> bool:
        """Whether batch ``seq`` of ``(edge, stream)`` is already stored."""
        key = (edge, stream)
        return seq <= self._low.get(key, 0) or seq in self._above.get(key, ())

    def record(self, keys: Iterable[tuple[str, str, int]]) -> None:
        """Record stored batches durably (one transaction) and advance the marks."""
        touched: set[tuple[str, str]] = set()
        new_rows: list[tuple[str, str, int]] = []
        for edge, stream, seq in keys:
            if self.seen(edge, stream, seq):
                continue
            self._above.setdefault((edge, stream), set()).add(seq)
            touched.add((edge, stream))
            new_rows.append((edge, stream, seq))
        if not new_rows:
            return
        moved: list[tuple[str, str, int]] = []
        for key in touched:
            low, above = self._low.get(key, 0), self._above[key]
            start = low
            while low + 1 in above:
                low += 1
                above.discard(low)
            if low != start:
                self._low[key] = low
                moved.append((*key, low))
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", new_rows)
            for edge, stream, low in moved:
                con.execute(
                    "INSERT INTO marks VALUES (?, ?, ?) ON CONFLICT(edge, stream) "
                    "DO UPDATE SET low = excluded.low",
                    (edge, stream, low),
                )
                con.execute(
                    "DELETE FROM seen WHERE edge = ? AND stream = ? AND seq <= ?",
                    (edge, stream, low),
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._con.close()
