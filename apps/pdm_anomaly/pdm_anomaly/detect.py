"""The arithmetic of pdm_anomaly, without a platform: samples onto a time grid, the regime
at each step, and flagged steps into episodes (one finding each).

>>> import numpy as np
>>> episodes(np.array([0, 1, 1, 1, 0, 0, 1, 1, 0], dtype=bool), max_gap=1, min_steps=2)
[(1, 3), (6, 7)]
>>> episodes(np.array([0, 1, 0, 1, 1, 0], dtype=bool), max_gap=1, min_steps=3)
[(1, 4)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from andon.sdk import Part, State

__all__ = ["episodes", "grid_mean", "product_at", "running_mask"]

F64 = npt.NDArray[np.float64]


def grid_mean(ts: Sequence[int], values: Sequence[float], start: int, step: int, n: int) -> F64:
    """The mean of the samples in each step ``[start + i·step, start + (i+1)·step)`` (NaN
    where a step has none; NaN samples are skipped): step ``i`` is known at its end."""
    t = np.asarray(ts, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    out = np.full(n, np.nan)
    if t.size == 0:
        return out
    i = (t - start) // step
    ok = (i >= 0) & (i < n) & np.isfinite(v)
    i, v = i[ok], v[ok]
    counts = np.bincount(i, minlength=n)
    sums = np.bincount(i, weights=v, minlength=n)
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


def running_mask(states: Sequence[State], start: int, step: int, n: int) -> npt.NDArray[np.bool_]:
    """Whether the machine was running at each step's last microsecond."""
    last = start + step * (np.arange(n, dtype=np.int64) + 1) - 1
    run = np.zeros(n, dtype=bool)
    for s in states:
        if s.state == "running":
            run |= (last >= s.start_us) & (last < s.end_us)
    return run


def product_at(parts: Sequence[Part], start: int, step: int, n: int) -> list[str]:
    """The product of the last part finished by each step's end (before the first part:
    the first part's product; none at all: ``""``). Known at the time: no look-ahead
    beyond the first part."""
    if not parts:
        return [""] * n
    ps = sorted(parts, key=lambda p: p.ts_us)
    ts = np.array([p.ts_us for p in ps], dtype=np.int64)
    last = start + step * (np.arange(n, dtype=np.int64) + 1) - 1
    k = np.searchsorted(ts, last, side="right") - 1
    return [ps[max(0, int(j))].product for j in k]


def episodes(flag: npt.NDArray[np.bool_], *, max_gap: int, min_steps: int) -> list[tuple[int, int]]:
    """Flagged steps into ``(first, last)`` episodes: flags at most ``max_gap`` unflagged
    steps apart join; an episode needs ``min_steps`` flagged steps."""
    out: list[tuple[int, int]] = []
    idx = np.flatnonzero(flag)
    if idx.size == 0:
        return out
    first = prev = int(idx[0])
    count = 1
    for j in idx[1:]:
        j = int(j)
        if j - prev - 1 <= max_gap:
            prev = j
            count += 1
            continue
        if count >= min_steps:
            out.append((first, prev))
        first = prev = j
        count = 1
    if count >= min_steps:
        out.append((first, prev))
    return out
