"""Reporting periods in the site's local time: days, ISO weeks and shifts.

Each function returns contiguous ``Buckets`` covering ``[start, end)`` exactly. Days start at
local midnight, so a day with a DST change is 23 or 25 hours long; weeks start on Monday.
Shifts come from the calendar; time outside every shift is an ``YYYY-MM-DD off-shift``
bucket (the local date on which the gap starts), and a shift is labelled with the local
date on which it starts (a night shift 22:00–06:00 belongs to the evening it starts).
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from andon.kpi.timeline import Buckets
from andon.model.calendar import day_windows, local_micros
from andon.model.plant import Calendar
from andon.model.types import Micros, from_micros

__all__ = ["Period", "buckets", "cut", "days", "shifts", "weeks"]

Period = Literal["all", "day", "week", "shift"]

OFF_SHIFT = "off-shift"


def _local_midnight(d: date, zone: ZoneInfo) -> Micros:
    return local_micros(d, time(0), zone)


def cut(start: Micros, end: Micros, marks: list[tuple[Micros, str]], first: str) -> Buckets:
    """Buckets from label changes ``(at, label)`` in time order; ``first`` holds at start."""
    edges = [start]
    labels = [first]
    for at, label in marks:
        if at <= start:
            labels[-1] = label
            continue
        if at >= end:
            break
        if label == labels[-1]:
            continue
        edges.append(at)
        labels.append(label)
    edges.append(end)
    return Buckets(np.array(edges, dtype=np.int64), tuple(labels))


def days(start: Micros, end: Micros, timezone: str) -> Buckets:
    """Local calendar days, labelled ``YYYY-MM-DD``.

    >>> b = days(0, 3 * 86_400_000_000, "UTC")
    >>> b.labels
    ('1970-01-01', '1970-01-02', '1970-01-03')
    """
    zone = ZoneInfo(timezone)
    d = from_micros(start).astimezone(zone).date()
    last = from_micros(end).astimezone(zone).date()
    marks = []
    while d <= last:
        marks.append((_local_midnight(d, zone), d.isoformat()))
        d += timedelta(days=1)
    return cut(start, end, marks, from_micros(start).astimezone(zone).date().isoformat())


def weeks(start: Micros, end: Micros, timezone: str) -> Buckets:
    """ISO weeks (Monday 00:00 local), labelled ``YYYY-Www``."""
    zone = ZoneInfo(timezone)
    d0 = from_micros(start).astimezone(zone).date()
    d = d0 - timedelta(days=d0.weekday())
    last = from_micros(end).astimezone(zone).date()
    marks = []
    while d <= last:
        y, w, _ = d.isocalendar()
        marks.append((_local_midnight(d, zone), f"{y}-W{w:02d}"))
        d += timedelta(days=7)
    return cut(start, end, marks, marks[0][1])


def shifts(start: Micros, end: Micros, timezone: str, calendar: Calendar) -> Buckets:
    """Shifts of the calendar, labelled ``YYYY-MM-DD name``; gaps are ``YYYY-MM-DD off-shift``."""
    zone = ZoneInfo(timezone)
    d = from_micros(start).astimezone(zone).date() - timedelta(days=1)
    last = from_micros(end).astimezone(zone).date() + timedelta(days=1)
    windows: list[tuple[Micros, Micros, str]] = []
    while d <= last:
        windows += [
            (a, b, f"{d.isoformat()} {s.name}") for s, a, b in day_windows(calendar.shifts, d, zone)
        ]
        d += timedelta(days=1)
    windows.sort()
    marks: list[tuple[Micros, str]] = []
    for a, b, label in windows:
        if marks and marks[-1][0] > a:  # overlapping shifts: the earlier one keeps its time
            a = marks[-1][0]
        if marks and marks[-1][1].endswith(OFF_SHIFT) and marks[-1][0] == a:
            marks.pop()
        marks.append((a, label))
        if b > a:
            marks.append((b, f"{from_micros(b).astimezone(zone).date().isoformat()} {OFF_SHIFT}"))
    # a bucket never starts inside the previous one's time; drop empty marks
    clean: list[tuple[Micros, str]] = []
    for at, label in marks:
        while clean and clean[-1][0] >= at:
            clean.pop()
        clean.append((at, label))
    first = f"{from_micros(start).astimezone(zone).date().isoformat()} {OFF_SHIFT}"
    return cut(start, end, clean, first)


def buckets(
    period: Period, start: Micros, end: Micros, timezone: str, calendar: Calendar | None = None
) -> Buckets:
    """Buckets of one kind of period (``all`` is one bucket for the whole range)."""
    if end <= start:
        raise ValueError("the range is empty: end must be after start")
    if period == "all":
        return Buckets.single(start, end)
    if period == "day":
        return days(start, end, timezone)
    if period == "week":
        return weeks(start, end, timezone)
    if period == "shift":
        if calendar is None:
            raise ValueError("shift periods need the site calendar")
        return shifts(start, end, timezone, calendar)
    raise ValueError(f"unknown period {period!r}; use all, day, week or shift")
