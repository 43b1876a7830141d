"""Expand a weekly shift calendar into absolute UTC intervals.

The calendar is written in the site's local time; expansion goes day by day through the
local dates and converts each local start and end with ``zoneinfo``, so days with a DST
change are as long as the wall clock says. For each machine the result is a list of
``Period(start, end, status)`` covering the range without gaps, where ``status`` is one of
``scheduled``, ``break``, ``planned_maintenance`` or ``not_scheduled``.
Where windows overlap, maintenance wins; a break counts only inside a shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from andon.model.plant import ALL_DAYS, Calendar, Shift
from andon.model.types import Micros, from_micros, to_micros

__all__ = ["Period", "day_windows", "expand_calendar", "local_micros"]

SCHEDULED = "scheduled"
BREAK = "break"
MAINTENANCE = "planned_maintenance"
NOT_SCHEDULED = "not_scheduled"


@dataclass(frozen=True, slots=True)
class Period:
    start: Micros
    end: Micros
    status: str


def local_micros(d: date, t: time, zone: ZoneInfo) -> Micros:
    """The local date and time ``d`` ``t`` in ``zone`` as µs UTC.

    >>> local_micros(date(1970, 1, 1), time(8), ZoneInfo("Asia/Taipei"))
    0
    """
    return to_micros(datetime.combine(d, t, tzinfo=zone))


def day_windows(
    items: tuple[Shift, ...], day: date, zone: ZoneInfo
) -> list[tuple[Shift, Micros, Micros]]:
    """The shifts (or breaks) of ``items`` that start on the local date ``day``, each with
    its start and end in µs UTC; one that ends at or before its start time ends the next
    day (a night shift, 22:00–06:00). The one walk of a weekly calendar's day."""
    out = []
    wd = ALL_DAYS[day.weekday()]
    for s in items:
        if wd not in s.days:
            continue
        end_day = day + timedelta(days=1) if s.end <= s.start else day
        out.append((s, local_micros(day, s.start, zone), local_micros(end_day, s.end, zone)))
    return out


def _windows(items: tuple[Shift, ...], day: date, zone: ZoneInfo) -> list[tuple[int, int]]:
    return [(a, b) for _, a, b in day_windows(items, day, zone)]


def expand_calendar(
    calendar: Calendar, timezone: str, machine: str, start: Micros, end: Micros
) -> list[Period]:
    """Periods for one machine covering ``[start, end)`` exactly."""
    zone = ZoneInfo(timezone)
    first = from_micros(start).astimezone(zone).date() - timedelta(days=1)
    last = from_micros(end).astimezone(zone).date() + timedelta(days=1)
    windows: list[tuple[int, int, str]] = []
    d = first
    while d <= last:
        windows += [(a, b, SCHEDULED) for a, b in _windows(calendar.shifts, d, zone)]
        windows += [(a, b, BREAK) for a, b in _windows(calendar.breaks, d, zone)]
        for m in calendar.maintenance:
            if machine in m.machines and ALL_DAYS[d.weekday()] == m.day:
                a = local_micros(d, m.start, zone)
                windows.append((a, a + int(m.duration_min * 60e6), MAINTENANCE))
        d += timedelta(days=1)
    cuts = sorted({start, end} | {t for a, b, _ in windows for t in (a, b) if start < t < end})
    periods: list[Period] = []
    for a, b in pairwise(cuts):
        active = {ws for wa, wb, ws in windows if wa <= a < wb}
        if MAINTENANCE in active:
            status = MAINTENANCE
        elif SCHEDULED in active:
            status = BREAK if BREAK in active else SCHEDULED
        else:
            status = NOT_SCHEDULED  # a break outside every shift is simply off-shift
        if periods and periods[-1].status == status:
            periods[-1] = Period(periods[-1].start, b, status)
        else:
            periods.append(Period(a, b, status))
    return periods
