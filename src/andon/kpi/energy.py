"""Energy from meter registers and power signals: deltas that survive rollovers and resets,
energy by machine state, 15-minute peak demand and time-of-use cost.

Everything works on a *cumulative* series ``(ts, kWh consumed since the first sample)``:
``cumulative_register`` builds it from an energy register (rollover or reset handled),
``cumulative_power`` from a power signal (each sample's power held until the next sample).
Energy over any interval is the difference of the cumulative series linearly interpolated at
its ends, so the pieces of a range always add up to the range's total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from andon.kpi.timeline import Buckets
from andon.model.plant import ALL_DAYS, Day, Site
from andon.model.types import F64, I64, MachineState, Micros, StateBatch, from_micros, to_micros

__all__ = [
    "Demand",
    "Tariff",
    "TouPeriod",
    "counter_delta",
    "cumulative_at",
    "cumulative_power",
    "cumulative_register",
    "energy_between",
    "energy_by_state",
    "peak_demand",
    "tariff_cost",
]

QUARTER_HOUR_US = 15 * 60 * 1_000_000


def cumulative_register(values: npt.ArrayLike, rollover: float | None = None) -> F64:
    """Consumption since the first reading, reading by reading, in time order.

    A drop in the reading is a rollover when ``rollover`` is given (the register wrapped at
    that value: the increment is ``rollover - previous + current``), otherwise a reset to zero
    (the increment is the new reading).

    >>> cumulative_register([99_990.0, 99_998.0, 5.0], rollover=100_000.0).tolist()
    [0.0, 8.0, 15.0]
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(0)
    d = np.diff(v)
    drop = d < 0
    if rollover is not None:
        d[drop] += rollover
    else:
        d[drop] = v[1:][drop]
    return np.concatenate(([0.0], np.cumsum(d)))


def counter_delta(values: npt.ArrayLike, rollover: float | None = None) -> float:
    """Consumption between the first and last reading of a register, in time order.

    >>> counter_delta([99_990.0, 99_998.0, 5.0], rollover=100_000.0)
    15.0
    >>> counter_delta([10.0, 12.0, 1.0, 3.0])
    5.0
    """
    c = cumulative_register(values, rollover)
    return float(c[-1]) if len(c) > 1 else 0.0


