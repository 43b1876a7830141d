"""The NASA C-MAPSS text format and its standard evaluation.

A C-MAPSS file has one row per unit and cycle, 26 whitespace-separated columns: unit, cycle,
three operating settings and 21 sensors (Saxena et al., PHM 2008). ``read_cmapss`` reads one
(plain or ``.gz``) into a ``Fleet``; a bad row is a ``CmapssError`` naming ``file:line``.
``read_rul`` reads the truth file of a test set (one integer per unit).

The evaluation protocol: the target is the remaining useful life capped at 125 cycles
(piecewise linear), one prediction per test unit at its last cycle, RMSE against the capped
truth and the asymmetric score S = sum(exp(-d/13) - 1 if d < 0 else exp(d/10) - 1) with
d = predicted - true (late predictions cost more than early ones).

>>> evaluate([10.0, 130.0], [20.0, 200.0]).rmse  # truth 200 is capped at 125: d = -10, +5
7.905694150420948
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

__all__ = [
    "N_COLUMNS",
    "N_SENSORS",
    "N_SETTINGS",
    "RUL_CAP",
    "CmapssError",
    "Evaluation",
    "Fleet",
    "evaluate",
    "read_cmapss",
    "read_rul",
    "rul_targets",
    "score",
    "write_cmapss",
]

N_SETTINGS = 3
N_SENSORS = 21
N_COLUMNS = 2 + N_SETTINGS + N_SENSORS
RUL_CAP = 125.0
"""The cap on the remaining-useful-life target and truth (cycles)."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CmapssError(ValueError):
    """A C-MAPSS or RUL file that cannot be read; the message names ``file:line``."""


@dataclass(frozen=True, eq=False)
class Fleet:
    """The rows of a C-MAPSS file, in file order: each unit's rows are contiguous with
    increasing cycles."""

    unit: IntArray
    cycle: IntArray
    settings: FloatArray
    """Shape (rows, 3)."""
    sensors: FloatArray
    """Shape (rows, 21)."""
    source: str = "<memory>"
    blank_lines: int = 0
    """Empty lines skipped while reading (no data is dropped otherwise)."""

    def __post_init__(self) -> None:
        n = len(self.unit)
        if not (len(self.cycle) == n and self.settings.shape == (n, N_SETTINGS)):
            raise CmapssError(f"{self.source}: columns of different lengths")
        if self.sensors.shape != (n, N_SENSORS):
            raise CmapssError(f"{self.source}: expected {N_SENSORS} sensors per row")

    def __len__(self) -> int:
        return len(self.unit)

    @property
    def units(self) -> IntArray:
        """The unit ids in file order."""
        starts = self.unit_bounds()[0]
        return self.unit[starts]

    def unit_bounds(self) -> tuple[IntArray, IntArray]:
        """Start and end (exclusive) row of each unit, in file order."""
        if len(self.unit) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        change = np.flatnonzero(np.diff(self.unit) != 0) + 1
        starts = np.concatenate(([0], change)).astype(np.int64)
        ends = np.concatenate((change, [len(self.unit)])).astype(np.int64)
        return starts, ends

    def last_rows(self) -> IntArray:
        """The row of each unit's last cycle (where a test set's prediction is made)."""
        return self.unit_bounds()[1] - 1


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="ascii", errors="replace")
    return path.open("r", encoding="ascii", errors="replace")


