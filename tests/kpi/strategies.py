"""Hypothesis helpers shared by the KPI property tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

from andon.kpi.timeline import Buckets

__all__ = ["cut_edges", "random_buckets"]

S = 1_000_000


def cut_edges(draw: st.DrawFn, t_end: int, max_cuts: int) -> npt.NDArray[np.int64]:
    """Sorted unique edges (µs) from 0 to ``t_end`` with up to ``max_cuts`` whole seconds
    drawn in between."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, t_end // S)), max_size=max_cuts))))
    edges: npt.NDArray[Any] = np.array([0, *[c * S for c in cuts if 0 < c * S < t_end], t_end])
    return np.unique(edges).astype(np.int64)


def random_buckets(draw: st.DrawFn, t_end: int, max_cuts: int) -> Buckets:
    """Buckets ``b0``, ``b1``, ... over ``[0, t_end)`` cut at :func:`cut_edges`."""
    edges = cut_edges(draw, t_end, max_cuts)
    return Buckets(edges, tuple(f"b{i}" for i in range(len(edges) - 1)))
