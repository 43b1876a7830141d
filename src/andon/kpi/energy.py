"""Energy from meter registers: deltas that survive rollovers and resets."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["counter_delta"]


def counter_delta(values: npt.ArrayLike, rollover: float | None = None) -> float:
    """Consumption between the first and last reading of a register, in time order.

    A drop in the reading is a rollover when ``rollover`` is given (the register wrapped at
    that value: the increment is ``rollover - previous + current``), otherwise a reset to zero
    (the increment is the new reading).

    >>> counter_delta([99_990.0, 99_998.0, 5.0], rollover=100_000.0)
    15.0
    >>> counter_delta([10.0, 12.0, 1.0, 3.0])
    5.0
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return 0.0
    d = np.diff(v)
    drop = d < 0
    if rollover is not None:
        d[drop] += rollover
    else:
        d[drop] = v[1:][drop]
    return float(d.sum())
