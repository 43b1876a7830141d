"""Shift progress: a line's plan versus its actual good output in the current shift.

The shift is ``andon.kpi.ranges.this_shift`` (the latest shift started by now, up to its end).
The plan is the target rate times the *planned production time* elapsed in the shift
(``ranges.planned_production_s``: shifts less breaks and planned maintenance), so a break
does not put the line behind plan. With a target per shift instead of per hour, the rate is
that target spread over the shift's whole planned production time. Actual is the good parts
of the line's output stations (``ranges.line_outputs``) since the shift started.

>>> p = ShiftProgress("2026-03-02 early", 0, 8 * 3_600_000_000, 3_600_000_000, 3600.0,
...                   7.5 * 3600, 60.0, 57)
>>> p.plan, p.behind
(60.0, 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from andon.kpi.periods import shifts
from andon.kpi.ranges import line_outputs, planned_production_s, this_shift
from andon.model.plant import Plant
from andon.model.types import Micros, PartBatch

__all__ = ["ShiftProgress", "shift_progress", "shift_window"]


@dataclass(frozen=True, slots=True)
class ShiftProgress:
    label: str
    start: Micros
    end: Micros
    """The shift's planned end."""
    until: Micros
    """Actual and plan count up to here: now, or the shift's end once it is over."""
    planned_s: float
    """Planned production time of the shift elapsed by ``until``."""
    planned_total_s: float
    """Planned production time of the whole shift."""
    per_hour: float | None
    """The target rate the plan follows (from the per-hour or per-shift target)."""
    actual: int

    @property
    def plan(self) -> float | None:
        if self.per_hour is None:
            return None
        return round(self.per_hour * self.planned_s / 3600.0, 3)

    @property
    def behind(self) -> float | None:
        """Parts short of plan (negative = ahead)."""
        plan = self.plan
        return None if plan is None else round(plan - self.actual, 3)


def shift_window(plant: Plant, now: Micros) -> tuple[str, Micros, Micros, Micros]:
    """``(label, start, planned end, until)`` of the current (or last finished) shift."""
    r = this_shift(plant, now)
    end = r.end
    cal = plant.site.calendar
    if cal is not None:
        b = shifts(r.start, r.start + 2 * 86_400_000_000, plant.site.timezone, cal)
        if len(b) and int(b.edges[0]) == r.start:
            end = int(b.edges[1])
    return r.label, r.start, max(end, r.end), r.end


def shift_progress(
    plant: Plant,
    line: str,
    parts: PartBatch,
    now: Micros,
    *,
    per_hour: float | None,
    per_shift: float | None,
) -> ShiftProgress:
    """Plan versus actual for ``line`` (a line path) in the shift containing ``now``.
    ``parts`` must hold the line's output stations' parts since the shift started (more is
    fine: it is filtered). ``per_hour`` wins over ``per_shift`` when both are set."""
    outputs = line_outputs(plant).get(line)
    if outputs is None:
        raise ValueError(f"line: {line!r} is not a line of this site")
    label, start, end, until = shift_window(plant, now)
    planned = planned_production_s(plant, outputs, start, until)
    total = planned_production_s(plant, outputs, start, end)
    rate = per_hour
    if rate is None and per_shift is not None and total > 0:
        rate = per_shift / (total / 3600.0)
    wanted = [i for i, n in enumerate(parts.names) if n in outputs]
    sel = np.isin(parts.index, wanted) & (parts.ts >= start) & (parts.ts < until)
    return ShiftProgress(label, start, end, until, planned, total, rate, int(parts.good[sel].sum()))