def cumulative_power(ts: I64, kw: npt.ArrayLike, end: Micros | None = None) -> tuple[I64, F64]:
    """Cumulative kWh from power samples, each held until the next; the last one is held
    to ``end`` (default: one median sample period). Returns the series' times and values.

    >>> t, e = cumulative_power(np.array([0, 1_800_000_000]), [2.0, 4.0])
    >>> t.tolist(), e.tolist()
    ([0, 1800000000, 3600000000], [0.0, 1.0, 3.0])
    """
    p = np.asarray(kw, dtype=np.float64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if end is None:
        end = int(ts[-1] + (np.median(np.diff(ts)) if len(ts) > 1 else 0))
    t = np.append(ts, np.int64(end))
    kwh = p * np.diff(t).astype(np.float64) / 3.6e9
    return t, np.concatenate(([0.0], np.cumsum(kwh)))


def cumulative_at(ts: I64, cum: F64, at: npt.ArrayLike) -> F64:
    """The cumulative series at each instant of ``at``: linear between samples; within one
    sample interval after the last sample (a register that has not reported yet, e.g. a live
    range ending now) it goes on at the rate of the last interval, so a live figure does not
    lose the seconds since the last sample (10 s at 15 kW is 0.04 kWh, 0.8 % of 20 minutes);
    further out, and before the first sample, it is clamped (no data is not invented).

    >>> ts = np.array([0, 10, 20], dtype=np.int64)
    >>> cum = np.array([0.0, 1.0, 2.0])
    >>> cumulative_at(ts, cum, [5, 25, 30, 99]).tolist()
    [0.5, 2.5, 3.0, 3.0]
    """
    t = np.asarray(at, dtype=np.float64)
    x = ts.astype(np.float64)
    v = np.interp(t, x, cum)
    if len(ts) >= 2 and ts[-1] > ts[-2]:
        gap = x[-1] - x[-2]
        slope = (cum[-1] - cum[-2]) / gap
        ahead = np.clip(t - x[-1], 0.0, gap)
        v = v + slope * ahead
    return np.asarray(v, dtype=np.float64)


def energy_between(ts: I64, cum: F64, start: npt.ArrayLike, end: npt.ArrayLike) -> F64:
    """kWh in each interval ``[start, end)`` from the cumulative series (``cumulative_at``:
    interpolated between samples, carried on for one sample interval after the last)."""
    return np.asarray(cumulative_at(ts, cum, end) - cumulative_at(ts, cum, start))


def energy_by_state(ts: I64, cum: F64, states: StateBatch) -> dict[str, float]:
    """kWh of one machine per state label, from its state intervals.

    >>> st = StateBatch.build(["m"], [0, 0], [0, 10], [10, 20], [0, 1])
    >>> energy_by_state(np.array([0, 20]), np.array([0.0, 4.0]), st)["running"]
    2.0
    """
    e = energy_between(ts, cum, states.start, states.end)
    sums = np.bincount(states.state, weights=e, minlength=len(MachineState))
    return {s.label: float(sums[s]) for s in MachineState}


@dataclass(frozen=True, slots=True)
class Demand:
    """The highest average power over a demand window, and when that window started."""

    kw: float
    at: Micros | None


def peak_demand(
    ts: I64, cum: F64, start: Micros, end: Micros, window_us: int = QUARTER_HOUR_US
) -> Demand:
    """Peak demand: the largest energy in a window, as average kW. Windows are aligned to
    multiples of ``window_us`` from the epoch (quarter hours in every time zone with a
    15-minute offset) and only windows wholly inside both the range and the data count.

    >>> t = np.array([0, 900_000_000, 1_800_000_000])
    >>> peak_demand(t, np.array([0.0, 1.0, 4.0]), 0, 1_800_000_000)
    Demand(kw=12.0, at=900000000)
    """
    if len(ts) < 2:
        return Demand(0.0, None)
    lo = max(start, int(ts[0]))
    hi = min(end, int(ts[-1]))
    first = -(-lo // window_us) * window_us
    edges = np.arange(first, hi + 1, window_us, dtype=np.int64)
    if len(edges) < 2:
        return Demand(0.0, None)
    e = np.diff(np.interp(edges.astype(np.float64), ts.astype(np.float64), cum))
    k = int(np.argmax(e))
    return Demand(float(e[k]) / (window_us / 3.6e9), int(edges[k]))


@dataclass(frozen=True, slots=True)
class TouPeriod:
    """A time-of-use price window in local time (``end <= start`` runs past midnight)."""

    name: str
    start: str
    end: str
    price: float
    days: tuple[Day, ...] = ALL_DAYS


@dataclass(frozen=True, slots=True)
class Tariff:
    """Time-of-use tariff: per-kWh prices by local time; ``base_price`` elsewhere."""

    base_price: float
    periods: tuple[TouPeriod, ...] = ()
    currency: str = "TWD"
    base_name: str = "off_peak"
    timezone: str = "UTC"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Tariff:
        """From ``{"base_price": 2.5, "currency": "TWD", "timezone": "Asia/Taipei",
        "periods": [{"name": "peak", "start": "16:00", "end": "22:00", "price": 5.9,
        "days": ["mon", ...]}]}``.

        >>> Tariff.from_dict({"base_price": 2.0, "periods": [
        ...     {"name": "peak", "start": "16:00", "end": "22:00", "price": 5.0}]}).periods[0].price
        5.0
        """
        unknown = set(doc) - {"base_price", "periods", "currency", "base_name", "timezone"}
        if unknown:
            raise ValueError(f"unknown tariff keys: {', '.join(sorted(unknown))}")
        periods = []
        for p in doc.get("periods", []):
            days = tuple(p.get("days", ALL_DAYS))
            bad = [d for d in days if d not in ALL_DAYS]
            if bad:
                raise ValueError(f"tariff period {p.get('name')!r}: unknown days {bad}")
            for key in ("start", "end"):
                time.fromisoformat(str(p[key]))  # raises ValueError on a bad time
            periods.append(
                TouPeriod(str(p["name"]), str(p["start"]), str(p["end"]), float(p["price"]), days)
            )
        return cls(
            float(doc["base_price"]),
            tuple(periods),
            str(doc.get("currency", "TWD")),
            str(doc.get("base_name", "off_peak")),
            str(doc.get("timezone", "UTC")),
        )

    @classmethod
    def of_site(cls, site: Site) -> Tariff | None:
        """The site's tariff from its plant model (in the site's time zone), if it has one.

        >>> from andon.model.loader import parse_plant
        >>> from importlib.resources import files
        >>> plant = parse_plant((files("andon.sim") / "plants" / "demo.yaml").read_text())
        >>> t = Tariff.of_site(plant.site)
        >>> t is not None and t.timezone == plant.site.timezone
        True
        """
        spec = site.tariff
        if spec is None:
            return None
        return cls(
            spec.base_price,
            tuple(
                TouPeriod(
                    p.name,
                    p.start.isoformat("minutes"),
                    p.end.isoformat("minutes"),
                    p.price,
                    p.days,
                )
                for p in spec.periods
            ),
            spec.currency,
            spec.base_name,
            site.timezone,
        )

    def buckets(self, start: Micros, end: Micros) -> tuple[Buckets, dict[str, float]]:
        """Buckets labelled by price-period name over ``[start, end)``, and the prices."""
        from andon.kpi.periods import cut

        zone = ZoneInfo(self.timezone)
        d = from_micros(start).astimezone(zone).date() - timedelta(days=1)
        last = from_micros(end).astimezone(zone).date() + timedelta(days=1)
        windows: list[tuple[Micros, Micros, str]] = []
        while d <= last:
            for p in self.periods:
                if ALL_DAYS[d.weekday()] not in p.days:
                    continue
                a_t = time.fromisoformat(p.start)
                b_t = time.fromisoformat(p.end)
                b_day = d + timedelta(days=1) if b_t <= a_t else d
                a = to_micros(datetime.combine(d, a_t, tzinfo=zone))
                b = to_micros(datetime.combine(b_day, b_t, tzinfo=zone))
                windows.append((a, b, p.name))
            d += timedelta(days=1)
        windows.sort()
        marks: list[tuple[Micros, str]] = []
        for a, b, name in windows:
            while marks and marks[-1][0] >= a:
                marks.pop()
            marks.append((a, name))
            marks.append((b, self.base_name))
        prices = {self.base_name: self.base_price, **{p.name: p.price for p in self.periods}}
        return cut(start, end, marks, self.base_name), prices


def tariff_cost(
    ts: I64, cum: F64, start: Micros, end: Micros, tariff: Tariff
) -> dict[str, dict[str, float]]:
    """kWh and cost per price period over ``[start, end)``.

    >>> tar = Tariff(1.0, (TouPeriod("peak", "01:00", "02:00", 3.0),))
    >>> t = np.array([0, 7_200_000_000])
    >>> c = tariff_cost(t, np.array([0.0, 20.0]), 0, 7_200_000_000, tar)
    >>> c["peak"], c["off_peak"]
    ({'kwh': 10.0, 'price': 3.0, 'cost': 30.0}, {'kwh': 10.0, 'price': 1.0, 'cost': 10.0})
    """
    b, prices = tariff.buckets(start, end)
    e = energy_between(ts, cum, b.edges[:-1], b.edges[1:])
    out: dict[str, dict[str, float]] = {}
    for label, kwh in zip(b.labels, e.tolist(), strict=True):
        row = out.setdefault(label, {"kwh": 0.0, "price": prices[label], "cost": 0.0})
        row["kwh"] += kwh
        row["cost"] += kwh * prices[label]
    return out
