"""What a live figure is measured over: the production day and the shift that contain a
moment, the planned production time of a range, and the stations whose parts are a line's
output. See ``docs/decisions/0107-production-day-and-shift-ranges.md``.

* **Production day** (``today``): it starts at the first shift start of a calendar day (the
  earliest start among the shifts scheduled on that local weekday) and lasts until the next
  production day starts. A night shift that crosses midnight (22:00–06:00) belongs to the
  production day on which it *starts*, like ``andon.kpi.periods.shifts`` labels it; time
  before the first shift (05:00) and days without shifts (a Sunday) belong to the previous
  production day. With no calendar, or no shift in the last week, the day starts at local
  midnight.
* **Shift** (``this_shift``): the latest shift that started at or before the moment, up to
  its end; between shifts it is the one that ended last.
* **Planned production time** (``planned_production_s``): the time the calendar schedules a
  machine (shifts less breaks and planned maintenance, ``andon.model.calendar``), united over
  the machines given; a rate per hour divides by it, not by wall-clock hours.
* **Line output** (``line_outputs``): the good parts of the machines that feed no buffer (the
  line's last station or stations), never parts summed over stations in series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from andon.model.calendar import SCHEDULED, day_windows, expand_calendar, local_micros
from andon.model.plant import Calendar, Plant
from andon.model.types import Micros, from_micros

__all__ = [
    "LATEST_US",
    "NamedRange",
    "Range",
    "line_outputs",
    "named_range",
    "planned_production_s",
    "this_shift",
    "today",
]

NamedRange = Literal["today", "shift"]
LATEST_US = 253_370_764_800_000_000
"""9999-01-01 UTC: the calendar arithmetic (a week back, a day ahead) stays inside the years
``datetime`` can hold up to there."""
_LOOKBACK_DAYS = 8
"""How far back a production day or shift start is looked for before falling back."""


@dataclass(frozen=True, slots=True)
class Range:
    """``[start, end)`` in µs UTC, with a label (``YYYY-MM-DD`` or ``YYYY-MM-DD name``)."""

    start: Micros
    end: Micros
    label: str


def _check(now: Micros) -> None:
    if not 0 <= now < LATEST_US:
        raise ValueError(f"{now} µs is not a moment a shift calendar can place (1970 to 9998)")


def _midnight(now: Micros, zone: ZoneInfo) -> Range:
    d = from_micros(now).astimezone(zone).date()
    return Range(local_micros(d, time(0), zone), now, d.isoformat())


def _day_start(calendar: Calendar, d: date, zone: ZoneInfo) -> Micros | None:
    starts = [a for _, a, _ in day_windows(calendar.shifts, d, zone)]
    return min(starts) if starts else None


def today(plant: Plant, now: Micros, calendar: Calendar | None = None) -> Range:
    """The production day that contains ``now``, from its start up to ``now``.

    ``calendar`` defaults to the site's; pass one to override it.

    >>> from andon.model.plant import Calendar, Shift
    >>> cal = Calendar(shifts=(Shift(name="day", start=time(6), end=time(14)),
    ...                        Shift(name="night", start=time(22), end=time(6))))
    >>> z = ZoneInfo("UTC")
    >>> r = _today(cal, local_micros(date(2026, 3, 3), time(5), z), z)  # 05:00, no shift yet
    >>> from_micros(r.start).isoformat(), r.label
    ('2026-03-02T06:00:00+00:00', '2026-03-02')
    """
    _check(now)
    zone = ZoneInfo(plant.site.timezone)
    return _today(calendar or plant.site.calendar, now, zone)


def _today(calendar: Calendar | None, now: Micros, zone: ZoneInfo) -> Range:
    if calendar is None:
        return _midnight(now, zone)
    d = from_micros(now).astimezone(zone).date()
    for back in range(_LOOKBACK_DAYS):
        day = d - timedelta(days=back)
        start = _day_start(calendar, day, zone)
        if start is not None and start <= now:
            return Range(start, now, day.isoformat())
    return _midnight(now, zone)


def this_shift(plant: Plant, now: Micros, calendar: Calendar | None = None) -> Range:
    """The latest shift that started at or before ``now``: from its start up to ``now`` or
    its end, whichever is first. Falls back to ``today`` when no shift started in the last
    week."""
    _check(now)
    zone = ZoneInfo(plant.site.timezone)
    cal = calendar or plant.site.calendar
    if cal is None:
        return _midnight(now, zone)
    d = from_micros(now).astimezone(zone).date()
    best: tuple[Micros, Micros, str] | None = None
    for back in range(_LOOKBACK_DAYS):
        day = d - timedelta(days=back)
        for s, a, b in day_windows(cal.shifts, day, zone):
            if a <= now and (best is None or a > best[0]):
                best = (a, b, f"{day.isoformat()} {s.name}")
    if best is None:
        return _today(cal, now, zone)
    a, b, label = best
    return Range(a, min(b, now) if b > a else now, label)


def named_range(plant: Plant, name: NamedRange, now: Micros) -> Range:
    """``today`` or ``this_shift`` by name (the ``range`` query of the summary endpoints)."""
    if name == "today":
        return today(plant, now)
    if name == "shift":
        return this_shift(plant, now)
    raise ValueError(f"range: unknown range {name!r}; use today or shift")


def planned_production_s(
    plant: Plant, machines: Iterable[str], start: Micros, end: Micros
) -> float:
    """Seconds of ``[start, end)`` in which the calendar schedules at least one of
    ``machines`` for production (shifts less breaks and each machine's planned
    maintenance)."""
    if end <= start:
        return 0.0
    site = plant.site
    spans: list[tuple[int, int]] = []
    for m in machines:
        mid = m.rsplit("/", 1)[-1]
        spans += [
            (p.start, p.end)
            for p in expand_calendar(site.calendar, site.timezone, mid, start, end)
            if p.status == SCHEDULED
        ]
    total = 0
    cur_a = cur_b = None
    for a, b in sorted(spans):
        if cur_b is None or a > cur_b:
            if cur_a is not None and cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += cur_b - cur_a
    return total / 1e6


def line_outputs(plant: Plant) -> dict[str, tuple[str, ...]]:
    """Each line's output stations by line path: the machines that feed no buffer."""
    out: dict[str, tuple[str, ...]] = {}
    for a, ln in plant.lines():
        feeds = {mid for b in ln.buffers for mid in b.from_}
        out[f"{plant.site.id}/{a.id}/{ln.id}"] = tuple(
            plant.machine_path(a, ln, m) for m in ln.machines if m.id not in feeds
        )
    return out