def _parse_rows(lines: Iterable[str], source: str) -> Fleet:
    rows: list[list[float]] = []
    blank = 0
    seen: set[int] = set()
    last_unit = -1
    last_cycle = 0
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            blank += 1
            continue
        where = f"{source}:{lineno}"
        if len(fields) != N_COLUMNS:
            raise CmapssError(
                f"{where}: expected {N_COLUMNS} columns (unit, cycle, 3 settings, 21 sensors), "
                f"got {len(fields)}"
            )
        try:
            values = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise CmapssError(f"{where}: {bad!r} is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise CmapssError(f"{where}: a value is not finite")
        unit, cycle = values[0], values[1]
        if unit != int(unit) or unit < 1 or cycle != int(cycle) or cycle < 1:
            raise CmapssError(f"{where}: unit and cycle must be positive integers")
        u, c = int(unit), int(cycle)
        if u != last_unit:
            if u in seen:
                raise CmapssError(f"{where}: unit {u} appears again after other units")
            seen.add(u)
        elif c <= last_cycle:
            raise CmapssError(f"{where}: unit {u} cycle {c} does not follow cycle {last_cycle}")
        last_unit, last_cycle = u, c
        rows.append(values)
    if not rows:
        raise CmapssError(f"{source}: no rows")
    a = np.asarray(rows, dtype=np.float64)
    return Fleet(
        unit=a[:, 0].astype(np.int64),
        cycle=a[:, 1].astype(np.int64),
        settings=np.ascontiguousarray(a[:, 2 : 2 + N_SETTINGS]),
        sensors=np.ascontiguousarray(a[:, 2 + N_SETTINGS :]),
        source=source,
        blank_lines=blank,
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_cmapss(path: str | Path) -> Fleet:
    """Read a C-MAPSS train or test file (``.txt`` or ``.txt.gz``)."""
    p = Path(path)
    try:
        with _open_text(p) as f:
            return _parse_rows(f, str(p))
    except OSError as e:  # missing file, not gzip, ...
        raise CmapssError(f"{p}: {e.strerror or e}") from None


def read_rul(path: str | Path) -> FloatArray:
    """Read a C-MAPSS truth file: the remaining cycles of each test unit, one per line."""
    p = Path(path)
    out: list[float] = []
    try:
        with _open_text(p) as f:
            for lineno, line in enumerate(f, start=1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 1 or not _is_float(fields[0]) or float(fields[0]) < 0:
                    raise CmapssError(f"{p}:{lineno}: expected one non-negative number per line")
                out.append(float(fields[0]))
    except OSError as e:
        raise CmapssError(f"{p}: {e.strerror or e}") from None
    return np.asarray(out, dtype=np.float64)


def write_cmapss(path: str | Path, fleet: Fleet) -> None:
    """Write a fleet in the C-MAPSS text format (tests and synthetic fleets)."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "wt", encoding="ascii") as f:
        for i in range(len(fleet)):
            values = [f"{v:.6g}" for v in (*fleet.settings[i], *fleet.sensors[i])]
            f.write(f"{fleet.unit[i]} {fleet.cycle[i]} {' '.join(values)}\n")


def rul_targets(fleet: Fleet, cap: float = RUL_CAP) -> FloatArray:
    """For a run-to-failure fleet: each row's remaining cycles to the unit's last one,
    capped at ``cap`` (the piecewise-linear target)."""
    starts, ends = fleet.unit_bounds()
    last = np.repeat(fleet.cycle[ends - 1], ends - starts)
    return np.minimum((last - fleet.cycle).astype(np.float64), cap)


def score(d: Sequence[float] | FloatArray) -> float:
    """The C-MAPSS asymmetric score of errors ``d = predicted - true``."""
    e = np.asarray(d, dtype=np.float64)
    return float(np.sum(np.where(e < 0, np.expm1(-e / 13.0), np.expm1(e / 10.0))))


@dataclass(frozen=True)
class Evaluation:
    """RMSE, score and mean error (bias: > 0 is late) of one prediction per unit."""

    n: int
    rmse: float
    score: float
    mean_error: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "units": self.n,
            "rmse": self.rmse,
            "score": self.score,
            "mean_error": self.mean_error,
        }


def evaluate(
    predicted: Sequence[float] | FloatArray,
    truth: Sequence[float] | FloatArray,
    cap: float = RUL_CAP,
) -> Evaluation:
    """Evaluate predictions against the truth capped at ``cap`` (predictions as given)."""
    p = np.asarray(predicted, dtype=np.float64)
    t = np.minimum(np.asarray(truth, dtype=np.float64), cap)
    if p.shape != t.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(f"{len(p)} predictions for {len(t)} true values")
    d = p - t
    return Evaluation(
        n=len(d),
        rmse=float(np.sqrt(np.mean(d * d))),
        score=score(d),
        mean_error=float(np.mean(d)),
    )
